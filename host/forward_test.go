package host_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// forwards reads a host's troupe_host_gateway_forwards_total{how}.
func forwards(t *testing.T, reg *prometheus.Registry, how string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return promtest.Value(mfs, "troupe_host_gateway_forwards_total", "how="+how)
}

// ownedBy returns an actor id of typ that table gives to owner.
func ownedBy(t *testing.T, table *placement.Table, typ placement.ActorType, owner placement.HostID, prefix string) placement.ActorID {
	t.Helper()
	for i := range 10000 {
		id := placement.ActorID(fmt.Sprint(prefix, i))
		if m, ok := table.Owner(typ, id); ok && m.ID == owner {
			return id
		}
	}
	t.Fatalf("no %s id owned by %s", typ, owner)
	return ""
}

// gatewayHost starts a host that serves no type and takes the gateway,
// with its own connection and metrics.
func gatewayHost(t *testing.T, s *server.Server, nc *nats.Conn) (*host.Host, *prometheus.Registry) {
	t.Helper()
	if nc == nil {
		nc = natstest.Connect(t, s)
	}
	reg := prometheus.NewRegistry()
	h := hosttest.Start(t, nc, host.Config{Metrics: reg}, func(*host.Host) error { return nil })
	return h, reg
}

// TestGatewayOwnerAnswersTheCallerDirectly: a host that takes a gateway call
// for an actor it does not own forwards it with the caller's reply subject,
// and the owner answers the caller: the forwarding host is out of the
// reply's path, so the answer arrives even when that host's connection is
// closed while the turn runs.
func TestGatewayOwnerAnswersTheCallerDirectly(t *testing.T) {
	s := natstest.Server(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	owner := startHost(t, s, host.Config{DisableGateway: true}, func(h *host.Host) {
		_ = h.Register(counter.Type, counter.New)
		_ = h.Register("gate", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			entered <- struct{}{}
			select {
			case <-release:
				return []byte("through " + string(c.Payload)), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}), host.NoState())
	})
	gnc := natstest.Connect(t, s)
	gw, reg := gatewayHost(t, s, gnc)
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	if rec, _ := natstest.HostRecord(t, natstest.Connect(t, s), owner.ID()); rec.GetProtocol() != protocol.Version {
		t.Fatalf("host record says protocol %d, want %d", rec.GetProtocol(), protocol.Version)
	}
	nc := natstest.Connect(t, s)

	const n = 20
	for i := 1; i <= n; i++ {
		got, e := gatewayCall(t, nc, host.GatewaySubject("troupe", counter.Type, "d1", "add"), "1", nil)
		if e != nil || got != strconv.Itoa(i) {
			t.Fatalf("call %d: %q, %v", i, got, e)
		}
	}
	// The gateway host counts a forward once its publish returns, which
	// may be after the owner's answer has reached the caller.
	for deadline := time.Now().Add(10 * time.Second); forwards(t, reg, "direct") < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if d, rl := forwards(t, reg, "direct"), forwards(t, reg, "relayed"); d != n || rl != 0 {
		t.Fatalf("gateway host forwarded %v directly and relayed %v, want %d and 0", d, rl, n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if v := promtest.Value(mfs, "troupe_router_calls_total", ""); v != 0 {
		t.Fatalf("the gateway host's router made %v calls, want none", v)
	}

	// The gateway host goes away while the owner runs the call: the
	// owner's answer still reaches the caller.
	done := make(chan *nats.Msg, 1)
	go func() {
		resp, err := nc.RequestMsg(&nats.Msg{Subject: host.GatewaySubject("troupe", "gate", "g1", "run"), Data: []byte("owner")}, 10*time.Second)
		if err != nil {
			t.Errorf("request: %v", err)
		}
		done <- resp
	}()
	<-entered
	gw.Close()
	gnc.Close()
	close(release)
	if resp := <-done; resp == nil || string(resp.Data) != "through owner" {
		t.Fatalf("reply %v, want %q from the owner", resp, "through owner")
	}
}

// forwardedRequest is a gateway call as a forwarding host sends it to
// another host's subject after hops hops.
func forwardedRequest(subject string, typ placement.ActorType, id placement.ActorID, method string, gen uint64, hops int, payload string) *nats.Msg {
	hdr := nats.Header{}
	hdr.Set(protocol.HeaderType, string(typ))
	hdr.Set(protocol.HeaderID, protocol.EncodeID(string(id)))
	hdr.Set(protocol.HeaderMethod, method)
	hdr.Set(protocol.HeaderGeneration, strconv.FormatUint(gen, 10))
	hdr.Set(protocol.HeaderTimeout, "5000")
	hdr.Set(protocol.HeaderForwarded, strconv.Itoa(hops))
	return &nats.Msg{Subject: subject, Header: hdr, Data: []byte(payload)}
}

// TestForwardedCallFollowsTheActor: a host that receives a forwarded gateway
// call for an actor it does not own never answers MOVED: it forwards the
// call on to the owner in its table, or, once the call has made
// protocol.MaxForwardHops hops, relays it through its router.
func TestForwardedCallFollowsTheActor(t *testing.T) {
	s := natstest.Server(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := startHost(t, s, host.Config{DisableGateway: true, Metrics: regA}, registerCounter)
	b := startHost(t, s, host.Config{DisableGateway: true, Metrics: regB}, registerCounter)
	r := newRouter(t, s)
	table := waitMembers(t, r, 2)
	id := ownedBy(t, table, counter.Type, b.ID(), "m")
	nc := natstest.Connect(t, s)

	for i, hops := range []int{1, protocol.MaxForwardHops - 1, protocol.MaxForwardHops} {
		msg := forwardedRequest(a.Subject(), counter.Type, id, "add", table.Generation(), hops, "1")
		resp, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			t.Fatalf("hops %d: %v", hops, err)
		}
		if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
			t.Fatalf("hops %d: %v, want the owner's answer", hops, e)
		}
		if got := string(resp.Data); got != strconv.Itoa(i+1) {
			t.Fatalf("hops %d: %q, want %d", hops, got, i+1)
		}
	}
	// Two calls went on directly; the last had no hop left and was relayed.
	if d, rl := forwards(t, regA, "direct"), forwards(t, regA, "relayed"); d != 2 || rl != 1 {
		t.Fatalf("wrong host forwarded %v directly and relayed %v, want 2 and 1", d, rl)
	}
	if d := forwards(t, regB, "direct") + forwards(t, regB, "relayed"); d != 0 {
		t.Fatalf("the owner forwarded %v calls, want none", d)
	}

	// A call without the header, as a Go router sends it, is still
	// answered MOVED: its caller follows the actor itself.
	plain := forwardedRequest(a.Subject(), counter.Type, id, "get", table.Generation(), 1, "")
	plain.Header.Del(protocol.HeaderForwarded)
	resp, err := nc.RequestMsg(plain, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := protocol.DecodeError(resp.Header, resp.Data); e == nil || e.Code != protocol.CodeMoved {
		t.Fatalf("plain call to the wrong host: %v, want MOVED", e)
	}
	bad := forwardedRequest(b.Subject(), counter.Type, id, "get", table.Generation(), 1, "")
	bad.Header.Set(protocol.HeaderForwarded, "0")
	if resp, err = nc.RequestMsg(bad, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if e := protocol.DecodeError(resp.Header, resp.Data); e == nil || e.Code != protocol.CodeBadRequest {
		t.Fatalf("Troupe-Forwarded: 0: %v, want BAD_REQUEST", e)
	}
}

// startDeadOwnerCase starts a counter host that the test is to crash (dead,
// on its own connection onc; its lease is 1 s), a second counter host, and a
// gateway-only host whose metrics are in reg. Only the dead host's lease is
// short: the others keep the default, so that a busy machine that delays a
// renewal past 1 s does not take the new owner away too (the call would end
// in NO_HOST). It returns them with a client
// connection and the gateway subject of an add to an actor dead owns.
func startDeadOwnerCase(t *testing.T) (dead *host.Host, onc, nc *nats.Conn, reg *prometheus.Registry, subject string) {
	t.Helper()
	s := natstest.Server(t)
	lease := placement.LeaseConfig{TTL: time.Second}
	onc = natstest.Connect(t, s)
	dead = hosttest.Start(t, onc, host.Config{DisableGateway: true, Lease: lease}, func(h *host.Host) error { return h.Register(counter.Type, counter.New) })
	startHost(t, s, host.Config{DisableGateway: true}, registerCounter)
	_, reg = gatewayHost(t, s, nil)
	table := waitMembers(t, newRouter(t, s), 3)
	id := ownedBy(t, table, counter.Type, dead.ID(), "x")
	return dead, onc, natstest.Connect(t, s), reg, host.GatewaySubject("troupe", counter.Type, id, "add")
}

// TestGatewayCallToADeadOwner: the owner's process dies (its record stays
// until its lease expires). A gateway call for one of its actors ends
// before its deadline in the owner's answer after failover or in a typed
// error, never in silence; the calls after it are relayed (or, once the
// lease expired, forwarded to the new owner) and succeed.
func TestGatewayCallToADeadOwner(t *testing.T) {
	dead, onc, nc, reg, subject := startDeadOwnerCase(t)
	// The gateway host probes the owner after forwarding the call: see that
	// probe reach the owner's subject before the crash, or the call,
	// answered already, would count as lost when a late probe finds the
	// owner gone.
	probes, err := nc.SubscribeSync(dead.Subject())
	if err != nil {
		t.Fatal(err)
	}
	if got, e := gatewayCall(t, nc, subject, "1", nil); e != nil || got != "1" {
		t.Fatalf("before the crash: %q, %v", got, e)
	}
	for {
		m, err := probes.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no probe of the owner after the forwarded call: %v", err)
		}
		if _, probe := m.Header[protocol.HeaderProbe]; probe {
			break
		}
	}
	if err := probes.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the owner's subscription is the only one again
		t.Fatal(err)
	}

	dead.Close() // as a crash: no leave; its monitors remove the record once the lease expires
	onc.Close()
	const timeout = 8 * time.Second
	hdr := nats.Header{protocol.HeaderTimeout: {strconv.Itoa(int(timeout.Milliseconds()))}}
	for i := range 3 {
		start := time.Now()
		resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: []byte("1"), Header: hdr}, timeout+2*time.Second)
		if err != nil {
			t.Fatalf("call %d after the crash: %v, want an answer", i, err)
		}
		if took := time.Since(start); took >= timeout {
			t.Fatalf("call %d answered after %v, past its %v deadline", i, took, timeout)
		}
		e := protocol.DecodeError(resp.Header, resp.Data)
		switch {
		case e == nil:
		case i == 0 && e.Code == protocol.CodeOutcomeUnknown:
			// Forwarded before anyone knew: nobody took it.
		default:
			t.Fatalf("call %d after the crash: %v", i, e)
		}
	}
	// Only a call forwarded before the probe found the owner gone is lost;
	// the next is relayed (or forwarded to the new owner, once the lease
	// expired).
	if lost := forwards(t, reg, "lost"); lost > 1 {
		t.Fatalf("%v calls lost, want at most one", lost)
	}
}

