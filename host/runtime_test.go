package host

// The runtime tests drive the turn engine over the in-memory runtime and a
// clock moved by hand: no server, no sleeps. Where a test waits, it waits
// for the event itself; the timeouts below only turn a hang into a failure.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

const hang = 10 * time.Second // a wait this long is a hang

var epochStart = time.Unix(1_000_000, 0)

func newTestSandbox(t *testing.T, cfg Config) *sandbox {
	t.Helper()
	cfg.ID = "h-test"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newSandbox(cfg, epochStart)
	t.Cleanup(s.close)
	return s
}

// probe is a test actor. Its state is a decimal number.
type probe struct {
	self *Self
	p    *probeStats
}

// probeStats records what the probes of one sandbox did.
type probeStats struct {
	activations, deactivations atomic.Int32
	running                    atomic.Int32 // turns running now
	overlapped                 atomic.Bool  // two turns of one actor ran at once
	mu                         sync.Mutex
	order                      []string // methods in the order their turns ran
	release                    chan struct{}
	blocked                    chan struct{} // receives when a "block" turn starts
}

func newProbeStats() *probeStats {
	return &probeStats{release: make(chan struct{}), blocked: make(chan struct{}, 16)}
}

func (p *probe) Activate(context.Context) error {
	p.p.activations.Add(1)
	return nil
}

func (p *probe) Deactivate(context.Context) error {
	p.p.deactivations.Add(1)
	p.self.SetState([]byte(strconv.Itoa(p.value() + 1000)))
	return nil
}

func (p *probe) value() int {
	n, _ := strconv.Atoi(string(p.self.State()))
	return n
}

func (p *probe) Receive(ctx context.Context, c Call) ([]byte, error) {
	if p.p.running.Add(1) > 1 {
		p.p.overlapped.Store(true)
	}
	defer p.p.running.Add(-1)
	p.p.mu.Lock()
	p.p.order = append(p.p.order, c.Method+":"+string(c.Payload))
	p.p.mu.Unlock()
	switch c.Method {
	case "add":
		n, _ := strconv.Atoi(string(c.Payload))
		p.self.SetState([]byte(strconv.Itoa(p.value() + n)))
	case "get":
	case "fail":
		return nil, protocol.AppError("nope", "failed on purpose")
	case "dirtyfail":
		p.self.SetState([]byte("999"))
		return nil, errors.New("failed after a change")
	case "panic":
		p.self.SetState([]byte("999"))
		panic("on purpose")
	case "setkey":
		if err := p.self.SetKey(string(c.Payload), []byte("v")); err != nil {
			return nil, err
		}
	case "keyfail":
		_ = p.self.SetKey("bad", []byte("v"))
		for _, k := range p.self.Keys() {
			p.self.DeleteKey(k)
		}
		return nil, errors.New("failed after changing the keys")
	case "keys":
		return []byte(strings.Join(p.self.Keys(), ",")), nil
	case "block":
		p.p.blocked <- struct{}{}
		<-p.p.release
	case "big":
		if len(c.Payload) > 0 {
			p.self.SetState([]byte("999"))
		}
		return make([]byte, sandboxMaxPayload), nil
	default:
		return nil, UnknownMethod(c)
	}
	return []byte(strconv.Itoa(p.value())), nil
}

func registerProbe(t *testing.T, s *sandbox, opts ...TypeOption) *probeStats {
	t.Helper()
	st := newProbeStats()
	if err := s.register("probe", func(self *Self) Actor { return &probe{self: self, p: st} }, opts); err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *sandbox) mustCall(t *testing.T, method, payload string) string {
	t.Helper()
	return s.mustCallActor(t, "probe", "p1", method, payload)
}

func (s *sandbox) mustCallActor(t *testing.T, typ placement.ActorType, id placement.ActorID, method, payload string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	reply, err := s.call(ctx, typ, id, method, []byte(payload), nil)
	if err != nil {
		t.Fatalf("%s %s %s %q: %v", typ, id, method, payload, err)
	}
	return string(reply)
}

