package host

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// hooked records its lifecycle hooks.
type hooked struct {
	activations, deactivations *atomic.Int32
}

func (a hooked) Activate(context.Context) error {
	a.activations.Add(1)
	return nil
}

func (a hooked) Deactivate(context.Context) error {
	a.deactivations.Add(1)
	return nil
}

func (a hooked) Receive(context.Context, Call) ([]byte, error) { return []byte("ok"), nil }

func TestIdleDeactivationFollowsTheClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	var activations, deactivations atomic.Int32
	h := startInternal(t, Config{Clock: clock, IdleTimeout: time.Hour}, func(h *Host) {
		if err := h.Register("hooked", func(*Self) Actor { return hooked{&activations, &deactivations} }, NoState()); err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	callOnce := func() {
		t.Helper()
		if _, err := h.Router().Call(ctx, "hooked", "a", "m", nil); err != nil {
			t.Fatal(err)
		}
	}
	callOnce()
	clock.advance(59 * time.Minute)
	sweepIdle(h.types, clock.Now())
	if n := h.ActiveActors()["hooked"]; n != 1 || deactivations.Load() != 0 {
		t.Fatalf("after 59 idle minutes: %d active, %d deactivations; want 1, 0", n, deactivations.Load())
	}
	callOnce() // a call resets the idle time
	clock.advance(59 * time.Minute)
	sweepIdle(h.types, clock.Now())
	if h.ActiveActors()["hooked"] != 1 {
		t.Fatal("an actor called 59 minutes ago was deactivated")
	}
	clock.advance(2 * time.Minute)
	// The reply can reach us before the mailbox goroutine has marked itself
	// idle, and a sweep skips a running activation: sweep until it is gone.
	waitUntil(t, func() bool {
		sweepIdle(h.types, clock.Now())
		return h.ActiveActors()["hooked"] == 0
	})
	if deactivations.Load() != 1 {
		t.Fatalf("Deactivate ran %d times, want 1", deactivations.Load())
	}
	callOnce()
	if activations.Load() != 2 {
		t.Fatalf("Activate ran %d times, want 2 (once per activation)", activations.Load())
	}
}

func TestCallsQueuedBehindADeactivationAreServed(t *testing.T) {
	gate := make(chan struct{})
	var turns atomic.Int32
	h := startInternal(t, Config{}, func(h *Host) {
		_ = h.Register("gated", Func(func(ctx context.Context, c Call) ([]byte, error) {
			if turns.Add(1) == 1 {
				<-gate
			}
			return nil, nil
		}), NoState())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { _, err := h.Router().Call(ctx, "gated", "g", "m", nil); errs <- err }()
	waitUntil(t, func() bool { return turns.Load() == 1 })
	// Deactivate while a turn runs, then call again: the second call lands
	// behind the deactivation and must be served by a new activation.
	h.deactivateAll(func(*activation) bool { return true })
	go func() { _, err := h.Router().Call(ctx, "gated", "g", "m", nil); errs <- err }()
	waitUntil(t, func() bool { return queued(h, "gated", "g") == 2 })
	close(gate)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if turns.Load() != 2 {
		t.Fatalf("%d turns, want 2", turns.Load())
	}
}

// queued counts the envelopes waiting in an actor's mailbox.
func queued(h *Host, typ, id string) int {
	var n int
	h.types[placement.ActorType(typ)].dir.each(func(a *activation) {
		if string(a.id) == id {
			a.mu.Lock()
			n = len(a.queue) - a.head
			a.mu.Unlock()
		}
	})
	return n
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