// TestGatewayCallToAnOwnerGoneSilent: the owner's process is gone, but the
// NATS server still routes its subject to a subscription nobody reads, as it
// does until it notices that a crashed host's connection is gone (a moment
// after its process dies; up to minutes after its machine does). The server
// then sends no no-responders status for the probe either. A gateway call
// forwarded to that owner still ends before its deadline: the owner never
// answered the probe that followed it, so the gateway host relays it with
// its call id, and it succeeds on the new owner once the lease expired.
func TestGatewayCallToAnOwnerGoneSilent(t *testing.T) {
	dead, onc, nc, reg, subject := startDeadOwnerCase(t)
	// Subscribed before the crash, so that the owner's subject never has no
	// subscriber: whatever is published to it after the crash is taken and
	// never answered.
	silent, err := nc.SubscribeSync(dead.Subject())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, e := gatewayCall(t, nc, subject, "1", nil); e != nil || got != "1" {
		t.Fatalf("before the crash: %q, %v", got, e)
	}
	for { // the call and then its probe
		m, err := silent.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no probe of the owner after the forwarded call: %v", err)
		}
		if _, probe := m.Header[protocol.HeaderProbe]; probe {
			break
		}
	}
	dead.Close() // as a crash: no leave; its monitors remove the record once the lease expires
	onc.Close()
	const timeout = 8 * time.Second
	hdr := nats.Header{protocol.HeaderTimeout: {strconv.Itoa(int(timeout.Milliseconds()))}}
	start := time.Now()
	resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: []byte("1"), Header: hdr}, timeout+2*time.Second)
	if err != nil {
		t.Fatalf("call after the crash: %v, want an answer", err)
	}
	if took := time.Since(start); took >= timeout {
		t.Fatalf("call answered after %v, past its %v deadline", took, timeout)
	}
	if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
		t.Fatalf("call after the crash: %v, want the new owner's answer", e)
	}
	if got := string(resp.Data); got != "2" {
		t.Fatalf("call after the crash = %q, want 2", got)
	}
	// The call was forwarded directly, and its probe reached the silent
	// subscription too.
	var forwarded, probed bool
	for {
		m, err := silent.NextMsg(0)
		if err != nil {
			break
		}
		_, probe := m.Header[protocol.HeaderProbe]
		probed = probed || probe
		forwarded = forwarded || (!probe && m.Header.Get(protocol.HeaderForwarded) == "1")
	}
	if !forwarded || !probed {
		t.Fatalf("the silent subscription got the forwarded call: %v, its probe: %v; want both", forwarded, probed)
	}
	if lost := forwards(t, reg, "lost"); lost != 0 {
		t.Fatalf("%v calls answered as lost, want none", lost)
	}
}

