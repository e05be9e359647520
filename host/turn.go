package host

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// turnKind says what a mailbox entry is.
//
// A one-way send and a reminder firing arrive as requests and run as calls:
// a one-way call's outcome goes nowhere (oneway.go), a firing is a call the
// host's reminder consumer makes (reminders.go).
type turnKind uint8

const (
	// kindCall is a request: its turn's outcome is the caller's reply.
	kindCall turnKind = iota
	// kindNested is a call that re-enters a turn held by its call chain
	// (chain.go): it runs beside its holder, on its own goroutine.
	kindNested
	// kindPosted is a turn the host posts itself, such as a timer's tick:
	// no caller waits for it, and it never activates the actor.
	kindPosted
	// kindDeactivate is the activation's last turn: the Deactivate hook and
	// a save, then the activation ends.
	kindDeactivate
	// kindDrop ends the activation without the hook or a save: the host
	// lost its lease, and what the activation holds can no longer be
	// trusted.
	kindDrop
)

// envelope is one entry in a mailbox.
type envelope struct {
	kind   turnKind
	msg    *nats.Msg // the request; nil for posted turns and the last two kinds
	t      *actorType
	id     placement.ActorID
	method string
	gen    uint64
	callID string // the call's idempotency id, "" when none (calls.go)
	// after and ended order the nested turns of one call id (chain.go):
	// this one starts once after is closed, and closes ended when done.
	after, ended chan struct{}
	deadline     time.Time
	posted       *postedTurn  // kindPosted
	admitted     time.Time    // when it entered the mailbox; set only when observed
	ctx          turnContext  // the turn's context, allocated with the envelope
	chain        chainHeaders // the call chain the request belongs to
	// gateway: the caller is a gateway client, which must never see MOVED;
	// the call is followed instead (forward.go). hops counts the hosts that
	// forwarded it (protocol.HeaderForwarded).
	gateway bool
	hops    int
	src     turnChain // the turn's call chain source, allocated with the envelope
	// local, for a call the host made to itself (a reminder firing for an
	// actor it owns, firing.go), is where the outcome goes instead of a
	// reply subject; buffered, so a turn never waits for the caller.
	local chan<- *nats.Msg
	reply nats.Msg // a call's success reply, allocated with the envelope
}

// postedTurn is a turn the host itself puts in an actor's mailbox, such as a
// timer's tick: it runs in mailbox order like a call, never beside another
// turn, but has no request to answer.
type postedTurn struct {
	// what names the turn in logs ("timer tick").
	what string
	// run is the turn's body, on the mailbox goroutine.
	run func(ctx context.Context) error
	// done runs after the turn (also when it did not run: ran is false).
	done func(ran bool)
	// keepAlive counts the turn as activity for idle deactivation.
	keepAlive bool
}

var (
	errBusy   = errors.New("mailbox full")
	errClosed = errors.New("activation closed")
	errPanic  = errors.New("actor panicked")
	// errSkipped is the outcome of a posted turn that did not run: its
	// deadline passed, the actor is not active, or the fence stopped it.
	errSkipped = errors.New("turn skipped")
)

