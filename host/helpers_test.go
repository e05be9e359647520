package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// startHost starts a host with its own connection to s; register adds its
// actor types. The host is closed when the test ends.
func startHost(t *testing.T, s *server.Server, cfg host.Config, register func(*host.Host)) *host.Host {
	t.Helper()
	return hosttest.Start(t, natstest.Connect(t, s), cfg, func(h *host.Host) error { register(h); return nil })
}

// newRouter returns a router with its own connection to s.
func newRouter(t *testing.T, s *server.Server) *router.Router {
	t.Helper()
	return natstest.Router(t, natstest.Connect(t, s))
}

// waitMembers waits until r's table lists exactly n hosts.
func waitMembers(t *testing.T, r *router.Router, n int) *placement.Table {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := r.Watcher().Changed()
		if tab := r.Table(); len(tab.Members()) == n {
			return tab
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("table has %d members, want %d", len(r.Table().Members()), n)
		}
	}
}

// callPlain is call without a call id: the actor's state entry then holds
// no recorded calls.
func callPlain(t *testing.T, r *router.Router, typ placement.ActorType, id placement.ActorID, method, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := r.Call(ctx, typ, id, method, []byte(payload), router.WithoutCallID())
	if err != nil {
		t.Fatalf("%s %q %s %q: %v", typ, id, method, payload, err)
	}
	return string(reply)
}

func call(t *testing.T, r *router.Router, typ placement.ActorType, id placement.ActorID, method, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := r.Call(ctx, typ, id, method, []byte(payload))
	if err != nil {
		t.Fatalf("%s %q %s %q: %v", typ, id, method, payload, err)
	}
	return string(reply)
}
