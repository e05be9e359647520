package host_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Idempotent calls against a real server: a call id's change runs once, a
// repeat gets the recorded reply without running, the window is bounded,
// and the record survives the activation.

// tally is a counter actor that counts the turns it runs: "add" adds its
// payload (a decimal) to the state and replies with the total, "get"
// replies with the total, "fail" changes the state and fails.
type tally struct {
	self *host.Self
	runs *atomic.Int64
}

func (c *tally) Receive(_ context.Context, call host.Call) ([]byte, error) {
	c.runs.Add(1)
	n, _ := strconv.Atoi(string(c.self.State()))
	switch call.Method {
	case "add":
		d, err := strconv.Atoi(string(call.Payload))
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeInvalidArgument, "not a number")
		}
		n += d
		c.self.SetState([]byte(strconv.Itoa(n)))
	case "get":
	case "fail":
		c.self.SetState([]byte("999"))
		return nil, errors.New("failed after changing the state")
	default:
		return nil, host.UnknownMethod(call)
	}
	return []byte(strconv.Itoa(n)), nil
}

// startTally starts a host serving the tally type with opts; its turns are
// counted in runs.
func startTally(t *testing.T, s *server.Server, runs *atomic.Int64, opts ...host.TypeOption) *host.Host {
	t.Helper()
	return startHost(t, s, host.Config{}, func(h *host.Host) {
		if err := h.Register("tally", func(self *host.Self) host.Actor { return &tally{self: self, runs: runs} }, opts...); err != nil {
			t.Fatal(err)
		}
	})
}

func callID(t *testing.T, r *router.Router, id, method, payload, cid string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := r.Call(ctx, "tally", placement.ActorID(id), method, []byte(payload), router.WithCallID(cid))
	return string(reply), err
}

func mustCallID(t *testing.T, r *router.Router, id, method, payload, cid string) string {
	t.Helper()
	reply, err := callID(t, r, id, method, payload, cid)
	if err != nil {
		t.Fatalf("%s %s %s (call id %s): %v", id, method, payload, cid, err)
	}
	return reply
}

// storedCalls is the call window the state bucket holds for tally id.
func storedCalls(t *testing.T, s *server.Server, id string) []*pb.CallRecord {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, protocol.KVStream(host.DefaultStateBucket))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, protocol.KVSubject(host.DefaultStateBucket, host.StateKey("tally", placement.ActorID(id))))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get(protocol.HeaderStateFormat) != protocol.StateFormatKeys {
		t.Fatalf("state of tally %s is not an ActorState (header %v)", id, msg.Header)
	}
	var as pb.ActorState
	if err := proto.Unmarshal(msg.Data, &as); err != nil {
		t.Fatal(err)
	}
	return as.Calls
}

func repeats(h *host.Host) uint64 {
	for _, s := range h.Stats() {
		if s.Type == "tally" {
			return s.Repeats
		}
	}
	return 0
}

func TestIdempotentRepeatGetsRecordedReplyWithoutRunning(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int64
	h := startTally(t, s, &runs)
	r := newRouter(t, s)
	waitMembers(t, r, 1)

	if got := mustCallID(t, r, "a", "add", "5", "k1"); got != "5" {
		t.Fatalf("first add = %q, want 5", got)
	}
	for range 3 {
		if got := mustCallID(t, r, "a", "add", "5", "k1"); got != "5" {
			t.Fatalf("repeat of k1 = %q, want the recorded 5", got)
		}
	}
	if got := mustCallID(t, r, "a", "add", "2", "k2"); got != "7" {
		t.Fatalf("add with a new id = %q, want 7", got)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("the actor ran %d turns, want 2 (repeats must not run)", n)
	}
	if n := repeats(h); n != 3 {
		t.Fatalf("Stats().Repeats = %d, want 3", n)
	}
	// A read-only turn is remembered by the activation only (not saved):
	// its repeat gets the same reply without running.
	mustCallID(t, r, "a", "get", "", "g1")
	if got := mustCallID(t, r, "a", "get", "", "g1"); got != "7" || runs.Load() != 3 {
		t.Fatalf("repeat of a read-only call = %q after %d runs; want 7 after 3", got, runs.Load())
	}
	// A turn that fails discards its change and records nothing: its
	// repeat runs again and fails again.
	for range 2 {
		if _, err := callID(t, r, "a", "fail", "", "f1"); !errors.Is(err, protocol.ErrInternal) && !errors.Is(err, protocol.ErrApplication) {
			t.Fatalf("fail: %v", err)
		}
	}
	if got := mustCallID(t, r, "a", "get", "", "g2"); got != "7" {
		t.Fatalf("after failed turns the total is %q, want 7", got)
	}
	recs := storedCalls(t, s, "a")
	if len(recs) != 2 || recs[0].Id != "k1" || string(recs[0].Body) != "5" || recs[1].Id != "k2" {
		t.Fatalf("stored window = %v, want k1 (5) and k2", recs)
	}
	// Without an id nothing is deduplicated.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if _, err := r.Call(ctx, "tally", "a", "add", []byte("1"), router.WithoutCallID()); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustCallID(t, r, "a", "get", "", "g3"); got != "9" {
		t.Fatalf("after two adds without an id the total is %q, want 9", got)
	}
}