// runTurn runs one turn of a call, a nested call or a posted turn, and
// returns its outcome (errSkipped for a posted turn that did not run).
// Every kind takes the same steps: the deadline, then activation (calls
// only) or the fence, the call chain's hold, the body with panics caught,
// the reply's size (not for posted turns). A nested turn then saves; a call's
// or a posted turn's changes are saved by the group it belongs to
// (group.go). Either way the state is saved before the outcome leaves, so a
// caller that has its reply has durable state.
//
// A failed turn discards the activation (drops it without saving) when its
// memory may differ from the store: it changed the state, it panicked, a
// nested turn discarded it, or the fence or a failed activation left it
// unusable. The caller of runTurn then closes it.
func (a *activation) runTurn(env *envelope) ([]byte, error) {
	if !time.Now().Before(env.deadline) {
		if env.kind == kindPosted {
			return nil, errSkipped
		}
		return nil, protocol.Errorf(protocol.CodeDeadlineExceeded, "deadline passed while the call waited in the mailbox")
	}
	tc := &env.ctx
	tc.deadline = env.deadline
	defer tc.end()
	switch {
	case !a.activated && env.kind == kindPosted:
		return nil, errSkipped
	case !a.activated:
		if err := a.activate(tc); err != nil {
			// Waiting for the activation that ran out of time leaves
			// nothing behind; anything later does.
			a.discard = a.discard || a.activated || !errors.Is(err, protocol.ErrDeadlineExceeded)
			return nil, err
		}
	case !a.e.rt.mayAct(a.epoch):
		a.discard = true
		if env.kind == kindPosted {
			return nil, errSkipped
		}
		return nil, a.e.rt.errFenced()
	}
	if reply, err, ok := a.repeat(env); ok {
		return reply, err // already run: its recorded outcome, nothing runs
	}
	sm, isStream, err := a.streamOf(env)
	switch {
	case err != nil:
		return nil, err
	case isStream && a.covers(sm):
		return nil, nil // applied before: a redelivery (streams.go)
	}
	a.holdChain(env)
	reply, err := a.body(tc, env)
	a.releaseChain(env)
	if err == nil && isStream {
		a.advance(sm)
	}
	if err == nil && a.discard {
		err = discardedByNested()
	}
	if err == nil && env.kind != kindPosted {
		err = a.checkReplySize(reply)
	}
	if err == nil && env.kind != kindPosted {
		a.recordCall(env, reply, a.changed) // saved with the change it made
	}
	if err == nil && env.kind == kindNested {
		// Its caller waits for it: save now, after what the saver holds.
		if err = a.drain(); err == nil {
			err = a.save()
		}
		a.discard = a.discard || err != nil
	}
	if err != nil {
		// The turn's own changes (not its holder's, nor those handed to
		// the saver) would make memory differ from the store.
		a.discard = a.discard || a.changed || errors.Is(err, errPanic)
		return nil, err
	}
	return reply, nil
}

// body runs the actor's code for the turn, catching panics.
func (a *activation) body(ctx context.Context, env *envelope) (reply []byte, err error) {
	if env.kind == kindPosted {
		p := env.posted
		return nil, a.protect(p.what, func() error { return p.run(ctx) })
	}
	call := Call{Method: env.method, Payload: env.msg.Data, Header: env.msg.Header}
	err = a.protect("Receive", func() error {
		var rerr error
		reply, rerr = a.actor.Receive(ctx, call)
		return rerr
	})
	return reply, err
}

// runNested runs a nested call's turn, which saves, and sends its outcome.
// It keeps its own record of whether it changed the state: the holder's
// changes are not its own.
func (a *activation) runNested(env *envelope) {
	start := a.e.obs.turnStart(env)
	held := a.changed
	a.changed = false
	reply := env.replyMsg(a.runTurn(env))
	a.changed = held || a.changed
	a.e.obs.turnEnd(env, reply, start)
	a.e.rt.respond(env, reply)
}

// endPosted finishes a posted turn. A failure is logged, as there is no
// caller to tell.
func (a *activation) endPosted(env *envelope, err error) {
	p := env.posted
	switch {
	case errors.Is(err, errSkipped):
		p.done(false)
		return
	case err != nil:
		a.e.log.Warn(p.what+" failed", "type", a.t.name, "id", protocol.EncodeID(string(a.id)), "err", err)
	}
	if p.keepAlive {
		a.touch()
	}
	p.done(true)
}

// replyMsg is a turn's outcome as a reply message; a success reply is the
// envelope's own (one allocation fewer per call).
func (env *envelope) replyMsg(reply []byte, err error) *nats.Msg {
	if err != nil {
		return errorReply(protocol.AsError(err))
	}
	env.reply = nats.Msg{Data: reply}
	return &env.reply
}

func errorReply(e *protocol.Error) *nats.Msg {
	hdr, body := protocol.EncodeError(e)
	return &nats.Msg{Header: hdr, Data: body}
}

