package host

import (
	"context"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/router"
)

// turnContext is the context a turn runs with. It carries the call's
// deadline, and makes the timer behind Done only when the actor asks for
// Done or Err: most turns finish without looking, and a timer per turn is a
// measurable part of a call's cost.
type turnContext struct {
	deadline time.Time
	values   context.Context // the turn's values (its trace span), or nil
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	src      *turnChain // the turn's call chain, for calls made with this context
	// reader is set when the turn runs on the intake's reader: an actor that
	// asks for Done is about to wait, so the reader's role passes on.
	reader    *intake
	readerRun int64
}

func (c *turnContext) init() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(context.Background(), c.deadline) })
}

// Deadline is the call's deadline.
func (c *turnContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done closes when the deadline passes or the turn ends.
func (c *turnContext) Done() <-chan struct{} {
	if c.reader != nil {
		c.reader.handOff(c.readerRun)
	}
	c.init()
	return c.ctx.Done()
}

// Err says why Done closed.
func (c *turnContext) Err() error { c.init(); return c.ctx.Err() }

// Value carries the turn's call chain under router.CallChainKey, so that
// calls the actor makes with this context belong to it, and, when traced,
// the turn's span; nothing else.
func (c *turnContext) Value(key any) any {
	if key == router.CallChainKey && c.src != nil {
		return c.src
	}
	if c.values != nil {
		return c.values.Value(key)
	}
	return nil
}

// end releases the timer, if one was made, and cancels the context for any
// goroutine the actor left holding it.
func (c *turnContext) end() {
	c.once.Do(func() { c.ctx, c.cancel = endedContext, func() {} })
	c.cancel()
}

var endedContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()
