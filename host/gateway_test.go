package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// gatewayCall makes a plain NATS request to the gateway subject, as any
// NATS client would.
func gatewayCall(t *testing.T, nc *nats.Conn, subject string, payload string, hdr nats.Header) (string, *protocol.Error) {
	t.Helper()
	resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: []byte(payload), Header: hdr}, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return string(resp.Data), protocol.DecodeError(resp.Header, resp.Data)
}

func TestGatewayReachesTheOwnerFromAnyHost(t *testing.T) {
	s := natstest.Server(t)
	// Two hosts serve counters; a third serves none and is a gateway only.
	for range 2 {
		startHost(t, s, host.Config{}, registerCounter)
	}
	startHost(t, s, host.Config{}, func(*host.Host) {})
	r := newRouter(t, s)
	waitMembers(t, r, 3)
	nc := natstest.Connect(t, s)

	ids := []placement.ActorID{"c1", "a.b", "*", ">", "with space", "new\nline", "é", "%"}
	for round := 1; round <= 3; round++ {
		for i, id := range ids {
			subject := host.GatewaySubject("troupe", counter.Type, id, "add")
			got, e := gatewayCall(t, nc, subject, fmt.Sprint(i+1), nil)
			if e != nil {
				t.Fatalf("%s: %v", subject, e)
			}
			if want := fmt.Sprint(round * (i + 1)); got != want {
				t.Fatalf("%s = %s, want %s", subject, got, want)
			}
		}
	}
	// The gateway and the router see the same actors.
	for i, id := range ids {
		if got := call(t, r, counter.Type, id, "get", ""); got != fmt.Sprint(3*(i+1)) {
			t.Errorf("router get %q = %s, want %d", id, got, 3*(i+1))
		}
	}
}

func TestGatewayRefusesSubjectsThatNameNoActor(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, registerCounter)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	call(t, r, counter.Type, "a", "add", "7")
	nc := natstest.Connect(t, s)
	for subject, want := range map[string]protocol.Code{
		"troupe.call.counter.a.b.add":   protocol.CodeBadRequest, // an extra token is not an id with a dot
		"troupe.call.counter.add":       protocol.CodeBadRequest,
		"troupe.call.counter.%2e.add":   protocol.CodeBadRequest, // lower-case escape: not canonical
		"troupe.call.counter.%61.add":   protocol.CodeBadRequest, // "a" must not be escaped
		"troupe.call.counter.a.reset":   protocol.CodeUnknownMethod,
		"troupe.call.nosuch.a.get":      protocol.CodeNoHost,
		"troupe.call.no-such.a.get":     protocol.CodeNoHost,
		"troupe.call.counter.a.add":     protocol.CodeInvalidArgument, // payload "x"
		"troupe.call.counter.a.get-all": protocol.CodeUnknownMethod,
	} {
		_, e := gatewayCall(t, nc, subject, "x", nil)
		if e == nil || e.Code != want {
			t.Errorf("%s: got %v, want code %v", subject, e, want)
		}
	}
	if _, e := gatewayCall(t, nc, "troupe.call.counter.a.get", "", nats.Header{protocol.HeaderTimeout: {"soon"}}); e == nil || e.Code != protocol.CodeBadRequest {
		t.Errorf("bad timeout header: %v", e)
	}
	// Wildcards never reach an actor: the server does not deliver them.
	for _, subject := range []string{"troupe.call.counter.*.add", "troupe.call.counter.>", "troupe.call.*.a.add"} {
		if resp, err := nc.Request(subject, []byte("1"), 200*time.Millisecond); err == nil && protocol.DecodeError(resp.Header, resp.Data) == nil {
			t.Errorf("%s reached an actor: %q", subject, resp.Data)
		}
	}
	if got := call(t, r, counter.Type, "a", "get", ""); got != "7" {
		t.Fatalf("after bad gateway requests the total is %s, want 7", got)
	}
}

func TestGatewayPassesHeadersToTheActor(t *testing.T) {
	s := natstest.Server(t)
	echoHeader := func(h *host.Host) {
		_ = h.Register("hdr", host.Func(func(_ context.Context, c host.Call) ([]byte, error) {
			return []byte(c.Header.Get("X-Tenant")), nil
		}), host.NoState())
	}
	startHost(t, s, host.Config{}, echoHeader)
	startHost(t, s, host.Config{}, func(*host.Host) {}) // forwards
	waitMembers(t, newRouter(t, s), 2)
	nc := natstest.Connect(t, s)
	for range 10 { // the queue group spreads these over both hosts
		got, e := gatewayCall(t, nc, "troupe.call.hdr.h.get", "", nats.Header{"X-Tenant": {"acme"}})
		if e != nil || got != "acme" {
			t.Fatalf("got %q, %v; want acme", got, e)
		}
	}
}
