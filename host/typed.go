package host

import (
	"context"
	"errors"

	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Typed actors: an actor type declared as Go methods with typed requests and
// replies instead of one Receive over bytes.
//
//	var Add = router.NewMethod[int64, int64]("counter", "add", router.Text)
//
//	func (c *Counter) Add(ctx context.Context, n int64) (int64, error) { ... }
//
//	factory := host.Typed(newCounter, host.Handle(Add, (*Counter).Add))
//
// The bytes API stays underneath: Typed makes an ordinary Factory whose
// actor decodes each call's payload with the method's codec, calls the Go
// method, and encodes its reply, so callers in any language send and receive
// the codec's bytes.

// MethodOf is one typed method of actor A, made by Handle.
type MethodOf[A any] struct {
	name  string
	serve func(a A, ctx context.Context, payload []byte) ([]byte, error)
}

// Handle serves the method m with f, usually a method expression such as
// (*Counter).Add. A payload that does not decode fails the call with
// protocol.ErrInvalidArgument, before f runs.
func Handle[A, Req, Resp any](m router.Method[Req, Resp], f func(A, context.Context, Req) (Resp, error)) MethodOf[A] {
	return MethodOf[A]{name: m.Name, serve: func(a A, ctx context.Context, payload []byte) ([]byte, error) {
		var req Req
		if err := m.Codec.Unmarshal(payload, &req); err != nil {
			var fe *router.FormatError
			if errors.As(err, &fe) {
				return nil, protocol.Errorf(protocol.CodeInvalidArgument, "%s wants %s, got %q", m.Name, fe.Want, fe.Excerpt())
			}
			return nil, protocol.Errorf(protocol.CodeInvalidArgument, "%s: %s payload: %v", m.Name, m.Codec.Name(), err)
		}
		resp, err := f(a, ctx, req)
		if err != nil {
			return nil, err
		}
		b, err := m.Codec.Marshal(resp)
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeInternal, "%s: encoding the reply as %s: %v", m.Name, m.Codec.Name(), err)
		}
		return b, nil
	}}
}

// Typed returns the Factory of an actor type whose calls go to typed
// methods of the value newActor makes for each activation. If that value
// also implements Actor, calls for other methods go to its Receive;
// otherwise they fail with protocol.ErrUnknownMethod. Its Activate and
// Deactivate hooks run as usual. Two methods with the same name make every
// call fail with protocol.ErrInternal.
//
// An actor with no fields of its own can be the *Self itself (SelfActor):
//
//	host.Typed(host.SelfActor, host.Handle(Hello,
//		func(self *host.Self, ctx context.Context, name string) (string, error) { ... }))
func Typed[A any](newActor func(*Self) A, methods ...MethodOf[A]) Factory {
	byName := make(map[string]MethodOf[A], len(methods))
	var dup string
	for _, m := range methods {
		if _, ok := byName[m.name]; ok {
			dup = m.name
		}
		byName[m.name] = m
	}
	return func(self *Self) Actor {
		return &typedActor[A]{a: newActor(self), methods: byName, dup: dup}
	}
}

// SelfActor makes the activation's *Self its typed actor value, for Typed
// actors whose methods are plain functions of (*Self, ctx, request).
func SelfActor(self *Self) *Self { return self }

type typedActor[A any] struct {
	a       A
	methods map[string]MethodOf[A]
	dup     string
}

func (t *typedActor[A]) Receive(ctx context.Context, call Call) ([]byte, error) {
	if t.dup != "" {
		return nil, protocol.Errorf(protocol.CodeInternal, "actor type declares method %q twice", t.dup)
	}
	if m, ok := t.methods[call.Method]; ok {
		return m.serve(t.a, ctx, call.Payload)
	}
	if act, ok := any(t.a).(Actor); ok {
		return act.Receive(ctx, call)
	}
	return nil, UnknownMethod(call)
}

func (t *typedActor[A]) Activate(ctx context.Context) error {
	if act, ok := any(t.a).(Activator); ok {
		return act.Activate(ctx)
	}
	return nil
}

func (t *typedActor[A]) Deactivate(ctx context.Context) error {
	if d, ok := any(t.a).(Deactivator); ok {
		return d.Deactivate(ctx)
	}
	return nil
}
