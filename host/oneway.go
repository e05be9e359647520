package host

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// One-way sends (router.Send, or a gateway publish without a reply subject)
// are requests without a reply subject. The host admits them like calls;
// their outcome goes nowhere. Delivery is at most once: nothing is retried,
// and a one-way message that cannot be admitted is dropped (logged at debug
// level, as a dropped reply would be).

// forwardOneWay handles a one-way message for an actor this host does not
// own at table. When the sender's table was older, the host forwards it once
// to the owner at its own, newer generation; generations only grow, so a
// message cannot circle. Otherwise it is dropped.
func (h *Host) forwardOneWay(env *envelope, table *placement.Table) {
	if env.gen >= table.Generation() {
		h.log.Debug("one-way message dropped: actor not on this host", "type", env.t.name, "id", protocol.EncodeID(string(env.id)), "generation", table.Generation())
		return
	}
	h.sendOneWay(env.msg, gatewayCall{typ: env.t.name, id: env.id, method: env.method}, env.deadline)
}

// sendOneWay sends msg on to the owner of c as a one-way message.
func (h *Host) sendOneWay(msg *nats.Msg, c gatewayCall, deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := h.router.Send(ctx, c.typ, c.id, c.method, msg.Data, passHeaders(msg.Header)...); err != nil {
		h.log.Debug("one-way message dropped", "type", c.typ, "id", protocol.EncodeID(string(c.id)), "err", err)
	}
}

// oneWayDone is where the answer to a one-way message goes: an error is
// logged at debug level, a reply dropped.
func (h *Host) oneWayDone(req, resp *nats.Msg) {
	if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
		h.log.Debug("one-way message failed", "subject", req.Subject, "err", e)
	}
}
