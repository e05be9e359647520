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
	ticked   chan<- struct{} // receives after every tick, when there is room
	deacts   *atomic.Int32
	turns    int // written by every turn without a lock
}

func (k *ticker) Activate(context.Context) error {
	tm := k.timer
	tm.Tick = func(context.Context) error {
		k.enter()
		k.ticks.Add(1)
		select {
		case k.ticked <- struct{}{}:
		default:
		}
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
	ticked                          chan struct{}
}

func (p *tickerProbe) register(t *testing.T, h *Host, tm Timer) {
	t.Helper()
	p.ticked = make(chan struct{}, 1)
	err := h.Register("ticker", func(s *Self) Actor {
		return &ticker{self: s, timer: tm, inTurn: &p.inTurn, overlaps: &p.overlaps, ticks: &p.ticks, deacts: &p.deacts, ticked: p.ticked}
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
	deadline := time.After(10 * time.Second)
	for p.ticks.Load() < 20 {
		select {
		case <-p.ticked:
		case <-deadline:
			t.Fatalf("%d ticks in 10 s", p.ticks.Load())
		}
	}
	if n := p.overlaps.Load(); n != 0 {
		t.Fatalf("%d turns overlapped another turn", n)
	}
	t.Logf("1200 calls and %d ticks, no overlap", p.ticks.Load())
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
