package host

import (
	"errors"
	"fmt"
	"time"
)

// Errors Ready reports.
var (
	ErrNotJoined  = errors.New("host: not joined")
	ErrLeaseStale = errors.New("host: lease not renewed recently")
)

// Ready reports whether the host is ready to take calls: it has started and
// joined, it is not shutting down, its own table lists it (its watcher has
// seen its join and is following the bucket), and its lease is valid and
// not overdue (placement.Lease.Overdue: a renewal and the retry after it
// failed). It returns nil when ready, else why not. Safe to call from any
// goroutine at any time; /readyz answers with it.
func (h *Host) Ready() error {
	switch {
	case !h.joined.Load():
		return ErrNotJoined
	case h.eng.closing.Load():
		return ErrHostClosed
	}
	if _, in := h.w.Table().Member(h.cfg.ID); !in {
		return fmt.Errorf("%w: the host's table does not list it", ErrNotJoined)
	}
	if l := h.lease(); l.Revision() == 0 || !l.Valid() || l.Overdue() {
		age := time.Since(l.Renewed())
		return fmt.Errorf("%w: last renewal sent %v ago, TTL %v", ErrLeaseStale, age.Round(time.Millisecond), l.TTL())
	}
	return nil
}
