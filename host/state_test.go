package host_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

func registerCounter(h *host.Host) { _ = counter.Register(h) }

func TestStateSurvivesDeactivationAndRestarts(t *testing.T) {
	dir := t.TempDir()
	s := natstest.ServerIn(t, dir)
	ended, onActivation := activationEnds()
	cfg := host.Config{IdleTimeout: 50 * time.Millisecond}
	first := cfg
	first.OnActivation = onActivation
	h := startHost(t, s, first, registerCounter)
	r := newRouter(t, s)
	waitMembers(t, r, 1)

	ids := []placement.ActorID{"a", "b", "c"}
	for i, id := range ids {
		call(t, r, counter.Type, id, "add", fmt.Sprint(10*(i+1)))
		call(t, r, counter.Type, id, "add", "1")
	}
	// Idle deactivation empties the host; the next calls reactivate from the store.
	waitEnds(t, ended, len(ids))
	if n := h.ActiveActors()[counter.Type]; n != 0 {
		t.Fatalf("%d activations after every one ended", n)
	}
	checkTotals(t, r, ids)

	// A new host incarnation reads the same state.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Its lease is short: it is still live when the server stops below, and
	// its record must expire after the restart.
	startHost(t, s, host.Config{Lease: placement.LeaseConfig{TTL: time.Second}}, registerCounter)
	waitMembers(t, r, 1)
	checkTotals(t, r, ids)

	// A restarted server on the same store keeps it too.
	s.Shutdown()
	s.WaitForShutdown()
	s2 := natstest.ServerIn(t, dir)
	startHost(t, s2, host.Config{}, registerCounter)
	r2 := newRouter(t, s2)
	checkTotals(t, r2, ids)
}

func checkTotals(t *testing.T, r *router.Router, ids []placement.ActorID) {
	t.Helper()
	for i, id := range ids {
		if got, want := call(t, r, counter.Type, id, "get", ""), fmt.Sprint(10*(i+1)+1); got != want {
			t.Errorf("counter %s = %s, want %s", id, got, want)
		}
	}
}

func TestStaleWriteIsRefusedNotOverwritten(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, registerCounter)
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	// Calls without a call id: the state bucket then holds the total's bytes
	// alone, which this test reads and writes behind the host's back.
	callPlain(t, r, counter.Type, "x", "add", "1") // the activation now holds total 1 at some revision

	// Another writer changes the state behind the activation's back.
	js, _ := jetstream.New(natstest.Connect(t, s))
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, host.DefaultStateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, host.StateKey(counter.Type, "x"), []byte("100")); err != nil {
		t.Fatal(err)
	}
	// The stale activation's save is refused; the router retries on a fresh
	// activation, which reads 100.
	if got := callPlain(t, r, counter.Type, "x", "add", "1"); got != "101" {
		t.Fatalf("add after a concurrent write = %s, want 101 (the newer state must win)", got)
	}
	e, err := kv.Get(ctx, host.StateKey(counter.Type, "x"))
	if err != nil || string(e.Value()) != "101" {
		t.Fatalf("stored state = %q, %v; want 101", e.Value(), err)
	}
}

func TestHostDeathMovesActorsWithTheirState(t *testing.T) {
	s := natstest.Server(t)
	cfg := host.Config{Lease: placement.LeaseConfig{TTL: time.Second}}
	hosts := []*host.Host{
		startHost(t, s, cfg, registerCounter),
		startHost(t, s, cfg, registerCounter),
	}
	r := newRouter(t, s)
	table := waitMembers(t, r, 2)
	var ids []placement.ActorID
	for i := range 40 {
		id := placement.ActorID(fmt.Sprint("k", i))
		ids = append(ids, id)
		call(t, r, counter.Type, id, "add", fmt.Sprint(i))
	}
	// Close stops the lease without removing it, as a crash would.
	hosts[0].Close()
	start := time.Now()
	waitMembers(t, r, 1)
	t.Logf("lease expired %v after the host died", time.Since(start).Round(time.Millisecond))
	moved := 0
	for i, id := range ids {
		if o, _ := table.Owner(counter.Type, id); o.ID == hosts[0].ID() {
			moved++
		}
		if got := call(t, r, counter.Type, id, "get", ""); got != fmt.Sprint(i) {
			t.Errorf("counter %s = %s, want %d", id, got, i)
		}
	}
	if moved == 0 {
		t.Fatal("the dead host owned none of the counters; the test proves nothing")
	}
}

