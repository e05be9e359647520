package host

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// smallQueue is the mailbox capacity an idle activation keeps.
const smallQueue = 2

var (
	errBusy   = errors.New("mailbox full")
	errClosed = errors.New("activation closed")
	errPanic  = errors.New("actor panicked")
)

// activation is one live actor on this host: its mailbox and, once the first
// turn has run, its Actor and state.
//
// The mailbox fields are guarded by mu. A goroutine runs the mailbox only
// while it holds calls (running); an idle activation holds no goroutine. The
// remaining fields belong to that goroutine.
type activation struct {
	h  *Host
	t  *actorType
	id placement.ActorID

	mu           sync.Mutex
	queue        []*envelope
	head         int
	running      bool
	deactivating bool
	closed       bool
	lastUsed     int64 // unix nanoseconds of the end of the last turn (Clock)

	// Owned by the goroutine running the mailbox.
	self      Self
	actor     Actor
	activated bool
	discard   bool // in-memory state may differ from the store: drop without saving
	state     []byte
	rev       uint64
	dirty     bool
}

func newActivation(h *Host, t *actorType, id placement.ActorID) *activation {
	a := &activation{h: h, t: t, id: id, lastUsed: h.cfg.Clock.Now().UnixNano()}
	a.self.a = a
	return a
}

// enqueue adds a call to the mailbox and starts the mailbox if it was idle.
func (a *activation) enqueue(env *envelope) error {
	a.mu.Lock()
	switch {
	case a.closed:
		a.mu.Unlock()
		return errClosed
	case !env.deactivate && len(a.queue)-a.head >= a.t.mailbox:
		a.mu.Unlock()
		return errBusy
	}
	a.queue = append(a.queue, env)
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		a.h.turns.Add(1)
		go a.run()
	}
	return nil
}

// deactivate queues the activation's last turn behind the calls already in
// its mailbox. Calls that arrive after it are admitted again once it is done.
func (a *activation) deactivate() {
	a.mu.Lock()
	if a.deactivating || a.closed {
		a.mu.Unlock()
		return
	}
	a.deactivating = true
	a.mu.Unlock()
	_ = a.enqueue(&envelope{deactivate: true})
}

// idleSince reports whether the activation has been idle since before
// cutoff (unix nanoseconds).
func (a *activation) idleSince(cutoff int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.running && !a.deactivating && !a.closed && a.lastUsed < cutoff
}

// run is the mailbox goroutine: it runs queued turns in order until the
// mailbox is empty or the activation ends.
func (a *activation) run() {
	defer a.h.turns.Done()
	for {
		env := a.next()
		switch {
		case env == nil:
			return
		case env.deactivate:
			a.close(true)
			return
		}
		reply := a.turn(env)
		a.t.counters.count(reply)
		a.touch()
		a.h.respond(env.msg, reply)
		if a.discard {
			a.close(false)
			return
		}
	}
}

// next takes the next envelope, or marks the mailbox idle and returns nil.
func (a *activation) next() *envelope {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.head == len(a.queue) {
		// Keep a small queue for the next call (one allocation fewer per
		// call); let a burst's large one go.
		if cap(a.queue) > smallQueue {
			a.queue = nil
		}
		a.queue, a.head, a.running = a.queue[:0], 0, false
		return nil
	}
	env := a.queue[a.head]
	a.queue[a.head] = nil
	a.head++
	return env
}

// turn runs one call and returns its reply.
func (a *activation) turn(env *envelope) *nats.Msg {
	if !time.Now().Before(env.deadline) {
		return errorReply(router.Errorf(router.CodeDeadlineExceeded, "deadline passed while the call waited in the mailbox"))
	}
	tc := &env.ctx
	tc.deadline = env.deadline
	defer tc.end()
	var ctx context.Context = tc
	if !a.activated {
		if err := a.activate(ctx); err != nil {
			a.discard = true
			return errorReply(router.AsError(err))
		}
	}
	call := Call{Method: env.method, Payload: env.msg.Data, Header: env.msg.Header}
	reply, err := a.receive(ctx, call)
	if err == nil {
		err = a.checkReplySize(reply)
	}
	if err == nil {
		err = a.save()
	}
	if err != nil {
		a.discard = a.discard || a.dirty || errors.Is(err, errPanic)
		return errorReply(router.AsError(err))
	}
	return &nats.Msg{Data: reply}
}

