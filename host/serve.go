package host

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// maxTimeout caps the timeout a request may ask for.
const maxTimeout = time.Hour

// serveFrom takes one request from the host's subject. It runs on the
// intake's reader (intake.go), so it only parses, routes and enqueues; a
// turn runs on its activation's own goroutine, or on the reader after
// serveFrom returns when the admission left it in slot.
func (h *Host) serveFrom(msg *nats.Msg, slot *inlineSlot) {
	if _, probe := msg.Header[protocol.HeaderProbe]; probe {
		// A forwarding host asks whether this host took the calls it
		// forwarded before the probe: read in order, every one of them
		// has been taken by now, and will be answered (probe.go).
		if msg.Reply != "" {
			_ = h.nc.Publish(msg.Reply, nil)
		}
		return
	}
	if v, notice := msg.Header[protocol.HeaderReleased]; notice {
		if msg.Reply != "" {
			h.fail(msg, protocol.Errorf(protocol.CodeBadRequest, "%s is a notice between hosts, published without a reply subject", protocol.HeaderReleased))
			return
		}
		if len(v) != 1 {
			return
		}
		if id, inc, gen, ok := protocol.ParseReleased(v[0]); ok {
			h.w.NoteRelease(id, inc, gen) // handoff.go
			h.collect.Load().NoteRelease(id, inc, gen)
		}
		return
	}
	// A message without a reply subject is a one-way send (see oneway.go).
	env, err := h.parse(msg)
	if err != nil {
		h.obs.rejected(err)
		h.fail(msg, err)
		return
	}
	if env.gen > h.w.Applied() {
		h.eng.turns.add()
		go h.admitLater(env)
		return
	}
	h.admitFrom(env, slot)
}

// parse validates a request's headers: the call in one Troupe-Call header
// (what the Go router sends) or in the five separate ones.
func (h *Host) parse(msg *nats.Msg) (*envelope, *protocol.Error) {
	hdr := msg.Header
	if v, ok := hdr[protocol.HeaderCall]; ok {
		return h.parseCall(msg, v)
	}
	typ := placement.ActorType(hdr.Get(protocol.HeaderType))
	if typ == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "missing %s header", protocol.HeaderType)
	}
	t, e := h.actorType(typ)
	if e != nil {
		return nil, e
	}
	rawID, ok := hdr[protocol.HeaderID]
	if !ok || len(rawID) != 1 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "want exactly one %s header", protocol.HeaderID)
	}
	method := hdr.Get(protocol.HeaderMethod)
	if method == "" {
		// A required header that is missing is a malformed request, as for
		// the type and the id; a method that is there but invalid is not.
		return nil, protocol.Errorf(protocol.CodeBadRequest, "missing %s header", protocol.HeaderMethod)
	}
	id, method, e := parseIdentity(rawID[0], method)
	if e != nil {
		return nil, e
	}
	env := &envelope{msg: msg, t: t, id: id, method: method}
	if g := hdr.Get(protocol.HeaderGeneration); g != "" {
		var err error
		if env.gen, err = strconv.ParseUint(g, 10, 64); err != nil {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "malformed %s header %q", protocol.HeaderGeneration, g)
		}
	}
	if env.deadline, e = h.deadline(hdr); e != nil {
		return nil, e
	}
	if env.callID, e = callIDHeader(hdr); e != nil {
		return nil, e
	}
	return h.parseChain(env, hdr)
}

// parseCall reads a request that carries its call in a Troupe-Call header.
func (h *Host) parseCall(msg *nats.Msg, v []string) (*envelope, *protocol.Error) {
	hdr := msg.Header
	if k, both := otherForm(hdr); both {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "%s and %s in one request: send one form", protocol.HeaderCall, k)
	}
	f, ok := protocol.ParseCall(v[0])
	if len(v) != 1 || !ok {
		return nil, protocol.Errorf(protocol.CodeBadRequest,
			"malformed %s header %q: want exactly one, <type> <id> <method> <generation> <timeout ms>", protocol.HeaderCall, v[0])
	}
	t, e := h.actorType(placement.ActorType(f.Type))
	if e != nil {
		return nil, e
	}
	id, method, e := parseIdentity(f.ID, f.Method)
	if e != nil {
		return nil, e
	}
	env := &envelope{msg: msg, t: t, id: id, method: method, gen: f.Generation, callID: f.CallID}
	env.deadline = time.Now().Add(timeoutOf(f.TimeoutMs))
	if f.CallID != "" {
		if e := checkCallID(f.CallID); e != nil {
			return nil, e
		}
	}
	if len(hdr) == 1 {
		return env, nil // HeaderCall alone: no call chain either
	}
	return h.parseChain(env, hdr)
}

// otherForm returns a header of the five-header form that hdr holds, if any.
// A header block of one header (HeaderCall) holds none.
func otherForm(hdr nats.Header) (string, bool) {
	if len(hdr) == 1 {
		return "", false
	}
	for _, k := range [...]string{protocol.HeaderType, protocol.HeaderID, protocol.HeaderMethod, protocol.HeaderGeneration, protocol.HeaderTimeout, protocol.HeaderCallID} {
		if _, ok := hdr[k]; ok {
			return k, true
		}
	}
	return "", false
}

