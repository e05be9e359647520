package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/natstest"
)

// TestStreamOrdersWalkthrough is the README's stream example: troupe dev
// makes the ORDERS stream, orders published with plain NATS reach the
// customer actor, troupe call reads its total and troupe subs shows the
// subscription with nothing pending and the bad order terminated.
func TestStreamOrdersWalkthrough(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, m := range [][2]string{
		{"orders.c1.new", `{"amount":5}`},
		{"orders.c1.new", `{"amount":7}`},
		{"orders.c2.new", `{"amount":1}`},
		{"orders.c3.new", `not json`},
	} {
		if err := nc.Publish(m[0], []byte(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "customer c1's total", func() bool {
		return callReply(url, `{"total":12,"orders":2,"last_seq":2}`, "customer", "c1", "total") == nil
	})
	var subs subsResult
	waitFor(t, 20*time.Second, "troupe subs shows the orders consumed", func() bool {
		r := troupe("", nil, "subs", "-s", url, "--json")
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &subs) != nil || len(subs.Subscriptions) != 1 {
			return false
		}
		l := subs.Subscriptions[0]
		return l.Pending == 0 && l.AckPending == 0 && l.Applied == 3 && l.Terminated == 1
	})
	l := subs.Subscriptions[0]
	if l.Type != "customer" || l.Name != "orders" || l.Stream != "ORDERS" || l.Subject != "orders.*.*" || l.Puller == "" {
		t.Errorf("troupe subs: %+v", l)
	}
	if r := troupe("", nil, "subs", "-s", url); !strings.Contains(r.stdout, "customer  orders        ORDERS  orders.*.*") {
		t.Errorf("troupe subs printed:\n%s", r.stdout)
	}
}