func TestIdempotentConcurrentRepeatWaitsForTheFirst(t *testing.T) {
	f := newGroupFixture(t)
	block, _ := f.queueBehindBlock(0)
	type result struct {
		reply string
		err   error
	}
	const dups = 4
	out := make(chan result, dups+1)
	send := func(payload, cid string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reply, err := f.r.Call(ctx, "gate", "g", "append", []byte(payload), router.WithCallID(cid))
		out <- result{string(reply), err}
	}
	for range dups {
		go send("a", "dup")
	}
	f.waitDepth(dups)
	go send("b", "other")
	f.waitDepth(dups + 1)
	f.unblock()
	if err := <-block; err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for range dups + 1 {
		res := <-out
		if res.err != nil {
			t.Fatal(res.err)
		}
		counts[res.reply]++
	}
	// The first "dup" appends "a" (length 1); its repeats, queued behind
	// it, get that reply; "other" appends "b" (length 2).
	if counts["1"] != dups || counts["2"] != 1 {
		t.Fatalf("replies %v, want %d × \"1\" and one \"2\"", counts, dups)
	}
	var as pb.ActorState
	if err := proto.Unmarshal([]byte(f.stored()), &as); err != nil || len(as.Entries) != 1 || len(as.Calls) != 2 {
		t.Fatalf("stored state %q (%v): want an ActorState of the state and two calls", f.stored(), err)
	}
	if got := string(as.Entries[0].Value); got != "ab" {
		t.Fatalf("stored state %q, want \"ab\": the repeats must not run", got)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := promtest.Value(mfs, "troupe_host_call_repeats_total", "type=gate"); n != dups-1 {
		t.Fatalf("troupe_host_call_repeats_total = %v, want %d", n, dups-1)
	}
}

func TestIdempotentWindowBounds(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int64
	h := startTally(t, s, &runs, host.CallWindow(3, 0, 0))
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	for i := 1; i <= 5; i++ {
		mustCallID(t, r, "w", "add", "1", "k"+strconv.Itoa(i))
	}
	recs := storedCalls(t, s, "w")
	if len(recs) != 3 || recs[0].Id != "k3" || recs[2].Id != "k5" {
		t.Fatalf("window of 3 calls holds %v, want k3..k5", recs)
	}
	// The activation still remembers k1 in memory.
	if got := mustCallID(t, r, "w", "add", "1", "k1"); got != "1" {
		t.Fatalf("repeat of k1 on the same activation = %q, want the remembered 1", got)
	}
	// A new activation knows only the saved window: k5 is in it; k1 was
	// dropped and runs again.
	h.Close()
	startTally(t, s, &runs, host.CallWindow(3, 0, 0))
	waitMembers(t, r, 1)
	if got := mustCallID(t, r, "w", "add", "1", "k5"); got != "5" {
		t.Fatalf("repeat of k5 = %q, want the recorded 5", got)
	}
	if got := mustCallID(t, r, "w", "add", "1", "k1"); got != "6" {
		t.Fatalf("repeat of k1 after it left the window = %q, want 6 (it runs again)", got)
	}
	// The records read on activation stay in its memory: more new calls
	// than the saved window holds do not drop k4 for this activation.
	for i := range 4 {
		mustCallID(t, r, "w", "add", "1", "n"+strconv.Itoa(i))
	}
	if got := mustCallID(t, r, "w", "add", "1", "k4"); got != "4" {
		t.Fatalf("repeat of k4, read on activation, after 4 newer calls = %q, want the recorded 4", got)
	}

	// By bytes: records of about 40 bytes each, 100 bytes allowed.
	s2 := natstest.Server(t)
	startTally(t, s2, &runs, host.CallWindow(0, 0, 100))
	r2 := newRouter(t, s2)
	waitMembers(t, r2, 1)
	for i := range 6 {
		mustCallID(t, r2, "b", "add", "1", "call-id-of-twenty-c"+strconv.Itoa(i))
	}
	if recs := storedCalls(t, s2, "b"); len(recs) != 2 || recs[1].Id != "call-id-of-twenty-c5" {
		t.Fatalf("window of 100 bytes holds %d records (%v), want the newest 2", len(recs), recs)
	}

	// By age: a record older than the window's age is dropped when the
	// next call is recorded.
	s3 := natstest.Server(t)
	clock := &stepClock{now: time.Unix(1_000_000, 0)}
	startHost(t, s3, host.Config{Clock: clock}, func(h *host.Host) {
		if err := h.Register("tally", func(self *host.Self) host.Actor { return &tally{self: self, runs: &runs} }, host.CallWindow(0, time.Minute, 0)); err != nil {
			t.Fatal(err)
		}
	})
	r3 := newRouter(t, s3)
	waitMembers(t, r3, 1)
	mustCallID(t, r3, "g", "add", "1", "old")
	clock.advance(2 * time.Minute)
	mustCallID(t, r3, "g", "add", "1", "new")
	if recs := storedCalls(t, s3, "g"); len(recs) != 1 || recs[0].Id != "new" {
		t.Fatalf("window of one minute holds %v, want only the newest", recs)
	}
}

// waitDepth waits until n calls wait in the gate's mailbox, as the host
// reports it.
func (f *groupFixture) waitDepth(n int) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs, err := f.reg.Gather()
		if err != nil {
			f.t.Fatal(err)
		}
		if promtest.Value(mfs, "troupe_host_mailbox_depth", "type=gate") == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d calls never reached the mailbox", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// stepClock is a host clock the test moves.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestIdempotentRecordSurvivesTheActivation(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int64
	h := startTally(t, s, &runs)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	if got := mustCallID(t, r, "p", "add", "4", "once"); got != "4" {
		t.Fatalf("add = %q", got)
	}
	// A new host (the old one gone without a word) reads the state and its
	// window from the store.
	h.Close()
	h2 := startTally(t, s, &runs)
	waitMembers(t, r, 1)
	if got := mustCallID(t, r, "p", "add", "4", "once"); got != "4" {
		t.Fatalf("repeat on a new activation = %q, want the recorded 4", got)
	}
	if runs.Load() != 1 || repeats(h2) != 1 {
		t.Fatalf("runs %d, repeats on the new host %d; want 1 and 1", runs.Load(), repeats(h2))
	}
	if got := mustCallID(t, r, "p", "get", "", "look"); got != "4" {
		t.Fatalf("total %q, want 4", got)
	}
}

