package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// With a call id the router retries what it cannot retry without one:
// OUTCOME_UNKNOWN, and an attempt that got no answer (the host died holding
// it), always with the same id. The test plays the hosts.

// callIDOf is the call id a request carries, in either form.
func callIDOf(m *nats.Msg) string {
	if v := m.Header.Get(protocol.HeaderCall); v != "" {
		f, _ := protocol.ParseCall(v)
		return f.CallID
	}
	return m.Header.Get(protocol.HeaderCallID)
}

// ids collects the call ids of the requests a played host received.
type ids struct {
	mu  sync.Mutex
	ids []string
}

func (s *ids) add(m *nats.Msg) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, callIDOf(m))
	return len(s.ids)
}

func (s *ids) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func sameID(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d attempts (ids %q), want %d", len(got), got, n)
	}
	for _, id := range got {
		if !protocol.ValidCallID(id) || id != got[0] {
			t.Fatalf("attempts carried ids %q, want one valid id in all", got)
		}
	}
}

func TestIdempotentRetryAfterOutcomeUnknown(t *testing.T) {
	s := natstest.Server(t)
	for _, v := range []uint32{1, protocol.Version} { // five headers, one header
		subject := memberSpeaking(t, s, "h"+string(rune('0'+v)), v)
		var seen ids
		nc := natstest.Connect(t, s)
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if seen.add(m)%2 == 1 { // every first attempt: the save got no answer
				h, body := router.EncodeError(&router.Error{Code: router.CodeOutcomeUnknown, Message: "save unanswered"})
				_ = m.RespondMsg(&nats.Msg{Header: h, Data: body})
				return
			}
			_ = m.Respond([]byte("ok"))
		})
		if err != nil {
			t.Fatal(err)
		}
		r := newRouter(t, s, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := r.Call(ctx, "t", "a", "m", nil)
		if err != nil || string(reply) != "ok" {
			t.Fatalf("protocol %d: Call = %q, %v; want ok after one retry", v, reply, err)
		}
		sameID(t, seen.all(), 2)
		// A caller's own id is the one sent.
		if _, err := r.Call(ctx, "t", "a", "m", nil, router.WithCallID("mine-1")); err != nil {
			t.Fatal(err)
		}
		if got := seen.all()[2:]; len(got) != 2 || got[0] != "mine-1" || got[1] != "mine-1" {
			t.Fatalf("protocol %d: WithCallID sent %q", v, got)
		}
		// Without an id, OUTCOME_UNKNOWN is the caller's.
		if _, err := r.Call(ctx, "t", "a", "m", nil, router.WithoutCallID()); !errors.Is(err, router.ErrOutcomeUnknown) {
			t.Fatalf("protocol %d: without an id: %v, want OUTCOME_UNKNOWN", v, err)
		}
		if got := seen.all()[4:]; len(got) != 1 || got[0] != "" {
			t.Fatalf("protocol %d: without an id the host got %q, want one attempt without an id", v, got)
		}
		cancel()
		_ = sub.Unsubscribe()
		r.Close()
		s = natstest.Server(t) // the next version on a server of its own
	}
}

// shortMember joins a host record with a lease of one second and returns
// the lease. Like a host, the member monitors the liveness keys of its
// peers, so that the record of one whose lease ran out is removed.
func shortMember(t *testing.T, s *server.Server, id string) (string, *placement.Lease) {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	subject := "troupe.host." + id
	l, err := placement.Join(ctx, js, kv, &pb.HostRecord{HostId: id, Subject: subject, ActorTypes: []string{"t"}, Protocol: protocol.Version},
		placement.LeaseConfig{TTL: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	w, err := placement.Watch(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	m := placement.StartMonitor(kv, w, placement.HostID(id), placement.MonitorConfig{})
	t.Cleanup(m.Stop)
	return subject, l
}

func TestIdempotentRetryAfterHostDiedHoldingTheRequest(t *testing.T) {
	s := natstest.Server(t)
	deadSubject, lease := shortMember(t, s, "dies")
	liveSubject, _ := shortMember(t, s, "lives")
	var dead, live ids
	ncDead, ncLive := natstest.Connect(t, s), natstest.Connect(t, s)
	var sub *nats.Subscription
	sub, err := ncDead.Subscribe(deadSubject, func(m *nats.Msg) {
		// It takes the request and dies with it: no reply, its subscription
		// gone, its lease no longer renewed.
		dead.add(m)
		_ = sub.Unsubscribe()
		go lease.Stop()
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ncLive.Subscribe(liveSubject, func(m *nats.Msg) {
		live.add(m)
		_ = m.Respond([]byte("ok"))
	}); err != nil {
		t.Fatal(err)
	}
	_ = newRouter(t, s, 2)
	r := newRouterWith(t, s, 2, router.Config{AttemptTimeout: 100 * time.Millisecond})
	id := idOwnedBy(t, r, "dies")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	reply, err := r.Call(ctx, "t", id, "m", nil)
	if err != nil || string(reply) != "ok" {
		t.Fatalf("Call = %q, %v after %v; want ok from the host left", reply, err, time.Since(start))
	}
	sameID(t, append(dead.all(), live.all()...), 2)

	// Without an id the router waits for the one attempt until the deadline.
	var silent ids
	silentSubject, _ := shortMember(t, s, "silent")
	if _, err := ncDead.Subscribe(silentSubject, func(m *nats.Msg) { silent.add(m) }); err != nil {
		t.Fatal(err)
	}
	for {
		if _, ok := r.Table().Member("silent"); ok {
			break
		}
		<-r.Watcher().Changed()
	}
	quiet := idOwnedBy(t, r, "silent")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := r.Call(ctx2, "t", quiet, "m", nil, router.WithoutCallID()); !errors.Is(err, router.ErrDeadlineExceeded) {
		t.Fatalf("without an id: %v, want DEADLINE_EXCEEDED", err)
	}
	if got := silent.all(); len(got) != 1 {
		t.Fatalf("without an id the silent host got %d attempts, want 1", len(got))
	}
}

// An attempt's timeout grows only after attempts that got no answer: a call
// that was answered UNAVAILABLE a few times (a host restarting, say) and
// then lost one attempt sends again after AttemptTimeout, not after a
// timeout doubled for every earlier answer, which could be the rest of its
// deadline.
func TestAnsweredAttemptsLeaveTheAttemptTimeoutAlone(t *testing.T) {
	s := natstest.Server(t)
	subject, _ := shortMember(t, s, "restarting")
	var got ids
	const busy = 6 // answered UNAVAILABLE; the next is lost, the one after answered
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		switch n := got.add(m); {
		case n <= busy:
			h, body := router.EncodeError(&router.Error{Code: router.CodeUnavailable, Message: "starting"})
			_ = m.RespondMsg(&nats.Msg{Header: h, Data: body})
		case n == busy+1:
			// taken and lost
		default:
			_ = m.Respond([]byte("ok"))
		}
	}); err != nil {
		t.Fatal(err)
	}
	r := newRouterWith(t, s, 1, router.Config{AttemptTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	reply, err := r.Call(ctx, "t", "a1", "m", nil)
	if err != nil || string(reply) != "ok" {
		t.Fatalf("Call = %q, %v after %v; want ok once the lost attempt timed out", reply, err, time.Since(start))
	}
	sameID(t, got.all(), busy+2)
}
