package host_test

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
)

// TestConformanceRequests sends the requests of protocol/testdata/calls.json
// to a real host's subject, as a client in any language would, and checks
// the code each reply carries.
func TestConformanceRequests(t *testing.T) {
	data, err := os.ReadFile("../protocol/testdata/calls.json")
	if err != nil {
		t.Fatal(err)
	}
	type request struct {
		Name    string      `json:"name"`
		Subject string      `json:"subject"` // gateway requests: after the prefix
		Headers nats.Header `json:"headers"`
		Code    string      `json:"code"`
	}
	var cases struct {
		Requests        []request `json:"requests"`
		GatewayRequests []request `json:"gateway_requests"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Requests) == 0 || len(cases.GatewayRequests) == 0 {
		t.Fatal("no request cases")
	}
	s := natstest.Server(t)
	h := startHost(t, s, host.Config{}, registerCounter)
	nc := natstest.Connect(t, s)
	for i := range cases.GatewayRequests {
		c := &cases.GatewayRequests[i]
		c.Name, c.Subject = "gateway: "+c.Name, protocol.DefaultSubjectPrefix+"."+c.Subject
	}
	for _, c := range append(cases.Requests, cases.GatewayRequests...) {
		subject := c.Subject
		if subject == "" {
			subject = h.Subject()
		}
		msg := &nats.Msg{Subject: subject, Header: c.Headers}
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		got := ""
		if n := reply.Header.Get(protocol.HeaderErrorCode); n != "" {
			code, _ := strconv.Atoi(n)
			got = protocol.Code(code).String()
		}
		if got != c.Code {
			t.Errorf("%s: reply code %q (%s), want %q", c.Name, got, reply.Header.Get(protocol.HeaderError), c.Code)
		}
		if _, err := strconv.Atoi(string(reply.Data)); got == "" && err != nil {
			t.Errorf("%s: reply %q, want the counter's total", c.Name, reply.Data)
		}
	}
}
