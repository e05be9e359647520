package host

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
	err = h.callFiring(callCtx, firingCall{typ: typ, id: id, method: method, name: name, seq: strconv.FormatUint(seq, 10), payload: msg.Data()})
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

// firingCall is the call a firing makes.
type firingCall struct {
	typ     placement.ActorType
	id      placement.ActorID
	method  string
	name    string // the reminder's
	seq     string // the firing's stream sequence
	payload []byte
}

// callFiring makes a firing's call: straight into the actor's mailbox when
// this host owns the actor, else (or when it moved meanwhile) through the
// router to its owner. ctx carries the deadline.
func (h *Host) callFiring(ctx context.Context, c firingCall) error {
	if done, err := h.callOwn(ctx, c); done {
		return err
	}
	_, err := h.router.Call(ctx, c.typ, c.id, c.method, c.payload,
		router.WithHeader(protocol.HeaderReminder, c.name),
		router.WithHeader(protocol.HeaderReminderSeq, c.seq),
		router.WithCallID(c.callID()))
	return err
}

// callID is the firing's call id, the same on every redelivery of it: an
// actor with state whose turn changed it runs one firing at most once
// within its call window (calls.go).
func (c firingCall) callID() string { return "rmd-" + c.seq }

// callOwn runs a firing's call on this host if the host owns the actor at
// its table: admitted as a request on the host's subject would be, with the
// headers the router would send, and answered in the process, which saves
// the request and its reply on the connection. done is false when the
// host does not own the actor, or the answer says that another host may
// run the call now (MOVED, UNAVAILABLE, STATE_CONFLICT): the router, which
// waits for the table and retries, takes it from there. Such a call is
// not traced or counted as a router call; its turn is, as any turn.
func (h *Host) callOwn(ctx context.Context, c firingCall) (done bool, err error) {
	t, ok := h.types[c.typ]
	if !ok {
		return false, nil
	}
	table := h.w.Table()
	if !h.owns(table, c.typ, c.id) {
		return false, nil
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(fireTimeout)
	}
	// One backing array for the values, as the router does.
	v := [7]string{string(c.typ), protocol.EncodeID(string(c.id)), c.method,
		strconv.FormatUint(table.Generation(), 10), strconv.FormatInt(time.Until(deadline).Milliseconds()+1, 10),
		c.name, c.seq}
	hdr := nats.Header{
		protocol.HeaderType: v[0:1:1], protocol.HeaderID: v[1:2:2], protocol.HeaderMethod: v[2:3:3],
		protocol.HeaderGeneration: v[3:4:4], protocol.HeaderTimeout: v[4:5:5],
		protocol.HeaderReminder: v[5:6:6], protocol.HeaderReminderSeq: v[6:7:7],
	}
	answer := make(chan *nats.Msg, 1)
	h.admit(&envelope{
		kind: kindCall, msg: &nats.Msg{Subject: h.subject, Header: hdr, Data: c.payload},
		t: t, id: c.id, method: c.method, gen: table.Generation(), deadline: deadline, local: answer, callID: c.callID(),
	})
	select {
	case reply := <-answer:
		e := protocol.DecodeError(reply.Header, reply.Data)
		if e == nil {
			return true, nil
		}
		switch e.Code {
		case protocol.CodeMoved, protocol.CodeUnavailable, protocol.CodeStateConflict, protocol.CodeOutcomeUnknown:
			return false, nil // the router retries OUTCOME_UNKNOWN with the firing's call id
		}
		return true, e
	case <-ctx.Done():
		return true, protocol.Errorf(protocol.CodeDeadlineExceeded, "%s %s.%s: %w", c.typ, protocol.EncodeID(string(c.id)), c.method, ctx.Err())
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