// TestGatewayRelaysToHostsWithoutForwarding: in a rolling upgrade, an owner
// whose record announces no protocol version (an older host: version 1)
// gets gateway calls as before, from the gateway host's router, without the
// header.
func TestGatewayRelaysToHostsWithoutForwarding(t *testing.T) {
	s := natstest.Server(t)
	_, reg := gatewayHost(t, s, nil)
	nc := natstest.Connect(t, s)
	// An old host: a record without a protocol version, and a subscriber that
	// answers as the owner of every "legacy" actor.
	sub, err := nc.Subscribe("troupe.host.old", func(m *nats.Msg) {
		reply := "old:" + m.Header.Get(protocol.HeaderForwarded)
		_ = m.Respond([]byte(reply))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv := natstest.Members(t, nc)
	rec, _ := proto.Marshal(&pb.HostRecord{HostId: "old", Subject: "troupe.host.old", ActorTypes: []string{"legacy"},
		State: pb.HostState_HOST_STATE_ACTIVE, Incarnation: "i1", Version: "0.1.0"})
	if _, err := kv.Put(ctx, placement.HostKey("old"), rec); err != nil {
		t.Fatal(err)
	}
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	got, e := gatewayCall(t, nc, "troupe.call.legacy.l1.get", "", nil)
	if e != nil || got != "old:" {
		t.Fatalf("got %q, %v; want the old host's answer to a call without %s", got, e, protocol.HeaderForwarded)
	}
	if d, rl := forwards(t, reg, "direct"), forwards(t, reg, "relayed"); d != 0 || rl != 1 {
		t.Fatalf("forwarded %v directly and relayed %v, want 0 and 1", d, rl)
	}
}

// TestGatewayCarriesTheTimeLeft: the owner of a forwarded call sees the
// hop count and the client's Troupe-Timeout as the time left (in the
// Troupe-Call header), never more.
func TestGatewayCarriesTheTimeLeft(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{DisableGateway: true}, func(h *host.Host) {
		_ = h.Register("hdr", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			d, _ := ctx.Deadline()
			call, _ := protocol.ParseCall(c.Header.Get(protocol.HeaderCall))
			return fmt.Appendf(nil, "%s %d %d", c.Header.Get(protocol.HeaderForwarded), call.TimeoutMs, time.Until(d).Milliseconds()), nil
		}), host.NoState())
	})
	gatewayHost(t, s, nil)
	waitMembers(t, newRouter(t, s), 2)
	nc := natstest.Connect(t, s)
	got, e := gatewayCall(t, nc, "troupe.call.hdr.h.get", "", nats.Header{protocol.HeaderTimeout: {"3000"}})
	if e != nil {
		t.Fatal(e)
	}
	var hops, timeout, left int
	if _, err := fmt.Sscan(got, &hops, &timeout, &left); err != nil {
		t.Fatalf("reply %q: %v", got, err)
	}
	if hops != 1 || timeout <= 0 || timeout > 3000 || left > 3000 {
		t.Fatalf("owner saw hops %d, Troupe-Timeout %d, %d ms left; want 1 hop and at most 3000 ms", hops, timeout, left)
	}
}

