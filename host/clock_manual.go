package host

import (
	"sync"
	"time"
)

// manualClock is a clock moved by hand: its timers run only when Advance
// passes their time. The runtime tests and package actortest drive the
// engine with it, so that nothing waits for real time.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*manualTimer]struct{} // the active ones
	seq    uint64                    // orders timers due at the same time
}

type manualTimer struct {
	c   *manualClock
	f   func()
	at  time.Time
	seq uint64
}

func newManualClock(start time.Time) *manualClock {
	return &manualClock{now: start, timers: make(map[*manualTimer]struct{})}
}

// Now is the clock's time.
func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc runs f when Advance reaches d from now.
func (c *manualClock) AfterFunc(d time.Duration, f func()) clockTimer {
	t := &manualTimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Stop keeps the timer from running; it reports whether it was active.
func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, active := t.c.timers[t]
	delete(t.c.timers, t)
	return active
}

// Reset makes the timer run d from now; it reports whether it was active.
func (t *manualTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	_, active := c.timers[t]
	c.seq++
	t.at, t.seq = c.now.Add(d), c.seq
	c.timers[t] = struct{}{}
	return active
}

// Advance moves the clock by d. Each timer that falls due runs in time
// order, with the clock at its time; after each, settle is called so that
// what the timer started (a tick's turn, which sets the timer again) is done
// before the clock moves on.
func (c *manualClock) Advance(d time.Duration, settle func()) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *manualTimer
		for t := range c.timers {
			if !t.at.After(end) && (next == nil || t.at.Before(next.at) || t.at.Equal(next.at) && t.seq < next.seq) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		delete(c.timers, next)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
		settle()
	}
}
