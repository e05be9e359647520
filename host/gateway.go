package host

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// The gateway lets any NATS client call an actor without knowing the
// placement hash: every host answers <prefix>.call.<type>.<id>.<method> in
// one queue group, and runs the call when it owns the actor or follows it to
// the owner (forward.go). See PROTOCOL.md.

// GatewaySubject is protocol.GatewaySubject: the subject the gateway
// answers for (typ, id, method) under prefix; id is encoded with
// protocol.EncodeID.
func GatewaySubject(prefix string, typ placement.ActorType, id placement.ActorID, method string) string {
	return protocol.GatewaySubject(prefix, typ, id, method)
}

// gatewayCall is a call named by a gateway subject.
type gatewayCall struct {
	typ    placement.ActorType
	id     placement.ActorID
	method string
	callID string // the client's Troupe-Call-Id, "" when none
}

// parseGatewaySubject reads <prefix>.call.<type>.<id>.<method>. Exactly three
// tokens must follow the prefix, so no subject can name an actor other
// than the one its tokens spell.
func (h *Host) parseGatewaySubject(subject string) (gatewayCall, *protocol.Error) {
	rawType, rawID, rawMethod, ok := protocol.SplitGatewaySubject(h.cfg.SubjectPrefix, subject)
	if !ok {
		return gatewayCall{}, protocol.Errorf(protocol.CodeBadRequest,
			"gateway subject %q: want %s.call.<type>.<id>.<method>, with the id encoded as one token", subject, h.cfg.SubjectPrefix)
	}
	typ := placement.ActorType(rawType)
	if err := typ.Validate(); err != nil {
		return gatewayCall{}, protocol.Errorf(protocol.CodeUnknownType, "%v", err)
	}
	id, method, e := parseIdentity(rawID, rawMethod)
	if e != nil {
		return gatewayCall{}, e
	}
	return gatewayCall{typ: typ, id: id, method: method}, nil
}

// serveGateway takes one gateway request. Like serve, it runs on the
// subscription's goroutine: a call this host owns goes straight into the
// actor's mailbox, any other is forwarded from a goroutine of its own.
func (h *Host) serveGateway(msg *nats.Msg) {
	h.ops.gateway.Add(1)
	c, e := h.parseGatewaySubject(msg.Subject)
	if e != nil {
		h.obs.rejected(e)
		h.fail(msg, e)
		return
	}
	deadline, e := h.deadline(msg.Header)
	if e != nil {
		h.fail(msg, e)
		return
	}
	chain, e := parseChain(msg.Header, h.cfg.MaxCallChainDepth)
	if e != nil {
		h.fail(msg, e)
		return
	}
	if c.callID, e = callIDHeader(msg.Header); e != nil {
		h.fail(msg, e)
		return
	}
	if c.callID == "" && msg.Reply != "" {
		// A call of its own, as a router makes one, so that this host may
		// send it again if the owner it forwards it to dies with it
		// (probe.go). The client's own retry is another call unless it
		// sends an id.
		c.callID = router.NewCallID()
	}
	if t, ok := h.types[c.typ]; ok && h.owns(h.w.Table(), c.typ, c.id) {
		dropDeliveryHeaders(msg.Header)
		h.admit(&envelope{msg: msg, t: t, id: c.id, method: c.method, callID: c.callID, deadline: deadline, chain: chain, gateway: true})
		return
	}
	if msg.Reply == "" {
		h.sendOneWay(msg, c, deadline) // a one-way send: nobody waits for an answer
		return
	}
	h.follow(followed{msg: msg, call: c, deadline: deadline, chain: chain})
}

// dropDeliveryHeaders removes from a gateway request the headers that only
// hosts set on the deliveries they make (a stream message, a reminder's
// firing): a gateway client's call is neither, and must not move an actor's
// stream cursor. Forwarded and relayed calls drop every Troupe-* header the
// same way (forwardHeader, passHeaders).
func dropDeliveryHeaders(hdr nats.Header) {
	for k := range hdr {
		if strings.HasPrefix(k, "Troupe-Stream") || strings.HasPrefix(k, "Troupe-Reminder") {
			delete(hdr, k)
		}
	}
}

// forward calls the owner through the router and relays its answer.
func (h *Host) forward(msg *nats.Msg, c gatewayCall, deadline time.Time, chain chainHeaders) {
	defer h.eng.turns.done()
	ctx, cancel := context.WithDeadline(h.obs.extract(context.Background(), msg.Header), deadline)
	defer cancel()
	if chain.id != "" {
		ctx = router.WithChain(ctx, router.Chain{ID: chain.id, Path: chain.path})
	}
	opts := passHeaders(msg.Header)
	if c.callID != "" {
		opts = append(opts, router.WithCallID(c.callID)) // the client's retries and the router's dedupe as one
	}
	reply, err := h.router.Call(ctx, c.typ, c.id, c.method, msg.Data, opts...)
	if err != nil {
		h.fail(msg, protocol.AsError(err))
		return
	}
	h.respond(msg, &nats.Msg{Data: reply})
}

// passHeaders carries a request's own headers on to the owner; the router
// sets the Troupe-* ones.
func passHeaders(hdr nats.Header) []router.CallOption {
	var opts []router.CallOption
	for k, vs := range hdr {
		if strings.HasPrefix(k, "Troupe-") {
			continue
		}
		for _, v := range vs {
			opts = append(opts, router.WithHeader(k, v))
		}
	}
	return opts
}
