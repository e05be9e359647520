package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// epochs number the host's incarnations within the process. An activation
// belongs to the epoch it was created in and may act only while the host is
// still in it.
type epoch = uint64

// fence decides whether an activation may act: start a turn or send a
// state save. It may while it belongs to the host's current epoch and the
// host's lease is valid (placement.Lease.Valid). When the lease is lost the
// host moves to a new epoch, which stops every activation of the old one at
// once; when the host leaves, it closes the fence and waits for the saves
// already sent.
//
// Its methods are safe to call from any goroutine.
type fence struct {
	host      placement.HostID
	lease     atomic.Pointer[placement.Lease] // nil until the host joined
	epoch     atomic.Uint64
	epochEnds sync.Map      // epoch → time.Time it stopped acting, for ActivationRecord
	saving    inflight      // save tries sent and not yet answered
	joinedCh  chan struct{} // closed by joined
	joinOnce  sync.Once
}

func newFence(host placement.HostID) *fence {
	return &fence{host: host, joinedCh: make(chan struct{})}
}

// current is the epoch new activations belong to.
func (f *fence) current() epoch { return f.epoch.Load() }

// mayAct reports whether an activation of epoch e may run a turn or send a
// save now.
func (f *fence) mayAct(e epoch) bool {
	l := f.lease.Load()
	return f.epoch.Load() == e && l != nil && l.Valid()
}

// errFenced is the error of a turn refused by the fence.
func (f *fence) errFenced() *protocol.Error { return errFenced(f.host) }

// errFenced is the error of a turn that host's fence refused.
func errFenced(host placement.HostID) *protocol.Error {
	return protocol.Errorf(protocol.CodeUnavailable, "host %s cannot renew its lease; the call did not run", host)
}

// actedUntil bounds when an activation of epoch e last started a turn or
// sent a save, for one ending at now: now while it may still act, else the
// moment its epoch ended or the lease stopped being valid.
func (f *fence) actedUntil(e epoch, now time.Time) time.Time {
	if f.mayAct(e) {
		return now
	}
	end := now
	if v, ok := f.epochEnds.Load(e); ok {
		end = v.(time.Time)
	} else if l := f.lease.Load(); l != nil {
		if until := l.ValidUntil(); !until.IsZero() {
			end = until
		}
	}
	if end.After(now) {
		return now
	}
	return end
}

// next ends the current epoch, which stopped acting at end, and starts the
// next: no activation of the old one passes the fence again.
func (f *fence) next(end time.Time) {
	f.epochEnds.Store(f.epoch.Load(), end)
	f.epoch.Add(1)
}

// beginSave counts a save try about to be sent by an activation of epoch
// e, if it may act; then the caller must call endSave once the try is
// answered or abandoned.
func (f *fence) beginSave(e epoch) bool {
	f.saving.add()
	if !f.mayAct(e) {
		f.saving.done()
		return false
	}
	return true
}

func (f *fence) endSave() { f.saving.done() }

// close stops every turn and save of the current incarnation and waits,
// until ctx ends, for the saves already sent to be answered, so nothing
// this host sends lands after it leaves.
func (f *fence) close(ctx context.Context) {
	f.lease.Load().Invalidate()
	select {
	case <-f.saving.idle():
	case <-ctx.Done():
	}
}

// joined stores the host's lease, taken by Join, and wakes whoever waits in
// joinedLease.
func (f *fence) joined(l *placement.Lease) {
	f.lease.Store(l)
	f.joinOnce.Do(func() { close(f.joinedCh) })
}

// joinedLease returns the lease once Join has stored it, or nil when stop
// closes first. The lease can report itself lost before Join returned it.
func (f *fence) joinedLease(stop <-chan struct{}) *placement.Lease {
	select {
	case <-f.joinedCh:
		return f.lease.Load()
	case <-stop:
		return nil
	}
}
