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
	h     *Host
	t     *actorType
	id    placement.ActorID
	epoch epoch // the host incarnation the activation belongs to

	mu           sync.Mutex
	queue        []*envelope
	head         int
	running      bool
	deactivating bool
	closed       bool
	lastUsed     int64         // unix nanoseconds of the end of the last turn (Clock)
	closedCh     chan struct{} // made on demand by closedChan
	chain        string        // the call chain holding the running turn (chain.go)
	nested       *nestedTurns  // nested turns running inside it; nil when none

	// Owned by the goroutine running the mailbox.
	self      Self
	actor     Actor
	activated bool
	discard   bool // in-memory state may differ from the store: drop without saving
	state     []byte
	keys      map[string][]byte // named state keys; nil if it never had any (statekeys.go)
	rev       uint64
	dirty     bool
	timers    *timerSet // nil until the actor sets a timer
	// For ActivationRecord, set when activated.
	incarnation string
	gen         uint64
	started     time.Time
}

func newActivation(h *Host, t *actorType, id placement.ActorID) *activation {
	a := &activation{h: h, t: t, id: id, epoch: h.epoch.Load(), lastUsed: h.cfg.Clock.Now().UnixNano()}
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
	a.startLocked()
	return nil
}

// pushFront puts an order to deactivate ahead of the queued calls, behind
// the running turn only.
func (a *activation) pushFront(env *envelope) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.deactivating = true
	if a.head > 0 {
		a.head--
		a.queue[a.head] = env
	} else {
		a.queue = append([]*envelope{env}, a.queue...)
	}
	a.startLocked()
}

// startLocked starts the mailbox goroutine if it is idle, and unlocks a.mu.
func (a *activation) startLocked() {
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		a.h.turns.add()
		go a.run()
	}
}

// moveAway ends the activation because the table gave the actor to another
// host: after the running turn, it deactivates (hook and save); the calls
// queued behind are answered MOVED.
func (a *activation) moveAway() { a.pushFront(&envelope{deactivate: true}) }

// drop ends the activation of a host that lost its lease: after the running
// turn (which the fence keeps from saving), without the hook or a save.
func (a *activation) drop() { a.pushFront(&envelope{deactivate: true, drop: true}) }

// closedChan returns a channel closed once the activation has ended.
func (a *activation) closedChan() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closedCh == nil {
		a.closedCh = make(chan struct{})
		if a.closed {
			close(a.closedCh)
		}
	}
	return a.closedCh
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
	defer a.h.turns.done()
	for {
		env := a.next()
		switch {
		case env == nil:
			return
		case env.deactivate:
			a.close(!env.drop)
			return
		case env.posted != nil:
			a.runPosted(env)
			if a.discard {
				a.close(false)
				return
			}
			continue
		}
		start := a.h.obs.turnStart(env)
		reply := a.turn(env)
		a.h.obs.turnEnd(env, reply, start)
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
			a.discard = a.discard || a.activated || !errors.Is(err, router.ErrDeadlineExceeded)
			return errorReply(router.AsError(err))
		}
	} else if !a.h.mayAct(a.epoch) {
		a.discard = true
		return errorReply(a.h.errFenced())
	}
	a.holdChain(env)
	call := Call{Method: env.method, Payload: env.msg.Data, Header: env.msg.Header}
	reply, err := a.receive(ctx, call)
	a.releaseChain(env)
	if err == nil && a.discard {
		err = discardedByNested()
	}
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

// activate waits until the host may activate the actor, then loads the
// state, makes the Actor and runs its Activate hook. An error from the
// waiting leaves the activation unactivated; any later one ends it.
func (a *activation) activate(ctx context.Context) error {
	if err := a.h.awaitActivation(ctx, a); err != nil {
		return err
	}
	if !a.h.mayAct(a.epoch) {
		return a.h.errFenced()
	}
	a.incarnation, a.gen, a.started = a.h.incarnation(), a.h.w.Table().Generation(), time.Now()
	a.activated = true // from here on the activation counts, even if the rest fails
	a.recordActivation(time.Time{})
	a.h.obs.activated(a.t.name)
	if !a.t.stateless {
		start := a.h.obs.now()
		err := a.load(ctx)
		a.h.obs.stateLoaded(a.t.name, start)
		if err != nil {
			return err
		}
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
		a.discard = true
		return err
	}
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
	value, hdr, err := a.encodeState()
	if err != nil {
		return err
	}
	start := a.h.obs.now()
	rev, err := a.h.saveStateMsg(a.epoch, StateKey(a.t.name, a.id), value, hdr, a.rev)
	a.h.obs.stateSaved(a.t.name, start, err)
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
	a.stopTimers()
	if graceful && a.activated && a.h.mayAct(a.epoch) {
		a.finalTurn()
	}
	a.t.dir.remove(a.id, a)
	if a.activated {
		a.recordActivation(a.h.actedUntil(a.epoch, time.Now()))
		a.h.obs.deactivated(a.t.name)
	}
	a.mu.Lock()
	a.closed = true
	if a.closedCh != nil {
		close(a.closedCh)
	}
	left := a.queue[a.head:]
	a.queue, a.head, a.running = nil, 0, false
	a.mu.Unlock()
	for _, env := range left {
		switch {
		case env.posted != nil:
			env.posted.done(false)
		case !env.deactivate:
			a.h.admit(env)
		}
	}
}

func (a *activation) finalTurn() {
	if a.actor == nil {
		return
	}
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