// activate waits until the host may activate the actor, then loads the
// state, makes the Actor and runs its Activate hook. An error from the
// waiting leaves the activation unactivated; any later one ends it.
func (a *activation) activate(ctx context.Context) error {
	rt := a.e.rt
	if err := rt.awaitActivation(ctx, a.t.name, a.id); err != nil {
		return err
	}
	if !rt.mayAct(a.epoch) {
		return rt.errFenced()
	}
	if a.e.onActivation != nil {
		r := a.extra()
		r.incarnation, r.gen = rt.placed()
		r.started = time.Now()
	}
	a.activated = true // from here on the activation counts, even if the rest fails
	a.e.record(a, time.Time{})
	a.e.obs.activated(a.t.name)
	if !a.t.stateless {
		start := a.e.obs.now()
		err := a.load(ctx)
		a.e.obs.stateLoaded(a.t.name, start)
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

func (a *activation) checkReplySize(reply []byte) error {
	if max := a.e.rt.maxPayload(); max > 0 && int64(len(reply)) > max-256 {
		return protocol.Errorf(protocol.CodePayloadTooLarge, "reply of %d bytes exceeds the server's max payload of %d bytes; the turn was discarded", len(reply), max)
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
	rev, err := a.store(a.state, a.keys(), a.window().snapshot(), a.cursors())
	if err != nil {
		return err
	}
	a.rev, a.dirty = rev, false
	return nil
}

// store writes state and keys with compare-and-set on a.rev and returns the
// new revision. It runs on the mailbox goroutine, a nested turn's, or the
// saver's (group.go), one at a time: whichever may save owns a.rev.
func (a *activation) store(state []byte, keys map[string][]byte, calls []byte, streams cursors) (uint64, error) {
	value, hdr, err := a.encodeState(state, keys, calls, streams)
	if err != nil {
		return 0, err
	}
	start := a.e.obs.now()
	rev, err := a.e.rt.save(a.epoch, StateKey(a.t.name, a.id), value, hdr, a.rev)
	a.e.obs.stateSaved(a.t.name, start, err)
	a.t.counters.saves.Add(1)
	return rev, err
}

// finalTurn runs the Deactivate hook and saves: the last turn of an
// activation deactivated gracefully.
func (a *activation) finalTurn() {
	if a.actor == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.e.saveTimeout)
	defer cancel()
	if d, ok := a.actor.(Deactivator); ok {
		if err := a.protect("Deactivate", func() error { return d.Deactivate(ctx) }); err != nil {
			a.e.log.Warn("deactivate hook failed", "type", a.t.name, "id", protocol.EncodeID(string(a.id)), "err", err)
		}
	}
	if err := a.saveFinal(); err != nil {
		a.e.log.Warn("state not saved on deactivation", "type", a.t.name, "id", protocol.EncodeID(string(a.id)), "err", err)
	}
}

// saveFinal is save for the end of an activation: it stores the call
// records callWindow.farewell adds as well, and writes for them even when
// the state did not change.
func (a *activation) saveFinal() error {
	if a.t.stateless || a.t.window.calls < 1 {
		return a.save()
	}
	calls, more := a.window().farewell(a.e.rt.maxPayload(), a.e.clock.Now())
	if !more {
		return a.save()
	}
	rev, err := a.store(a.state, a.keys(), calls, a.cursors())
	if errors.Is(err, protocol.ErrStateTooLarge) {
		return a.save() // the state alone may fit
	}
	if err != nil {
		return err
	}
	a.rev, a.dirty = rev, false
	return nil
}

// protect runs f, turning a panic into a CodeInternal error (and a log line
// with the stack) so that one actor's bug never takes the host down.
func (a *activation) protect(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.e.log.Error("actor panicked", "type", a.t.name, "id", protocol.EncodeID(string(a.id)),
				"in", what, "panic", r, "stack", string(debug.Stack()))
			err = protocol.Errorf(protocol.CodeInternal, "actor %s panicked: %v: %w", what, r, errPanic)
		}
	}()
	return f()
}