func TestIdempotentBadCallIDsAreBadRequests(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int64
	startTally(t, s, &runs)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	for _, bad := range []string{"a b", "é", string(make([]byte, 65))} {
		if _, err := callID(t, r, "x", "add", "1", bad); !errors.Is(err, protocol.ErrBadRequest) {
			t.Errorf("router call with id %q: %v, want BAD_REQUEST", bad, err)
		}
	}
	nc := natstest.Connect(t, s)
	for _, bad := range []string{"a b", "é", "", "\x7f"} {
		msg := &nats.Msg{Subject: protocol.GatewaySubject("troupe", "tally", "x", "add"), Data: []byte("1"), Header: nats.Header{protocol.HeaderCallID: {bad}}}
		resp, err := nc.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := protocol.DecodeError(resp.Header, resp.Data); e == nil || e.Code != protocol.CodeBadRequest {
			t.Errorf("gateway call with id %q: %v, want BAD_REQUEST", bad, e)
		}
	}
	if runs.Load() != 0 {
		t.Fatalf("the actor ran %d turns for calls with bad ids", runs.Load())
	}
	// Through the gateway a good id dedupes as through a router.
	for range 2 {
		msg := &nats.Msg{Subject: protocol.GatewaySubject("troupe", "tally", "x", "add"), Data: []byte("3"), Header: nats.Header{protocol.HeaderCallID: {"gw-1"}}}
		resp, err := nc.RequestMsg(msg, 5*time.Second)
		if err != nil || string(resp.Data) != "3" {
			t.Fatalf("gateway call with id gw-1: %v %q, want 3", err, resp.Data)
		}
	}
}

