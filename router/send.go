package router

import (
	"context"
	"time"

	"github.com/troupe-dev/troupe/placement"
)

// Send delivers a one-way call: method with payload goes into the actor's
// mailbox and runs as a turn like any call, but nobody waits for it. Send
// returns once the message is handed to NATS; its error covers only what can
// be known before that (bad names, no host serves the type, payload too
// large, connection closed).
//
// Delivery is at most once: the message is sent once and never retried, so a
// host that dies, a full mailbox, a deadline that passes before the turn
// starts, or a failing turn loses it silently. A host that receives it after
// the actor moved forwards it once to the owner it knows. Use Call when the
// outcome matters.
//
// The context's deadline (or the router's default timeout) bounds when the
// turn may start; the host drops the message after it.
func (r *Router) Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, opts ...CallOption) error {
	if err := validateCall(typ, id, method); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(r.timeout)
	}
	header := headerOf(opts)
	if r.local != nil {
		c := call{r: r, typ: typ, id: id, method: method, payload: payload, header: header, deadline: deadline}
		if ch, ok := ChainFrom(ctx); ok {
			c.chain, c.path = ch.ID, FormatPath(ch.Path)
		}
		ctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return r.local.Send(ctx, typ, id, method, payload, c.localHeader())
	}
	table := r.w.Table()
	owner, ok := table.Owner(typ, id)
	if !ok {
		return Errorf(CodeNoHost, "no live host serves actor type %q", typ)
	}
	c := call{r: r, typ: typ, id: id, method: method, payload: payload, header: header, deadline: deadline}
	req, err := c.request(owner, table.Generation())
	if err != nil {
		return err
	}
	err = r.nc.PublishMsg(&req.msg)
	req.release()
	if err != nil {
		return c.failure(ctx, err)
	}
	return nil
}
