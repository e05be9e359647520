package host

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/internal/telemetry"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Following a gateway call. A plain NATS client never sees MOVED: the host
// that takes a gateway call for an actor it does not own, and every host
// that receives such a call forwarded (protocol.HeaderForwarded) after the
// actor moved again, follows the actor itself:
//
//   - directly: it publishes the call to the owner's subject with the
//     caller's own reply subject, so the owner answers the caller and this
//     host is out of the path. Only to an owner whose record says it honours
//     HeaderForwarded, only while the call has made fewer than
//     protocol.MaxForwardHops hops, and not to an owner a probe found gone
//     (probe.go);
//   - or relayed: it calls the owner through its router, which waits for
//     generations, backs off and retries until the deadline, and relays the
//     answer. That is the path of every call before direct forwarding
//     existed, and the fallback for old hosts and the last hop.

// followed is a gateway call this host follows to the actor's owner.
type followed struct {
	msg      *nats.Msg // the request; its Reply is the caller's
	call     gatewayCall
	deadline time.Time
	chain    chainHeaders
	hops     int // hosts that forwarded it so far
}

// follow sends f on to the owner of its actor in this host's table. It does
// not block: a relayed call runs on a goroutine of its own.
func (h *Host) follow(f followed) {
	table := h.w.Table()
	owner, ok := table.Owner(f.call.typ, f.call.id)
	switch {
	case !ok:
		h.fail(f.msg, protocol.Errorf(protocol.CodeNoHost, "no live host serves actor type %q", f.call.typ))
		return
	case !time.Now().Before(f.deadline):
		h.fail(f.msg, protocol.Errorf(protocol.CodeDeadlineExceeded, "%s %s.%s: the deadline passed before the call was forwarded",
			f.call.typ, protocol.EncodeID(string(f.call.id)), f.call.method))
		return
	case owner.ID != h.cfg.ID && owner.Protocol >= 2 && f.hops < protocol.MaxForwardHops && h.probe != nil:
		if h.forwardDirect(f, owner, table.Generation()) {
			return
		}
	}
	h.obs.forwarded(forwardRelayed)
	h.eng.turns.add()
	go h.relay(f)
}

// forwardDirect publishes f to owner's subject with the caller's reply
// subject. It reports false when a probe found the owner gone: the call is
// then relayed, and the router waits for the table to drop the owner.
func (h *Host) forwardDirect(f followed, owner *placement.Member, gen uint64) bool {
	if h.probe.suspect(owner.ID) {
		return false
	}
	pooled := f.msg.Header == nil
	hdr := forwardHeader(f, gen)
	var span trace.Span
	if o := h.obs; o != nil && o.tracer != nil {
		ctx := telemetry.Extract(context.Background(), hdr)
		ctx, span = o.tracer.Start(ctx, "call "+string(f.call.typ)+"."+f.call.method, trace.WithSpanKind(trace.SpanKindClient))
		telemetry.Inject(ctx, hdr)
	}
	var again *followed
	if f.call.callID != "" {
		// Kept to relay it if it reaches nobody. Its header map, reused
		// for the forwarded request and not changed after, holds the
		// call's Troupe-* headers, which a relay does not pass on, and the
		// request's own.
		again = &followed{msg: f.msg, call: f.call, deadline: f.deadline, chain: f.chain, hops: f.hops}
	}
	err := h.probe.send(owner, &nats.Msg{Subject: owner.Subject, Reply: f.msg.Reply, Header: hdr, Data: f.msg.Data}, f.call, again)
	if span != nil {
		span.End()
	}
	if pooled { // nats.go encoded it while publishing and keeps no reference
		clear(hdr)
		headerPool.Put(hdr)
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		h.fail(f.msg, protocol.Errorf(protocol.CodePayloadTooLarge, "payload of %d bytes exceeds the server's max payload (with headers)", len(f.msg.Data)))
	case err != nil:
		h.fail(f.msg, protocol.Errorf(protocol.CodeUnavailable, "host %s could not forward the call: %v", h.cfg.ID, err))
	default:
		h.obs.forwarded(forwardDirect)
	}
	return true
}

// forwardHeader is the header of f forwarded at generation gen: the
// request's own headers, without the Troupe-* ones, then the call's. It
// reuses the request's header map, which nothing else holds once the call
// is forwarded.
func forwardHeader(f followed, gen uint64) nats.Header {
	hdr := f.msg.Header
	if hdr == nil {
		hdr = headerPool.Get().(nats.Header)
	}
	for k := range hdr {
		if strings.HasPrefix(k, "Troupe-") {
			delete(hdr, k)
		}
	}
	left := time.Until(f.deadline)
	ms := (left + time.Millisecond - 1) / time.Millisecond // rounded up: never 0 while time is left
	// The owner speaks protocol version 2 (forwarding needs it), so the call
	// travels in one header.
	call := protocol.AppendCall(make([]byte, 0, 64), string(f.call.typ), protocol.EncodeID(string(f.call.id)), f.call.method, gen, int64(ms))
	if f.call.callID != "" {
		call = protocol.AppendCallID(call, f.call.callID)
	}
	v := [2]string{string(call), strconv.Itoa(f.hops + 1)}
	hdr[protocol.HeaderCall], hdr[protocol.HeaderForwarded] = v[0:1:1], v[1:2:2]
	if f.chain.id != "" {
		hdr[protocol.HeaderChain] = []string{f.chain.id}
		hdr[protocol.HeaderChainPath] = []string{protocol.FormatPath(f.chain.path)}
	}
	return hdr
}

// headerPool recycles the headers of forwarded requests that arrived without
// any: most gateway calls.
var headerPool = sync.Pool{New: func() any { return make(nats.Header, 8) }}

// relay calls the owner through the router and answers the caller with the
// outcome.
func (h *Host) relay(f followed) {
	h.forward(f.msg, f.call, f.deadline, f.chain)
}

// followEnv follows a call this host took for an actor it does not own (any
// more), when its caller must not see MOVED: it came through the gateway.
func (h *Host) followEnv(env *envelope) {
	// The actor may have seen the header map; forwarding rewrites a copy.
	msg := *env.msg
	msg.Header = maps.Clone(env.msg.Header)
	h.follow(followed{
		msg:      &msg,
		call:     gatewayCall{typ: env.t.name, id: env.id, method: env.method, callID: env.callID},
		deadline: env.deadline,
		chain:    env.chain,
		hops:     env.hops,
	})
}

// follows reports whether the outcome e of env's call is not for its
// caller: a gateway call is followed on MOVED, and on the errors a router
// would retry (UNAVAILABLE, STATE_CONFLICT), as the gateway's own router
// did before calls were forwarded directly.
func follows(env *envelope, code protocol.Code) bool {
	if !env.gateway || env.msg == nil || env.msg.Reply == "" {
		return false
	}
	switch code {
	case protocol.CodeMoved, protocol.CodeUnavailable, protocol.CodeStateConflict:
		return true
	}
	return false
}
