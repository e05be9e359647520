package host

import (
	"sync"
	"time"
)

// sweeper deactivates idle activations. It sweeps four times per shortest
// idle timeout (at most once a minute, at least every 10 ms), so an actor
// is deactivated between 1 and 1.25 idle timeouts after its last call, and
// a host with a million idle actors does not spend a core scanning them.
//
// It runs on its clock's timer: no goroutine of its own, and a clock moved
// by hand moves the sweeps too.
type sweeper struct {
	types  catalog
	clock  clock
	period time.Duration

	mu      sync.Mutex
	t       clockTimer
	stopped bool
}

func startSweeper(types catalog, c clock) *sweeper {
	s := &sweeper{types: types, clock: c, period: time.Minute}
	for _, t := range types {
		s.period = min(s.period, max(t.idle/4, 10*time.Millisecond))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = c.AfterFunc(s.period, s.sweep)
	return s
}

// sweep runs one sweep and schedules the next.
func (s *sweeper) sweep() {
	sweepIdle(s.types, s.clock.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		s.t.Reset(s.period)
	}
}

// stop ends the sweeps; a sweep running now finishes. Safe on nil.
func (s *sweeper) stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.t.Stop()
}

// sweepIdle deactivates every activation idle for longer than its type's
// idle timeout at now.
func sweepIdle(types catalog, now time.Time) {
	for _, t := range types {
		cutoff := now.UnixNano() - int64(t.idle)
		t.dir.each(func(a *activation) {
			if a.idleSince(cutoff) {
				a.deactivate()
			}
		})
	}
}
