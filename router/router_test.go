package router_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	"google.golang.org/protobuf/proto"
)

// member joins a host record to the bucket by hand; the test plays the host
// by subscribing to its subject with a real NATS connection.
func member(t *testing.T, s *server.Server, id string) string {
	t.Helper()
	return memberSpeaking(t, s, id, 0)
}

// memberSpeaking is member for a host that announces protocol version v
// (0: a host older than the field).
func memberSpeaking(t *testing.T, s *server.Server, id string, v uint32) string {
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
	rec := &pb.HostRecord{HostId: id, Subject: subject, ActorTypes: []string{"t"}, Protocol: v}
	if v < protocol.AliveRenewalVersion {
		// A host of protocol version 1 writes its record with the lease TTL
		// and renews it; the test's record only has to outlive the test.
		data, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Create(ctx, placement.HostKey(placement.HostID(id)), data, jetstream.KeyTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
		return subject
	}
	l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return subject
}

func newRouter(t *testing.T, s *server.Server, hosts int) *router.Router {
	t.Helper()
	return newRouterWith(t, s, hosts, router.Config{})
}

// newRouterWith is a router with cfg over s, once it sees hosts members;
// it is closed when t ends.
func newRouterWith(t *testing.T, s *server.Server, hosts int, cfg router.Config) *router.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := router.New(ctx, natstest.Connect(t, s), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	for len(r.Table().Members()) != hosts {
		select {
		case <-r.Watcher().Changed():
		case <-ctx.Done():
			t.Fatalf("router sees %d hosts, want %d", len(r.Table().Members()), hosts)
		}
	}
	return r
}

func TestRequestCarriesTheCall(t *testing.T) {
	for _, v := range []uint32{0, 1, protocol.CallHeaderVersion, protocol.Version} {
		t.Run(fmt.Sprint("host protocol ", v), func(t *testing.T) {
			m := requestTo(t, v)
			if got := m.Header.Get("X-Trace"); got != "1" {
				t.Errorf("header X-Trace = %q, want 1", got)
			}
			if string(m.Data) != "payload" {
				t.Errorf("payload %q", m.Data)
			}
			five := []string{router.HeaderType, router.HeaderID, router.HeaderMethod, router.HeaderGeneration, router.HeaderTimeout}
			if v < protocol.CallHeaderVersion { // an older host gets the five headers
				if _, ok := m.Header[router.HeaderCall]; ok {
					t.Errorf("a host of version %d got %s", v, router.HeaderCall)
				}
				want := []string{"t", "a%2Eb%20c", "m"}
				for i, k := range five[:3] {
					if got := m.Header.Get(k); got != want[i] {
						t.Errorf("header %s = %q, want %q", k, got, want[i])
					}
				}
				if id := m.Header.Get(protocol.HeaderCallID); !protocol.ValidCallID(id) {
					t.Errorf("header %s = %q, want a call id", protocol.HeaderCallID, id)
				}
				if ms, err := strconv.Atoi(m.Header.Get(router.HeaderTimeout)); err != nil || ms < 2000 || ms > 3001 {
					t.Errorf("timeout header %q, want about 3000 ms", m.Header.Get(router.HeaderTimeout))
				}
				return
			}
			for _, k := range five {
				if v, ok := m.Header[k]; ok {
					t.Errorf("header %s = %q, want only %s", k, v, router.HeaderCall)
				}
			}
			f, ok := protocol.ParseCall(m.Header.Get(router.HeaderCall))
			want := protocol.CallFields{Type: "t", ID: "a%2Eb%20c", Method: "m", Generation: f.Generation, TimeoutMs: f.TimeoutMs, CallID: f.CallID}
			if !ok || f != want || f.Generation == 0 || !protocol.ValidCallID(f.CallID) {
				t.Errorf("header %s = %q, want %+v with a generation", router.HeaderCall, m.Header.Get(router.HeaderCall), want)
			}
			if f.TimeoutMs < 2000 || f.TimeoutMs > 3001 {
				t.Errorf("timeout %d ms, want about 3000 ms", f.TimeoutMs)
			}
		})
	}
}

// requestTo makes a call to a host that announces protocol version v and
// returns the request it received.
func requestTo(t *testing.T, v uint32) *nats.Msg {
	s := natstest.Server(t)
	subject := memberSpeaking(t, s, "h1", v)
	seen := make(chan *nats.Msg, 1)
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		seen <- m
		_ = m.Respond([]byte("ok"))
	}); err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, s, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	reply, err := r.Call(ctx, "t", "a.b c", "m", []byte("payload"), router.WithHeader("X-Trace", "1"))
	if err != nil || string(reply) != "ok" {
		t.Fatalf("Call = %q, %v", reply, err)
	}
	return <-seen
}

