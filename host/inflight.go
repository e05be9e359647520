package host

import "sync"

// inflight counts running work (mailboxes, deferred admissions, forwarded
// calls) and tells when none is left. Unlike sync.WaitGroup, work may start
// from a count of zero while another goroutine waits for the count to reach
// zero, as a request arriving during Shutdown does; and a wait bounded by a
// context leaves no goroutine behind when the context ends first.
type inflight struct {
	mu   sync.Mutex
	n    int
	none chan struct{} // closed when n drops to 0; nil while n is 0
}

// add records that one piece of work started.
func (f *inflight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.none = make(chan struct{})
	}
	f.n++
}

// done records that one piece of work ended.
func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 {
		close(f.none)
		f.none = nil
	} else if f.n < 0 {
		panic("host: inflight.done without add")
	}
}

// idle returns a channel closed once no work is running: at once if none is
// now, else when the count next drops to zero.
func (f *inflight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		return alreadyIdle
	}
	return f.none
}

var alreadyIdle = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