// startCall puts a call in the mailbox and returns where its reply arrives.
func (s *sandbox) startCall(t *testing.T, method, payload string) <-chan *nats.Msg {
	t.Helper()
	done, err := s.start(context.Background(), "probe", "p1", method, []byte(payload), nil)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func await(t *testing.T, done <-chan *nats.Msg) ([]byte, error) {
	t.Helper()
	select {
	case m := <-done:
		return replyOf(m)
	case <-time.After(hang):
		t.Fatal("no reply")
		return nil, nil
	}
}

func (s *sandbox) stored(key string) string { return string(s.rt.entry(key).data) }

// storedCalls is the call records the state entry of key holds.
func (s *sandbox) storedCalls(t *testing.T, key string) []*callRecord {
	t.Helper()
	_, _, calls, _, err := s.rt.entry(key).decodeAll()
	if err != nil {
		t.Fatal(err)
	}
	return calls
}

func TestRuntimeRunsTurnsInMailboxOrderOneAtATime(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	first := s.startCall(t, "block", "")
	<-st.blocked
	var replies []<-chan *nats.Msg
	for i := range 20 {
		replies = append(replies, s.startCall(t, "add", strconv.Itoa(i)))
	}
	close(st.release)
	if _, err := await(t, first); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i, r := range replies {
		sum += i
		got, err := await(t, r)
		if err != nil || string(got) != strconv.Itoa(sum) {
			t.Fatalf("reply %d = %q, %v; want %d", i, got, err, sum)
		}
	}
	if st.overlapped.Load() {
		t.Fatal("two turns of one actor ran at once")
	}
	want := []string{"block:"}
	for i := range 20 {
		want = append(want, "add:"+strconv.Itoa(i))
	}
	if got := strings.Join(st.order, " "); got != strings.Join(want, " ") {
		t.Fatalf("turns ran as %s", got)
	}
	if got := s.stored(StateKey("probe", "p1")); got != strconv.Itoa(sum) {
		t.Fatalf("stored %q, want %d", got, sum)
	}
}

// TestRuntimeDeactivationWaitsBehindTheRunningTurn: an order to deactivate
// (a table change) goes ahead of the queued calls but behind the running
// turn; the calls queued behind it are routed again, to a new activation.
func TestRuntimeDeactivationWaitsBehindTheRunningTurn(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	s.mustCall(t, "add", "1")
	running := s.startCall(t, "block", "")
	<-st.blocked
	queued := s.startCall(t, "add", "10")
	a := s.activation("probe", "p1")
	a.moveAway()
	if n := st.deactivations.Load(); n != 0 {
		t.Fatalf("deactivated while a turn ran (%d)", n)
	}
	close(st.release)
	if got, err := await(t, running); err != nil || string(got) != "1" {
		t.Fatalf("the running turn: %q, %v", got, err)
	}
	// Deactivate saved 1+1000; the queued call ran on a new activation that
	// loaded it.
	if got, err := await(t, queued); err != nil || string(got) != "1011" {
		t.Fatalf("the queued call: %q, %v; want 1011", got, err)
	}
	if a, d := st.activations.Load(), st.deactivations.Load(); a != 2 || d != 1 {
		t.Fatalf("%d activations, %d deactivations; want 2 and 1", a, d)
	}
}

// TestRuntimeDiscardRules: a failed turn keeps the activation unless its
// memory may differ from the store.
func TestRuntimeDiscardRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  string
		payload string
		prepare func(s *sandbox)
		code    protocol.Code
		kept    bool
	}{
		{name: "an error, nothing changed", method: "fail", code: protocol.CodeApplication, kept: true},
		{name: "an error after a change", method: "dirtyfail", code: protocol.CodeApplication},
		{name: "a panic", method: "panic", code: protocol.CodeInternal},
		{name: "a reply too large, nothing changed", method: "big", code: protocol.CodePayloadTooLarge, kept: true},
		{name: "a reply too large after a change", method: "big", payload: "x", code: protocol.CodePayloadTooLarge},
		{name: "a save that conflicts", method: "add", payload: "1", code: protocol.CodeStateConflict,
			prepare: func(s *sandbox) { // another writer got there first
				key := StateKey("probe", "p1")
				if _, err := s.rt.save(0, key, []byte("50"), nil, s.rt.entry(key).rev); err != nil {
					panic(err)
				}
			}},
		{name: "a save that fails", method: "add", payload: "1", code: protocol.CodeOutcomeUnknown,
			prepare: func(s *sandbox) {
				s.rt.setFailSave(func(string) error { return protocol.Errorf(protocol.CodeOutcomeUnknown, "no answer") })
			}},
		{name: "the fence closed", method: "add", payload: "1", code: protocol.CodeUnavailable,
			prepare: func(s *sandbox) { s.rt.fenced.Store(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			st := registerProbe(t, s)
			s.mustCall(t, "add", "5")
			if tc.prepare != nil {
				tc.prepare(s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			_, err := s.call(ctx, "probe", "p1", tc.method, []byte(tc.payload), nil)
			var e *protocol.Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("error %v; want code %v", err, tc.code)
			}
			s.rt.setFailSave(nil)
			s.rt.fenced.Store(false)
			want := int32(2)
			if tc.kept {
				want = 1
			}
			got := s.mustCall(t, "get", "")
			if n := st.activations.Load(); n != want {
				t.Fatalf("%d activations after the failure, want %d (kept: %v)", n, want, tc.kept)
			}
			if stored := s.stored(StateKey("probe", "p1")); got != stored {
				t.Fatalf("the actor sees %q, the store holds %q", got, stored)
			}
			if st.deactivations.Load() != 0 {
				t.Fatal("a discarded activation ran its Deactivate hook")
			}
		})
	}
}

// TestRuntimeACallPastItsDeadlineDoesNotRun: a call whose deadline passed
// while it waited in the mailbox fails without running; the activation
// stays.
func TestRuntimeACallPastItsDeadlineDoesNotRun(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	running := s.startCall(t, "block", "")
	<-st.blocked
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	late, err := s.start(ctx, "probe", "p1", "add", []byte("1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	close(st.release)
	await(t, running)
	if _, err := await(t, late); !errors.Is(err, protocol.ErrDeadlineExceeded) {
		t.Fatalf("late call: %v; want DEADLINE_EXCEEDED", err)
	}
	if got := s.mustCall(t, "get", ""); got != "0" || st.activations.Load() != 1 {
		t.Fatalf("state %q after %d activations; want 0 after 1", got, st.activations.Load())
	}
}

// TestRuntimeSavesBeforeItReplies: no reply leaves before the state it
// reports is stored, and a failed save never sends the turn's reply.
func TestRuntimeSavesBeforeItReplies(t *testing.T) {
	s := newTestSandbox(t, Config{})
	registerProbe(t, s)
	saving, unblock := make(chan struct{}), make(chan struct{})
	s.rt.setFailSave(func(string) error {
		saving <- struct{}{}
		<-unblock
		return nil
	})
	done := s.startCall(t, "add", "7")
	<-saving
	select {
	case m := <-done:
		t.Fatalf("replied %q before the save returned", m.Data)
	default:
	}
	close(unblock)
	if got, err := await(t, done); err != nil || string(got) != "7" {
		t.Fatalf("reply %q, %v", got, err)
	}
	s.rt.setFailSave(nil)
	if got := s.stored(StateKey("probe", "p1")); got != "7" {
		t.Fatalf("stored %q", got)
	}
}

func TestRuntimeCollectsIdleActors(t *testing.T) {
	s := newTestSandbox(t, Config{IdleTimeout: time.Hour})
	st := registerProbe(t, s)
	s.mustCall(t, "add", "1")
	s.advance(50 * time.Minute)
	s.mustCall(t, "get", "") // a call resets the idle time
	s.advance(59 * time.Minute)
	if st.deactivations.Load() != 0 || s.activation("probe", "p1") == nil {
		t.Fatal("deactivated before an hour idle")
	}
	s.advance(16 * time.Minute) // idle 75 min: swept within 1.25 timeouts
	if st.deactivations.Load() != 1 || s.activation("probe", "p1") != nil {
		t.Fatalf("not deactivated after 75 min idle (%d deactivations)", st.deactivations.Load())
	}
	if got := s.stored(StateKey("probe", "p1")); got != "1001" {
		t.Fatalf("Deactivate's state not saved: %q", got)
	}
}

func TestRuntimeTimersTickAsTurns(t *testing.T) {
	s := newTestSandbox(t, Config{IdleTimeout: time.Hour})
	var ticks atomic.Int32
	start := func(keepAlive bool) Factory {
		return func(self *Self) Actor {
			return ActorFunc(func(_ context.Context, c Call) ([]byte, error) {
				return nil, self.SetTimer("t", Timer{Due: time.Second, Period: time.Minute, KeepAlive: keepAlive, Tick: func(context.Context) error {
					ticks.Add(1)
					self.SetState([]byte(strconv.Itoa(int(ticks.Load()))))
					return nil
				}})
			})
		}
	}
	if err := s.register("ticker", start(false), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.register("keeper", start(true), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if _, err := s.call(ctx, "ticker", "t1", "start", nil, nil); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second - time.Millisecond)
	if n := ticks.Load(); n != 0 {
		t.Fatalf("%d ticks before Due", n)
	}
	s.advance(time.Millisecond + 3*time.Minute) // ticks at 1s, 1m1s, 2m1s, 3m1s
	if n := ticks.Load(); n != 4 {
		t.Fatalf("%d ticks, want 4", n)
	}
	if got := s.stored(StateKey("ticker", "t1")); got != "4" {
		t.Fatalf("a tick's state not saved: %q", got)
	}
	s.advance(80 * time.Minute) // the timer does not keep it: collected, and its timer stops
	if s.activation("ticker", "t1") != nil {
		t.Fatal("a timer without KeepAlive kept the actor active")
	}
	n := ticks.Load()
	s.advance(10 * time.Minute)
	if ticks.Load() != n {
		t.Fatal("a deactivated actor's timer ticked")
	}

	ticks.Store(0)
	if _, err := s.call(ctx, "keeper", "k1", "start", nil, nil); err != nil {
		t.Fatal(err)
	}
	s.advance(3 * time.Hour)
	if s.activation("keeper", "k1") == nil {
		t.Fatal("a KeepAlive timer did not keep the actor active")
	}
	if n := ticks.Load(); n != 180 {
		t.Fatalf("%d ticks in 3 h, want 180", n)
	}
}

// TestRuntimeReentrancy: a call of the chain holding the turn, which lists
// the actor, re-enters a reentrant type and fails at once for others.
func TestRuntimeReentrancy(t *testing.T) {
	for _, reentrant := range []bool{true, false} {
		t.Run(fmt.Sprintf("reentrant=%v", reentrant), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			var opts []TypeOption
			if reentrant {
				opts = append(opts, Reentrant())
			}
			st := registerProbe(t, s, opts...)
			chain := protocol.NewChainID()
			hdr := nats.Header{protocol.HeaderChain: []string{chain}}
			holder, err := s.start(context.Background(), "probe", "p1", "block", nil, hdr)
			if err != nil {
				t.Fatal(err)
			}
			<-st.blocked
			back := nats.Header{
				protocol.HeaderChain:     []string{chain},
				protocol.HeaderChainPath: []string{protocol.FormatPath([]protocol.Hop{{Type: "probe", ID: "p1"}, {Type: "other", ID: "o1"}})},
			}
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			got, err := s.call(ctx, "probe", "p1", "add", []byte("3"), back)
			switch {
			case reentrant && (err != nil || string(got) != "3"):
				t.Fatalf("re-entering call: %q, %v; want 3", got, err)
			case !reentrant && !errors.Is(err, protocol.ErrWouldDeadlock):
				t.Fatalf("re-entering call: %v; want WOULD_DEADLOCK", err)
			}
			// A call of another chain waits behind the holder.
			other := s.startCall(t, "add", "100")
			close(st.release)
			if _, err := await(t, holder); err != nil {
				t.Fatal(err)
			}
			want := "100"
			if reentrant {
				want = "103"
			}
			if got, err := await(t, other); err != nil || string(got) != want {
				t.Fatalf("the other chain's call: %q, %v; want %s", got, err, want)
			}
		})
	}
}

// withID is a header carrying call id id.
func withID(id string) nats.Header { return nats.Header{protocol.HeaderCallID: {id}} }

// A busy actor's saved window turns over in seconds. An activation that ends
// gracefully saves the recent recorded calls of its memory with the state,
// so that the next activation still answers a retry of one of them (its
// reply lost just before the handoff) from the record; the saved window of
// later saves keeps the type's bounds. An activation that ends without a
// farewell (a crash) leaves only the saved window.
func TestRuntimeAGracefulEndKeepsTheRecentCallsOfABusyActor(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s, CallWindow(3, 0, 0))
	call := func(id, method, payload string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		reply, err := s.call(ctx, "probe", "p1", method, []byte(payload), withID(id))
		if err != nil {
			t.Fatalf("%s %s (call id %s): %v", method, payload, id, err)
		}
		return string(reply)
	}
	for i := 1; i <= 6; i++ {
		call("k"+strconv.Itoa(i), "add", "1")
	}
	call("r1", "get", "") // read-only: not saved, not in the farewell
	s.deactivate("probe", "p1")
	stored := func() []string {
		var ids []string
		for _, r := range s.storedCalls(t, StateKey("probe", "p1")) {
			ids = append(ids, r.Id)
		}
		return ids
	}
	if got := strings.Join(stored(), ","); got != "k1,k2,k3,k4,k5,k6" {
		t.Fatalf("records saved at the graceful end: %s; want k1..k6", got)
	}
	runs := len(st.order)
	if got := call("k1", "add", "1"); got != "1" {
		t.Fatalf("k1 again on the next activation = %q, want its recorded reply 1", got)
	}
	if len(st.order) != runs {
		t.Fatalf("k1 ran again: %v", st.order[runs:])
	}
	call("k7", "add", "1") // 1006 (Deactivate added 1000) + 1
	if got := strings.Join(stored(), ","); got != "k5,k6,k7" {
		t.Fatalf("saved window after the next call: %s; want the newest 3", got)
	}
	if got := call("k2", "add", "1"); got != "2" {
		t.Fatalf("k2 again, from this activation's memory = %q, want 2", got)
	}

	// Without a farewell the next activation knows the saved window only.
	for i := 8; i <= 12; i++ {
		call("k"+strconv.Itoa(i), "add", "1")
	}
	s.activation("probe", "p1").drop()
	s.settle()
	if got := call("k8", "add", "1"); got != "1013" {
		t.Fatalf("k8 again after a drop = %q, want it run again (1013)", got)
	}
}