func errorReply(e *router.Error) *nats.Msg {
	hdr, body := router.EncodeError(e)
	return &nats.Msg{Header: hdr, Data: body}
}

// touch records the end of a turn for idle deactivation. It happens before
// the turn's reply is sent, so a caller that has its reply knows the actor's
// idle time starts no later than that.
func (a *activation) touch() {
	now := a.h.cfg.Clock.Now().UnixNano()
	a.mu.Lock()
	a.lastUsed = now
	a.mu.Unlock()
}

// activate loads the state, makes the Actor and runs its Activate hook.
func (a *activation) activate(ctx context.Context) error {
	if !a.t.stateless {
		state, rev, err := a.h.loadState(ctx, StateKey(a.t.name, a.id))
		if err != nil {
			return err
		}
		a.state, a.rev = state, rev
	}
	err := a.protect("factory", func() error {
		a.actor = a.t.factory(&a.self)
		if a.actor == nil {
			return fmt.Errorf("factory of %q returned a nil Actor", a.t.name)
		}
		return nil
	})
	if err == nil {
		if act, ok := a.actor.(Activator); ok {
			err = a.protect("Activate", func() error { return act.Activate(ctx) })
		}
	}
	if err != nil {
		return err
	}
	a.activated = true
	return nil
}

func (a *activation) receive(ctx context.Context, call Call) (reply []byte, err error) {
	err = a.protect("Receive", func() error {
		var rerr error
		reply, rerr = a.actor.Receive(ctx, call)
		return rerr
	})
	return reply, err
}

func (a *activation) checkReplySize(reply []byte) error {
	if max := a.h.nc.MaxPayload(); max > 0 && int64(len(reply)) > max-256 {
		return router.Errorf(router.CodePayloadTooLarge, "reply of %d bytes exceeds the server's max payload of %d bytes; the turn was discarded", len(reply), max)
	}
	return nil
}

// save writes the state if the turn changed it.
func (a *activation) save() error {
	if !a.dirty {
		return nil
	}
	if a.t.stateless {
		a.dirty = false
		return nil
	}
	rev, err := a.h.saveState(StateKey(a.t.name, a.id), a.state, a.rev)
	if err != nil {
		return err
	}
	a.rev, a.dirty = rev, false
	return nil
}

// close ends the activation: with graceful set it runs the Deactivate hook
// and saves, then it leaves the directory and re-admits calls that arrived
// after the order to deactivate (to a new activation, or MOVED).
func (a *activation) close(graceful bool) {
	if graceful && a.activated {
		a.finalTurn()
	}
	a.t.dir.remove(a.id, a)
	a.mu.Lock()
	a.closed = true
	left := a.queue[a.head:]
	a.queue, a.head, a.running = nil, 0, false
	a.mu.Unlock()
	for _, env := range left {
		if !env.deactivate {
			a.h.admit(env)
		}
	}
}

func (a *activation) finalTurn() {
	ctx, cancel := context.WithTimeout(context.Background(), a.h.cfg.SaveTimeout)
	defer cancel()
	if d, ok := a.actor.(Deactivator); ok {
		if err := a.protect("Deactivate", func() error { return d.Deactivate(ctx) }); err != nil {
			a.h.log.Warn("deactivate hook failed", "type", a.t.name, "id", router.EncodeID(string(a.id)), "err", err)
		}
	}
	if err := a.save(); err != nil {
		a.h.log.Warn("state not saved on deactivation", "type", a.t.name, "id", router.EncodeID(string(a.id)), "err", err)
	}
}

// protect runs f, turning a panic into a CodeInternal error (and a log line
// with the stack) so that one actor's bug never takes the host down.
func (a *activation) protect(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.h.log.Error("actor panicked", "type", a.t.name, "id", router.EncodeID(string(a.id)),
				"in", what, "panic", r, "stack", string(debug.Stack()))
			err = router.Errorf(router.CodeInternal, "actor %s panicked: %v: %w", what, r, errPanic)
		}
	}()
	return f()
}