// activationEnds returns a Config.OnActivation and a channel that receives
// the record of every activation that ends.
func activationEnds() (<-chan host.ActivationRecord, func(host.ActivationRecord)) {
	ch := make(chan host.ActivationRecord, 1024)
	return ch, func(r host.ActivationRecord) {
		if !r.End.IsZero() {
			ch <- r
		}
	}
}

// waitEnds waits until n activations have ended.
func waitEnds(t *testing.T, ended <-chan host.ActivationRecord, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := range n {
		select {
		case <-ended:
		case <-deadline:
			t.Fatalf("%d of %d activations ended", i, n)
		}
	}
}

func TestBusyMailboxAnswersBusy(t *testing.T) {
	s := natstest.Server(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("slow", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		}), host.MailboxSize(1), host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	errs := make(chan error, 3)
	callSlow := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := r.Call(ctx, "slow", "s", "m", nil)
		errs <- err
	}
	go callSlow()
	<-entered // the first call holds the turn
	go callSlow()
	go callSlow()
	// One of the two waits in the mailbox, the other finds it full.
	if err := <-errs; !errors.Is(err, protocol.ErrBusy) {
		t.Fatalf("want ErrBusy, got %v", err)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("queued call: %v", err)
		}
	}
}

func TestActorPanicFailsTheCallNotTheHost(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("fragile", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			if c.Method == "boom" {
				panic("boom")
			}
			return []byte("fine"), nil
		}), host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	_, err := r.Call(context.Background(), "fragile", "f", "boom", nil)
	if !errors.Is(err, protocol.ErrInternal) {
		t.Fatalf("want ErrInternal, got %v", err)
	}
	if got := call(t, r, "fragile", "f", "ok", ""); got != "fine" {
		t.Fatalf("after a panic: %q", got)
	}
}

func TestApplicationErrorsKeepTheirCode(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("bank", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			if c.Method == "plain" {
				return nil, errors.New("plain failure\nsecond line")
			}
			return nil, protocol.AppError("insufficient_funds", "balance 3 is below 5")
		}), host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	_, err := r.Call(context.Background(), "bank", "acct", "withdraw", []byte("5"))
	var e *protocol.Error
	if !errors.As(err, &e) || e.Code != protocol.CodeApplication || e.AppCode != "insufficient_funds" || e.Message != "balance 3 is below 5" {
		t.Fatalf("got %#v", err)
	}
	if !errors.Is(err, protocol.AppError("insufficient_funds", "")) || errors.Is(err, protocol.AppError("other", "")) {
		t.Fatal("errors.Is must compare application codes")
	}
	_, err = r.Call(context.Background(), "bank", "acct", "plain", nil)
	if !errors.As(err, &e) || e.Code != protocol.CodeApplication || e.Message != "plain failure\nsecond line" {
		t.Fatalf("plain error: %#v", err)
	}
}

func TestActorsCallOtherActors(t *testing.T) {
	s := natstest.Server(t)
	register := func(h *host.Host) {
		registerCounter(h)
		// A tally adds its payload to two counters and replies their sum,
		// calling them through its own host's router with the turn's ctx.
		_ = h.Register("tally", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				var sum int64
				for _, id := range []placement.ActorID{"left", "right"} {
					reply, err := self.Router().Call(ctx, counter.Type, id+"-"+self.ID(), "add", c.Payload)
					if err != nil {
						return nil, err
					}
					n, _ := strconv.ParseInt(string(reply), 10, 64)
					sum += n
				}
				return strconv.AppendInt(nil, sum, 10), nil
			})
		}, host.NoState())
	}
	for range 2 {
		startHost(t, s, host.Config{}, register)
	}
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	call(t, r, "tally", "t", "add", "2")
	if got := call(t, r, "tally", "t", "add", "3"); got != "10" {
		t.Fatalf("tally = %s, want 10 (two counters at 5)", got)
	}
	if got := call(t, r, counter.Type, "left-t", "get", ""); got != "5" {
		t.Fatalf("left counter = %s, want 5", got)
	}
}
