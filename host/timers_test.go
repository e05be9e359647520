package host

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/protocol"
)

// ticker counts its turns; its fields are plain (unsynchronised) so that the
// race detector sees any two turns that overlap, and inTurn counts the
// overlaps it sees itself.
type ticker struct {
	self     *Self
	timer    Timer
	inTurn   *atomic.Int32
	overlaps *atomic.Int32
	ticks    *atomic.Int32
	deacts   *atomic.Int32
	turns    int // written by every turn without a lock
}

func (k *ticker) Activate(context.Context) error {
	tm := k.timer
	tm.Tick = func(context.Context) error {
		k.enter()
		k.ticks.Add(1)
		return nil
	}
	return k.self.SetTimer("tick", tm)
}

func (k *ticker) Deactivate(context.Context) error {
	k.deacts.Add(1)
	return nil
}

func (k *ticker) Receive(context.Context, Call) ([]byte, error) {
	k.enter()
	return nil, nil
}

// enter holds the turn briefly, long enough for an overlapping tick or call
// to be seen.
func (k *ticker) enter() {
	if k.inTurn.Add(1) != 1 {
		k.overlaps.Add(1)
	}
	k.turns++
	time.Sleep(50 * time.Microsecond)
	k.inTurn.Add(-1)
}

type tickerProbe struct {
	inTurn, overlaps, ticks, deacts atomic.Int32
}

func (p *tickerProbe) register(t *testing.T, h *Host, tm Timer) {
	t.Helper()
	err := h.Register("ticker", func(s *Self) Actor {
		return &ticker{self: s, timer: tm, inTurn: &p.inTurn, overlaps: &p.overlaps, ticks: &p.ticks, deacts: &p.deacts}
	}, NoState())
	if err != nil {
		t.Fatal(err)
	}
}