func TestCallsEndByTheirDeadline(t *testing.T) {
	s := natstest.Server(t)
	member(t, s, "ghost") // a live record, but nobody serves its subject
	movedSubject := member(t, s, "mover")
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe(movedSubject, func(m *nats.Msg) {
		h, body := router.EncodeError(&router.Error{Code: router.CodeMoved, Generation: 1 << 40})
		_ = m.RespondMsg(&nats.Msg{Header: h, Data: body})
	}); err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, s, 2)
	const deadline = 300 * time.Millisecond
	// The router's default timeout bounds calls whose context has none.
	byDefault, err := router.New(context.Background(), natstest.Connect(t, s), router.Config{DefaultTimeout: deadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(byDefault.Close)
	for _, owner := range []string{"ghost", "mover"} {
		id := idOwnedBy(t, r, placement.HostID(owner))
		for _, how := range []string{"context deadline", "default timeout"} {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			rr := r
			if how == "default timeout" {
				ctx, rr = context.Background(), byDefault
			}
			start := time.Now()
			_, err := rr.Call(ctx, "t", id, "m", nil)
			took := time.Since(start)
			cancel()
			if !errors.Is(err, router.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s, %s: got %v, want a deadline error", owner, how, err)
			}
			if took < deadline-time.Millisecond || took > deadline+100*time.Millisecond {
				t.Errorf("%s, %s: call ended after %v, want its deadline %v", owner, how, took, deadline)
			}
		}
	}
}

func idOwnedBy(t *testing.T, r *router.Router, h placement.HostID) placement.ActorID {
	t.Helper()
	for i := range 1000 {
		id := placement.ActorID("id" + strconv.Itoa(i))
		if o, ok := r.Table().Owner("t", id); ok && o.ID == h {
			return id
		}
	}
	t.Fatalf("no id owned by %s", h)
	return ""
}

func TestCallsFailFastWhenNobodyCanServe(t *testing.T) {
	s := natstest.Server(t)
	member(t, s, "h1")
	r := newRouter(t, s, 1)
	ctx := context.Background()
	start := time.Now()
	if _, err := r.Call(ctx, "other", "x", "m", nil); !errors.Is(err, router.ErrNoHost) {
		t.Errorf("unserved type: %v", err)
	}
	if _, err := r.Call(ctx, "t", "x", "m", make([]byte, 2<<20)); !errors.Is(err, router.ErrPayloadTooLarge) {
		t.Errorf("huge payload: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("fast failures took %v", took)
	}
}

// A call made while the router's link is down waits for it: the request
// never left (the connection keeps no reconnect buffer), so it is sent once
// the link is back, within the call's deadline, rather than failing.
func TestACallWaitsOutALinkThatIsDown(t *testing.T) {
	s := natstest.Server(t)
	subject := memberSpeaking(t, s, "h", protocol.Version)
	nc := natstest.Connect(t, s)
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	proxy, pc := natstest.ConnectProxied(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := router.New(ctx, pc, router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	for len(r.Table().Members()) != 1 {
		select {
		case <-r.Watcher().Changed():
		case <-ctx.Done():
			t.Fatal("the router never saw the host")
		}
	}
	proxy.Cut()
	for !pc.IsReconnecting() {
		if ctx.Err() != nil {
			t.Fatal("the connection did not notice the cut")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.AfterFunc(300*time.Millisecond, proxy.Restore)
	reply, err := r.Call(ctx, "t", "x", "m", nil)
	if err != nil || string(reply) != "ok" {
		t.Fatalf("call across the cut: %q %v, want ok", reply, err)
	}
}
