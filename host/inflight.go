package host

import (
	"sync"
	"sync/atomic"
)

// inflight counts running work (mailboxes, deferred admissions, forwarded
// calls) and tells when none is left. Unlike sync.WaitGroup, work may start
// from a count of zero while another goroutine waits for the count to reach
// zero, as a request arriving during Shutdown does; and a wait bounded by a
// context leaves no goroutine behind when the context ends first.
type inflight struct {
	n    atomic.Int64
	mu   sync.Mutex
	none chan struct{} // made by idle while work runs; closed when n drops to 0
}

// add records that one piece of work started. It takes no lock: a call
// that finds its mailbox idle starts work from a count of zero, and a lock
// and a channel for every such call were measurable.
func (f *inflight) add() { f.n.Add(1) }

// done records that one piece of work ended.
func (f *inflight) done() {
	switch n := f.n.Add(-1); {
	case n < 0:
		panic("host: inflight.done without add")
	case n > 0:
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Work that started since is the next round's: its own done closes.
	if f.none != nil && f.n.Load() == 0 {
		close(f.none)
		f.none = nil
	}
}

// idle returns a channel closed once no work is running: at once if none is
// now, else when the count next drops to zero.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n.Load() == 0 {
		return alreadyIdle
	}
	if f.none == nil {
		f.none = make(chan struct{})
	}
	return f.none
}

var alreadyIdle = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