// TestTimerNeverRunsBesideACall ticks a timer every millisecond while eight
// callers call the same actor: no tick may overlap a call (the in-turn
// counter, and -race on the actor's unsynchronised field).
func TestTimerNeverRunsBesideACall(t *testing.T) {
	var p tickerProbe
	h := startInternal(t, Config{}, func(h *Host) { p.register(t, h, Timer{Period: time.Millisecond}) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 8 {
		wg.Go(func() {
			for range 150 {
				if _, err := h.Router().Call(ctx, "ticker", "t1", "m", nil); err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitUntil(t, func() bool { return p.ticks.Load() >= 20 })
	if n := p.overlaps.Load(); n != 0 {
		t.Fatalf("%d turns overlapped another turn", n)
	}
	t.Logf("1200 calls and %d ticks, no overlap", p.ticks.Load())
}

// TestTimerStopsWithItsActivation: a timer does not keep an idle actor
// active, and it stops ticking once the actor is deactivated.
func TestTimerStopsWithItsActivation(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	var p tickerProbe
	h := startInternal(t, Config{Clock: clock, IdleTimeout: time.Hour}, func(h *Host) {
		p.register(t, h, Timer{Period: time.Millisecond})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Router().Call(ctx, "ticker", "t1", "m", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return p.ticks.Load() >= 5 })
	clock.advance(61 * time.Minute)
	// The sweeper passes over a mailbox that is running a tick at that
	// moment, and catches it at a later sweep, as the host's own does.
	waitUntil(t, func() bool {
		sweepIdle(h.types, clock.Now())
		return h.ActiveActors()["ticker"] == 0
	})
	if p.deacts.Load() != 1 {
		t.Fatalf("%d deactivations, want 1", p.deacts.Load())
	}
	after := p.ticks.Load()
	time.Sleep(30 * time.Millisecond) // 30 periods
	if n := p.ticks.Load(); n > after+1 {
		t.Fatalf("the timer ticked %d times after its activation ended", n-after)
	}
}

// TestTimerKeepAlive: with KeepAlive, ticks count as activity.
func TestTimerKeepAlive(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	var p tickerProbe
	h := startInternal(t, Config{Clock: clock, IdleTimeout: time.Hour}, func(h *Host) {
		p.register(t, h, Timer{Period: time.Millisecond, KeepAlive: true})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Router().Call(ctx, "ticker", "t1", "m", nil); err != nil {
		t.Fatal(err)
	}
	clock.advance(61 * time.Minute)
	seen := p.ticks.Load()
	waitUntil(t, func() bool { return p.ticks.Load() >= seen+2 }) // a tick after the jump
	// Sweep repeatedly: some sweeps land between ticks.
	for range 20 {
		sweepIdle(h.types, clock.Now())
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if h.ActiveActors()["ticker"] != 1 || p.deacts.Load() != 0 {
		t.Fatal("an actor whose KeepAlive timer ticks was deactivated as idle")
	}
}

// TestTimerSetStopAndValidate covers one-shot timers, StopTimer and bad
// timer settings.
func TestTimerSetStopAndValidate(t *testing.T) {
	var once, stopped atomic.Int32
	errs := make(chan error, 4)
	h := startInternal(t, Config{}, func(h *Host) {
		_ = h.Register("setter", func(s *Self) Actor {
			return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
				switch c.Method {
				case "start":
					errs <- s.SetTimer("bad name!", Timer{Tick: func(context.Context) error { return nil }})
					errs <- s.SetTimer("nofunc", Timer{})
					if err := s.SetTimer("once", Timer{Due: time.Millisecond, Tick: func(context.Context) error { once.Add(1); return nil }}); err != nil {
						return nil, err
					}
					return nil, s.SetTimer("stopme", Timer{Due: time.Hour, Tick: func(context.Context) error { stopped.Add(1); return nil }})
				case "stop":
					if !s.StopTimer("stopme") || s.StopTimer("stopme") {
						return nil, context.Canceled
					}
					return []byte(string(rune('0' + len(s.Timers())))), nil
				}
				return nil, UnknownMethod(c)
			})
		}, NoState())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Router().Call(ctx, "setter", "s", "start", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("an invalid timer was accepted")
		}
	}
	waitUntil(t, func() bool { return once.Load() == 1 })
	reply, err := h.Router().Call(ctx, "setter", "s", "stop", nil)
	if err != nil || string(reply) != "0" {
		t.Fatalf("stop: %q, %v; want 0 timers left", reply, err)
	}
	time.Sleep(10 * time.Millisecond)
	if once.Load() != 1 || stopped.Load() != 0 {
		t.Fatalf("one-shot ran %d times (want 1), stopped timer %d (want 0)", once.Load(), stopped.Load())
	}
}

// TestTimerTickCallCycleFailsFast: a tick's calls carry a call chain like a
// call's, so a cycle back into the ticking actor fails at once with
// WOULD_DEADLOCK instead of waiting out the deadline.
func TestTimerTickCallCycleFailsFast(t *testing.T) {
	result := make(chan error, 1)
	h := startInternal(t, Config{}, func(h *Host) {
		_ = h.Register("ticking", func(s *Self) Actor {
			return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
				if c.Method != "start" {
					return nil, nil
				}
				return nil, s.SetTimer("once", Timer{Due: time.Millisecond, Tick: func(ctx context.Context) error {
					_, err := s.Router().Call(ctx, "bouncer", "b", "bounce", nil)
					result <- err
					return nil
				}})
			})
		}, NoState())
		_ = h.Register("bouncer", Func(func(ctx context.Context, c Call) ([]byte, error) {
			return h.Router().Call(ctx, "ticking", "t", "ping", nil)
		}), NoState())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.Router().Call(ctx, "ticking", "t", "start", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-result:
		if !errors.Is(err, protocol.ErrWouldDeadlock) {
			t.Fatalf("the tick's call cycle: %v, want WOULD_DEADLOCK", err)
		}
	case <-time.After(3 * time.Second): // well within the 5 s call timeout
		t.Fatal("the tick's call cycle did not fail at once")
	}
}
