package host

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Delivering a firing: the consumer hands it to fire, which delivers it from
// a goroutine of its own (deliverFiring) and acknowledges it after the turn's
// reply. While the host holds a firing, one loop per host (keepInProgress)
// tells the server it is still at it, so the server does not hand it to
// another host after the ack wait; a host that dies stops telling, and the
// server redelivers what it held.

// fire takes one fired reminder from the consumer and delivers it from a
// goroutine of its own, at most firesInFlight at once.
func (h *Host) fire(msg jetstream.Msg) {
	rem := h.rem
	select {
	case rem.slots <- struct{}{}:
	case <-rem.ctx.Done():
		return // redelivered after the ack wait
	}
	rem.held.hold(msg, time.Now())
	h.eng.turns.add()
	go func() {
		defer h.eng.turns.done()
		defer func() { <-rem.slots }()
		defer rem.held.release(msg)
		h.deliverFiring(rem.ctx, msg)
	}()
}

// deliverFiring calls the actor a firing is for, then acknowledges it, or
// asks for it again later when the call may succeed then.
func (h *Host) deliverFiring(ctx context.Context, msg jetstream.Msg) {
	typ, id, name, err := parseFireSubject(h.cfg.SubjectPrefix, msg.Subject())
	if err != nil {
		h.log.Warn("dropping a malformed reminder firing", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	method := msg.Headers().Get(protocol.HeaderReminderMethod)
	if method == "" {
		method = protocol.DefaultReminderMethod
	}
	var seq uint64
	delivered := uint64(1)
	if meta, err := msg.Metadata(); err == nil {
		seq, delivered = meta.Sequence.Stream, meta.NumDelivered
	}
	callCtx, cancel := context.WithTimeout(ctx, fireTimeout)
	_, err = h.router.Call(callCtx, typ, id, method, msg.Data(),
		router.WithHeader(protocol.HeaderReminder, name),
		router.WithHeader(protocol.HeaderReminderSeq, strconv.FormatUint(seq, 10)))
	cancel()
	if err != nil && retryFiring(err) {
		if ctx.Err() == nil { // else the host is stopping: redelivered after the ack wait
			_ = msg.NakWithDelay(fireBackoff(delivered))
		}
		h.log.Debug("reminder firing will be delivered again", "type", typ, "id", protocol.EncodeID(string(id)), "reminder", name, "err", err)
		return
	}
	if err != nil {
		// The turn ran and failed, or can never run: delivered, as far as
		// the reminder goes.
		h.log.Warn("reminder call failed", "type", typ, "id", protocol.EncodeID(string(id)), "reminder", name, "err", err)
	}
	h.obs.ReminderFired(typ)
	if err := msg.Ack(); err != nil {
		h.log.Debug("reminder firing not acknowledged", "reminder", name, "err", err)
	}
}

// heldFirings are the firings a host is delivering, each with the last time
// the server heard about it (its delivery, or the host's last "in
// progress"). Safe for concurrent use.
type heldFirings struct {
	mu sync.Mutex
	m  map[jetstream.Msg]time.Time
}

func newHeldFirings() *heldFirings { return &heldFirings{m: make(map[jetstream.Msg]time.Time)} }

// hold records that the host took msg at now.
func (f *heldFirings) hold(msg jetstream.Msg, now time.Time) {
	f.mu.Lock()
	f.m[msg] = now
	f.mu.Unlock()
}

// release forgets msg: it is acknowledged, or handed back.
func (f *heldFirings) release(msg jetstream.Msg) {
	f.mu.Lock()
	delete(f.m, msg)
	f.mu.Unlock()
}

// stale appends to out the firings the server last heard about before
// cutoff, and records that it hears about them at now.
func (f *heldFirings) stale(cutoff, now time.Time, out []jetstream.Msg) []jetstream.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	for msg, heard := range f.m {
		if heard.Before(cutoff) {
			out = append(out, msg)
			f.m[msg] = now
		}
	}
	return out
}

// keepInProgress tells the server, every ackWait/3 until stop closes, that
// the firings held for more than half of that are still being delivered. So
// the server hears about a held firing at least every ackWait/2, and a
// firing delivered quickly costs it nothing beyond its acknowledgement.
func (f *heldFirings) keepInProgress(ackWait time.Duration, stop <-chan struct{}) {
	every := ackWait / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	var batch []jetstream.Msg
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			batch = f.stale(now.Add(-every/2), now, batch[:0])
			for i, msg := range batch {
				_ = msg.InProgress()
				batch[i] = nil
			}
		}
	}
}

// retryFiring says whether a failed reminder call should be delivered again:
// when nothing ran, or the outcome is unknown because the deadline passed.
func retryFiring(err error) bool {
	var e *protocol.Error
	if !errors.As(err, &e) {
		return true
	}
	switch e.Code {
	case protocol.CodeNoHost, protocol.CodeBusy, protocol.CodeDeadlineExceeded, protocol.CodeMoved,
		protocol.CodeStateConflict, protocol.CodeUnavailable:
		return true
	}
	return false
}

// fireBackoff is the wait before delivering a firing again after its n-th
// delivery failed: 1 s, doubling, at most maxFireBackoff.
func fireBackoff(n uint64) time.Duration {
	d := time.Second
	for i := uint64(1); i < n && d < maxFireBackoff; i++ {
		d *= 2
	}
	return min(d, maxFireBackoff)
}

// parseFireSubject reads a protocol.FireSubject.
func parseFireSubject(prefix, subject string) (placement.ActorType, placement.ActorID, string, error) {
	typ, rawID, name, ok := protocol.SplitFireSubject(prefix, subject)
	if !ok {
		return "", "", "", fmt.Errorf("want %s.rmd.fire.<type>.<id>.<name>", prefix)
	}
	id, err := protocol.DecodeID(rawID)
	if err != nil {
		return "", "", "", err
	}
	return placement.ActorType(typ), placement.ActorID(id), name, nil
}
