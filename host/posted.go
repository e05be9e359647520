package host

import (
	"context"
	"errors"
	"time"

	"github.com/troupe-dev/troupe/router"
)

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

// post queues p in the activation's mailbox, to start before deadline. It
// fails with errBusy when the mailbox is full and errClosed when the
// activation has ended.
func (a *activation) post(p *postedTurn, deadline time.Time) error {
	env := &envelope{t: a.t, id: a.id, deadline: deadline, posted: p}
	return a.enqueue(env)
}

// runPosted runs a posted turn: its body, then the state save, as a call's
// turn does. A failure is logged (there is no caller to tell) and, as for a
// call, discards the activation when memory may differ from the store.
func (a *activation) runPosted(env *envelope) {
	p := env.posted
	if !a.activated || !time.Now().Before(env.deadline) {
		p.done(false)
		return
	}
	if !a.h.mayAct(a.epoch) { // the lease is stale: as for a call, end the activation
		a.discard = true
		p.done(false)
		return
	}
	tc := &env.ctx
	tc.deadline = env.deadline
	a.holdChain(env) // calls the turn makes start a call chain, as a call's do
	err := a.protect(p.what, func() error { return p.run(tc) })
	a.releaseChain(env)
	if err == nil && a.discard {
		err = discardedByNested()
	}
	if err == nil {
		err = a.save()
	}
	tc.end()
	if err != nil {
		a.discard = a.discard || a.dirty || errors.Is(err, errPanic)
		a.h.log.Warn(p.what+" failed", "type", a.t.name, "id", router.EncodeID(string(a.id)), "err", err)
	}
	if p.keepAlive {
		a.touch()
	}
	p.done(true)
}