// TestIdempotentGatewayCallToADeadOwnerIsRelayed: a gateway call with a
// call id forwarded to an owner that died with it is not answered
// OUTCOME_UNKNOWN (as one without an id is, TestGatewayCallToADeadOwner):
// the gateway host relays it with the same id, and it succeeds on the new
// owner, applied once.
func TestIdempotentGatewayCallToADeadOwnerIsRelayed(t *testing.T) {
	dead, onc, nc, reg, subject := startDeadOwnerCase(t)
	if got, e := gatewayCall(t, nc, subject, "1", nats.Header{protocol.HeaderCallID: {"before"}}); e != nil || got != "1" {
		t.Fatalf("before the crash: %q, %v", got, e)
	}
	dead.Close() // as a crash: no leave; its monitors remove the record once the lease expires
	onc.Close()
	const timeout = 8 * time.Second
	for i := range 3 {
		hdr := nats.Header{protocol.HeaderTimeout: {strconv.Itoa(int(timeout.Milliseconds()))}, protocol.HeaderCallID: {"after-" + strconv.Itoa(i)}}
		resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: []byte("1"), Header: hdr}, timeout+2*time.Second)
		if err != nil {
			t.Fatalf("call %d after the crash: %v, want an answer", i, err)
		}
		if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
			t.Fatalf("call %d after the crash: %v, want success", i, e)
		}
		if want := strconv.Itoa(i + 2); string(resp.Data) != want {
			t.Fatalf("call %d after the crash = %q, want %s", i, resp.Data, want)
		}
	}
	if lost := forwards(t, reg, "lost"); lost != 0 {
		t.Fatalf("%v calls answered as lost, want none", lost)
	}
}

// TestIdempotentActorToActorCallsKeepTheirIDsWhenRerun: a turn run again
// for a retry of its call (here a read-only turn on a new activation) makes
// its calls to other actors with the same ids, derived from its own call's
// id, so the actors it calls apply them once.
func TestIdempotentActorToActorCallsKeepTheirIDsWhenRerun(t *testing.T) {
	s := natstest.Server(t)
	var tallyRuns, relayRuns atomic.Int64
	register := func(h *host.Host) {
		if err := h.Register("tally", func(self *host.Self) host.Actor { return &tally{self: self, runs: &tallyRuns} }); err != nil {
			t.Fatal(err)
		}
		// relay forwards "fwd" to two tallies, one after the other, and
		// changes no state of its own.
		if err := h.Register("relay", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				relayRuns.Add(1)
				a, err := self.Router().Call(ctx, "tally", "ta", "add", c.Payload)
				if err != nil {
					return nil, err
				}
				b, err := self.Router().Call(ctx, "tally", "tb", "add", c.Payload)
				if err != nil {
					return nil, err
				}
				return append(append(a, '+'), b...), nil
			})
		}); err != nil {
			t.Fatal(err)
		}
	}
	h := startHost(t, s, host.Config{}, register)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fwd := func(cid string) string {
		t.Helper()
		reply, err := r.Call(ctx, "relay", "r", "fwd", []byte("3"), router.WithCallID(cid))
		if err != nil {
			t.Fatal(err)
		}
		return string(reply)
	}
	if got := fwd("outer-1"); got != "3+3" {
		t.Fatalf("fwd = %q, want 3+3", got)
	}
	h.Close()
	startHost(t, s, host.Config{}, register)
	waitMembers(t, r, 1)
	if got := fwd("outer-1"); got != "3+3" {
		t.Fatalf("fwd run again = %q, want 3+3 (the tallies answer from their records)", got)
	}
	if relayRuns.Load() != 2 || tallyRuns.Load() != 2 {
		t.Fatalf("relay ran %d turns, the tallies %d; want 2 and 2 (one each)", relayRuns.Load(), tallyRuns.Load())
	}
	if got := fwd("outer-2"); got != "6+6" {
		t.Fatalf("fwd with a new id = %q, want 6+6", got)
	}
}

// slowTurn is how long the turns below run: longer than the router's first
// attempt timeout, so that the router sends the call again while the first
// attempt still runs, with no fault anywhere.
const slowTurn = router.DefaultAttemptTimeout + 300*time.Millisecond

