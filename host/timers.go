package host

import (
	"context"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Timer is a callback an activation runs on a schedule, as a turn in its own
// mailbox: a tick never overlaps a call or another tick, and may read and set
// the actor's state (saved at the end of the tick, as for a call).
//
// Timers belong to one activation and are not durable: they stop when it is
// deactivated (idle, moved, host shutdown) and are gone after a crash. Set
// them again in the Activate hook. For schedules that must survive, use a
// reminder (Self.SetReminder).
type Timer struct {
	// Due is the wait before the first tick; 0 means Period.
	Due time.Duration
	// Period is the wait between the end of one tick and the start of the
	// next (fixed delay, so ticks never pile up); 0 means one tick only.
	Period time.Duration
	// KeepAlive counts ticks as activity, so that the actor is not
	// deactivated for being idle while the timer runs. Off by default: a
	// timer alone does not keep an idle actor in memory.
	KeepAlive bool
	// Tick runs each tick on the activation's turn goroutine; ctx ends after
	// the host's call timeout. An error is logged; a panic, or an error after
	// the tick set the state, discards the activation as a failed call does.
	Tick func(ctx context.Context) error
}

// timerSet is an activation's timers. Ticks are posted from time.AfterFunc
// goroutines, so its fields are guarded by mu.
type timerSet struct {
	mu      sync.Mutex
	m       map[string]*timer
	stopped bool // the activation ended
}

// timer is one named timer of an activation. While it waits it holds a
// runtime timer but no goroutine.
type timer struct {
	a       *activation
	set     *timerSet
	name    string
	cfg     Timer
	t       clockTimer
	stopped bool
}

// SetTimer starts a timer named name (1–64 characters from A-Z a-z 0-9 _ -),
// replacing a timer of the same name. Call it from a turn or a hook, such as
// Activate.
func (s *Self) SetTimer(name string, t Timer) error {
	if err := placement.ValidateName("timer", name); err != nil {
		return protocol.Errorf(protocol.CodeInvalidArgument, "%v", err)
	}
	if t.Tick == nil || t.Due < 0 || t.Period < 0 {
		return protocol.Errorf(protocol.CodeInvalidArgument, "timer %q needs a Tick function and no negative durations", name)
	}
	a := s.a
	r := a.extra()
	if r.timers == nil {
		r.timers = &timerSet{m: make(map[string]*timer)}
	}
	set := r.timers
	set.mu.Lock()
	defer set.mu.Unlock()
	if set.stopped {
		return protocol.Errorf(protocol.CodeUnavailable, "the activation of %s %s has ended", a.t.name, protocol.EncodeID(string(a.id)))
	}
	if old := set.m[name]; old != nil {
		old.stopLocked()
	}
	tm := &timer{a: a, set: set, name: name, cfg: t}
	set.m[name] = tm
	first := t.Due
	if first == 0 {
		first = t.Period
	}
	tm.t = a.e.clock.AfterFunc(first, tm.fire)
	return nil
}

// StopTimer stops the timer named name and reports whether there was one. A
// tick already waiting in the mailbox does not run.
func (s *Self) StopTimer(name string) bool {
	set := s.a.timerSet()
	if set == nil {
		return false
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	tm := set.m[name]
	if tm == nil {
		return false
	}
	tm.stopLocked()
	delete(set.m, name)
	return true
}

// Timers lists the names of the activation's running timers.
func (s *Self) Timers() []string {
	set := s.a.timerSet()
	if set == nil {
		return nil
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	names := make([]string, 0, len(set.m))
	for n := range set.m {
		names = append(names, n)
	}
	return names
}

// timerSet is the activation's timers, nil if it never set one.
func (a *activation) timerSet() *timerSet {
	if r := a.rare.Load(); r != nil {
		return r.timers
	}
	return nil
}

// stopTimers stops every timer of the activation; it is ending.
func (a *activation) stopTimers() {
	set := a.timerSet()
	if set == nil {
		return
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	set.stopped = true
	for name, tm := range set.m {
		tm.stopLocked()
		delete(set.m, name)
	}
}

func (tm *timer) stopLocked() {
	tm.stopped = true
	tm.t.Stop()
}

// fire posts a tick to the mailbox. It runs on the runtime timer's goroutine.
func (tm *timer) fire() {
	tm.set.mu.Lock()
	live := !tm.stopped
	tm.set.mu.Unlock()
	if !live {
		return
	}
	if tm.a.e.closing.Load() {
		tm.retire()
		return
	}
	p := &postedTurn{what: "timer " + tm.name, run: tm.tick, done: tm.ticked, keepAlive: tm.cfg.KeepAlive}
	switch err := tm.a.post(p, time.Now().Add(tm.a.e.callTimeout)); err {
	case nil:
	case errBusy:
		tm.ticked(false) // skip this tick: the mailbox is full of calls
	default:
		tm.retire() // the activation ended
	}
}

// tick is the turn of one tick. It counts the tick before it runs, so that
// what the tick does is never seen before it is counted.
func (tm *timer) tick(ctx context.Context) error {
	tm.a.e.obs.TimerFired(tm.a.t.name)
	return tm.cfg.Tick(ctx)
}

// ticked schedules the next tick after a tick ran or was skipped, or retires
// a one-shot timer.
func (tm *timer) ticked(bool) {
	tm.set.mu.Lock()
	defer tm.set.mu.Unlock()
	if tm.stopped {
		return
	}
	if tm.cfg.Period == 0 {
		tm.stopped = true
		if tm.set.m[tm.name] == tm {
			delete(tm.set.m, tm.name)
		}
		return
	}
	tm.t.Reset(tm.cfg.Period)
}

// retire stops the timer and forgets it.
func (tm *timer) retire() {
	tm.set.mu.Lock()
	defer tm.set.mu.Unlock()
	tm.stopLocked()
	if tm.set.m[tm.name] == tm {
		delete(tm.set.m, tm.name)
	}
}
