package host

import (
	"context"
	"sync"
	"time"
)

// turnContext is the context a turn runs with. It carries the call's
// deadline, and makes the timer behind Done only when the actor asks for
// Done or Err: most turns finish without looking, and a timer per turn is a
// measurable part of a call's cost.
type turnContext struct {
	deadline time.Time
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
}

func (c *turnContext) init() {
	c.once.Do(func() { c.ctx, c.cancel = context.WithDeadline(context.Background(), c.deadline) })
}

// Deadline is the call's deadline.
func (c *turnContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done closes when the deadline passes or the turn ends.
func (c *turnContext) Done() <-chan struct{} { c.init(); return c.ctx.Done() }

// Err says why Done closed.
func (c *turnContext) Err() error { c.init(); return c.ctx.Err() }

// Value carries no values.
func (c *turnContext) Value(any) any { return nil }

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