// TestIdempotentSlowTurnRunsOnce: a turn that outlasts the router's attempt
// timeout is sent again with the same id; the second attempt waits behind
// the first in the mailbox and gets its reply, whether the type keeps a
// saved window or has it turned off. (A type without state keeps no record:
// its slow turns run again, as GUARANTEES.md says.)
func TestIdempotentSlowTurnRunsOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []host.TypeOption
	}{
		{"SavedWindow", nil},
		{"WindowOff", []host.TypeOption{host.CallWindow(-1, 0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := natstest.Server(t)
			var runs atomic.Int32
			startHost(t, s, host.Config{}, func(h *host.Host) {
				_ = h.Register("slow", func(self *host.Self) host.Actor {
					return host.ActorFunc(func(context.Context, host.Call) ([]byte, error) {
						n := runs.Add(1)
						time.Sleep(slowTurn)
						return []byte(strconv.Itoa(int(n))), nil
					})
				}, tc.opts...)
			})
			r := newRouter(t, s)
			waitMembers(t, r, 1)
			if got := call(t, r, "slow", "a", "run", ""); got != "1" || runs.Load() != 1 {
				t.Fatalf("reply %q after %d runs; want 1 after 1", got, runs.Load())
			}
		})
	}
}

// TestIdempotentReentrantResendRunsOnce: a nested turn (a call back into an
// actor whose turn waits for it) that outlasts the attempt timeout is sent
// again by the calling actor's router; the second nested turn waits for the
// first and gets its reply instead of running beside it.
func TestIdempotentReentrantResendRunsOnce(t *testing.T) {
	s := natstest.Server(t)
	var adds atomic.Int32
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("ra", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				switch c.Method {
				case "start":
					return self.Router().Call(ctx, "rz", "z", "back", nil)
				case "add":
					adds.Add(1)
					time.Sleep(slowTurn)
					self.SetState(append(self.State(), 'x'))
				}
				return []byte(strconv.Itoa(len(self.State()))), nil
			})
		}, host.Reentrant())
		_ = h.Register("rz", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				return self.Router().Call(ctx, "ra", "a", "add", nil)
			})
		}, host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	if got := call(t, r, "ra", "a", "start", ""); got != "1" {
		t.Fatalf("start = %q, want 1", got)
	}
	if got := call(t, r, "ra", "a", "get", ""); got != "1" || adds.Load() != 1 {
		t.Fatalf("after one add: state %q, %d add turns; want 1 and 1", got, adds.Load())
	}
}

// TestGatewayCallCannotMoveAStreamCursor: the stream headers are the
// puller's; a gateway client that sends them makes an ordinary call, which
// runs every time and moves no cursor.
func TestGatewayCallCannotMoveAStreamCursor(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int32
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("sc", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(context.Context, host.Call) ([]byte, error) {
				runs.Add(1)
				self.SetState(append(self.State(), 'x'))
				return nil, nil
			})
		})
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	nc := natstest.Connect(t, s)
	for i, seq := range []string{"18446744073709551615", "7"} {
		hdr := nats.Header{protocol.HeaderStream: {"orders"}, protocol.HeaderStreamSeq: {seq}}
		if _, e := gatewayCall(t, nc, host.GatewaySubject("troupe", "sc", "a", "add"), "", hdr); e != nil {
			t.Fatalf("call %d: %v", i, e)
		}
	}
	if runs.Load() != 2 {
		t.Fatalf("%d of 2 gateway calls ran", runs.Load())
	}
}

// TestReleaseNoticeWithAReplyIsABadRequest: a release notice is published
// between hosts; a request that carries one is answered, not left to time
// out.
func TestReleaseNoticeWithAReplyIsABadRequest(t *testing.T) {
	s := natstest.Server(t)
	h := startHost(t, s, host.Config{}, registerCounter)
	nc := natstest.Connect(t, s)
	resp, err := nc.RequestMsg(&nats.Msg{Subject: protocol.HostSubject("troupe", protocol.HostID(h.ID())), Header: nats.Header{protocol.HeaderReleased: {"x"}}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := protocol.DecodeError(resp.Header, resp.Data); e == nil || e.Code != protocol.CodeBadRequest {
		t.Fatalf("reply %v, want BAD_REQUEST", e)
	}
}