// callIDHeader reads the optional Troupe-Call-Id header: at most one, a
// valid call id.
func callIDHeader(hdr nats.Header) (string, *protocol.Error) {
	v, ok := hdr[protocol.HeaderCallID]
	switch {
	case !ok:
		return "", nil
	case len(v) != 1:
		return "", protocol.Errorf(protocol.CodeBadRequest, "want at most one %s header", protocol.HeaderCallID)
	}
	return v[0], checkCallID(v[0])
}

// actorType is the type a request names, if this host serves it.
func (h *Host) actorType(typ placement.ActorType) (*actorType, *protocol.Error) {
	t, ok := h.types[typ]
	if !ok {
		return nil, protocol.Errorf(protocol.CodeUnknownType, "host %s does not serve actor type %q", h.cfg.ID, typ)
	}
	return t, nil
}

// parseChain reads the call chain headers into env.
func (h *Host) parseChain(env *envelope, hdr nats.Header) (*envelope, *protocol.Error) {
	var e *protocol.Error
	if env.chain, e = parseChain(hdr, h.cfg.MaxCallChainDepth); e != nil {
		return nil, e
	}
	if f := hdr.Get(protocol.HeaderForwarded); f != "" {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "malformed %s header %q: want a count of hops", protocol.HeaderForwarded, f)
		}
		env.hops, env.gateway = n, true
	}
	return env, nil
}

// parseIdentity decodes and checks an encoded actor id and a method name.
func parseIdentity(rawID, method string) (placement.ActorID, string, *protocol.Error) {
	id, err := protocol.DecodeID(rawID)
	if err != nil {
		return "", "", protocol.Errorf(protocol.CodeBadRequest, "malformed actor id %q: %v", rawID, err)
	}
	if e := checkIdentity(placement.ActorID(id), method); e != nil {
		return "", "", e
	}
	return placement.ActorID(id), method, nil
}

// checkIdentity checks a decoded actor id and a method name.
func checkIdentity(id placement.ActorID, method string) *protocol.Error {
	if err := id.Validate(); err != nil {
		return protocol.Errorf(protocol.CodeInvalidID, "%v", err)
	}
	if err := placement.ValidateName("method", method); err != nil {
		return protocol.Errorf(protocol.CodeInvalidMethod, "%v", err)
	}
	return nil
}

// deadline is when a request's call must end: its Troupe-Timeout from now,
// or the host's CallTimeout.
func (h *Host) deadline(hdr nats.Header) (time.Time, *protocol.Error) {
	timeout := h.cfg.CallTimeout
	if ms := hdr.Get(protocol.HeaderTimeout); ms != "" {
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, protocol.Errorf(protocol.CodeBadRequest, "malformed %s header %q: want milliseconds", protocol.HeaderTimeout, ms)
		}
		timeout = timeoutOf(n)
	}
	return time.Now().Add(timeout), nil
}

// timeoutOf is a request's timeout in milliseconds (not negative), capped
// at maxTimeout before it can overflow.
func timeoutOf(ms int64) time.Duration {
	return time.Duration(min(ms, maxTimeout.Milliseconds())) * time.Millisecond
}

// admitLater waits for the host's watcher to reach the caller's generation,
// bounded by the call's deadline, then admits the call.
func (h *Host) admitLater(env *envelope) {
	defer h.eng.turns.done()
	ctx, cancel := context.WithDeadline(context.Background(), env.deadline)
	defer cancel()
	if err := h.w.WaitApplied(ctx, env.gen); err != nil {
		if errors.Is(err, placement.ErrWatcherStopped) {
			h.failCall(env, protocol.Errorf(protocol.CodeUnavailable, "host %s is stopping", h.cfg.ID))
			return
		}
		h.failCall(env, protocol.Errorf(protocol.CodeDeadlineExceeded,
			"host %s did not reach generation %d before the deadline", h.cfg.ID, env.gen))
		return
	}
	h.admit(env)
}

// admit puts a call in its actor's mailbox if this host owns the actor at
// its current table, or answers MOVED.
func (h *Host) admit(env *envelope) { h.admitFrom(env, nil) }

// admitFrom is admit on the intake's reader: slot receives the mailbox the
// reader is to run, if any.
func (h *Host) admitFrom(env *envelope, slot *inlineSlot) {
	table := h.w.Table()
	if !h.owns(table, env.t.name, env.id) {
		if env.msg.Reply == "" && env.local == nil {
			h.forwardOneWay(env, table)
			return
		}
		h.failCall(env, h.errMoved(table))
		return
	}
	env.admitted = h.obs.now()
	deliver(h.eng, env, slot)
}

// fail answers a request with an error reply.
func (h *Host) fail(msg *nats.Msg, e *protocol.Error) { h.respond(msg, errorReply(e)) }

// answer sends the outcome of a call that reached the host as env: to the
// caller in the host itself, or as a reply to the request.
func (h *Host) answer(env *envelope, resp *nats.Msg) {
	if env.local != nil {
		select {
		case env.local <- resp:
		default: // answered already; a call has one outcome
		}
		return
	}
	h.respond(env.msg, resp)
}

func (h *Host) respond(req, resp *nats.Msg) {
	if req.Reply == "" {
		h.oneWayDone(req, resp)
		return
	}
	resp.Subject = req.Reply
	h.replies.add(resp)
}
