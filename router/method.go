package router

import (
	"context"

	"github.com/troupe-dev/troupe/placement"
)

// Method describes a typed method of an actor type: its name, the Go types
// of its request and reply, and the codec that carries them as payload
// bytes. The actor's package declares it once; the host side serves it
// (host.Handle) and callers call it, so both agree on the types:
//
//	var Add = router.NewMethod[int64, int64]("counter", "add", router.Text)
//
//	total, err := counter.Add.Call(ctx, r, "c1", 5)
//
// On the wire nothing changes: the request and reply are the codec's bytes,
// so the gateway and clients in other languages call the same method with
// plain payloads.
type Method[Req, Resp any] struct {
	Type  placement.ActorType
	Name  string
	Codec Codec
}

// NewMethod describes the method name of actor type typ.
func NewMethod[Req, Resp any](typ placement.ActorType, name string, codec Codec) Method[Req, Resp] {
	return Method[Req, Resp]{Type: typ, Name: name, Codec: codec}
}

// Call calls the method on actor id with req and decodes the reply. A
// request that does not encode fails with CodeInvalidArgument before
// anything is sent; a reply that does not decode fails with CodeInternal
// (the actor and its callers disagree on the method's types).
func (m Method[Req, Resp]) Call(ctx context.Context, r *Router, id placement.ActorID, req Req, opts ...CallOption) (Resp, error) {
	var resp Resp
	payload, err := m.Codec.Marshal(req)
	if err != nil {
		return resp, Errorf(CodeInvalidArgument, "%s.%s: encoding the request as %s: %v", m.Type, m.Name, m.Codec.Name(), err)
	}
	reply, err := r.Call(ctx, m.Type, id, m.Name, payload, opts...)
	if err != nil {
		return resp, err
	}
	if err := m.Codec.Unmarshal(reply, &resp); err != nil {
		return resp, Errorf(CodeInternal, "%s.%s: reply does not decode as %s %T: %v", m.Type, m.Name, m.Codec.Name(), resp, err)
	}
	return resp, nil
}

// Invoke calls method on actor (typ, id) with a typed request, for a one-off
// call without a Method declared beforehand.
func Invoke[Req, Resp any](ctx context.Context, r *Router, codec Codec, typ placement.ActorType, id placement.ActorID, method string, req Req, opts ...CallOption) (Resp, error) {
	return NewMethod[Req, Resp](typ, method, codec).Call(ctx, r, id, req, opts...)
}