// TestGatewayCallsFollowAGracefulLeave: plain NATS clients calling through
// the gateway while an owner leaves gracefully never see an error (MOVED
// least of all): queued calls and calls forwarded to the leaving host are
// followed to the new owners.
func TestGatewayCallsFollowAGracefulLeave(t *testing.T) {
	s := natstest.Server(t)
	p := newProbe()
	hosts := make([]*host.Host, 3)
	for i := range hosts {
		hosts[i] = startHost(t, s, host.Config{}, p.register)
	}
	waitMembers(t, newRouter(t, s), 3)
	nc := natstest.Connect(t, s)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for c := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := host.GatewaySubject("troupe", "probe", placement.ActorID(fmt.Sprintf("g-%d-%d", c, i%50)), "who")
				resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: nats.Header{protocol.HeaderTimeout: {"5000"}}}, 6*time.Second)
				if err != nil {
					t.Errorf("gateway call during a graceful leave: %v", err)
					return
				}
				if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
					t.Errorf("gateway call during a graceful leave: %v", e)
					return
				}
				ok.Add(1)
			}
		})
	}
	waitCalls(t, &ok, 500)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hosts[0].Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitCalls(t, &ok, ok.Load()+500)
	close(stop)
	wg.Wait()
	if p.overlaps.Load() != 0 {
		t.Fatalf("%d overlapping turns", p.overlaps.Load())
	}
}
