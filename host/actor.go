package host

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Actor handles the calls of one activation.
//
// Concurrency contract: the host calls Receive (and the optional Activate
// and Deactivate hooks) for one activation from one goroutine at a time, in
// the order the calls arrived: turns never overlap, so an actor needs no
// locks of its own. Different activations run in parallel. Receive must
// return when ctx ends (the caller's deadline); its reply bytes are owned by
// the host after it returns.
//
// A returned error reaches the caller as a *protocol.Error: return one made
// with protocol.Errorf or protocol.AppError to choose the code; any other
// error becomes CodeApplication with its text.
type Actor interface {
	Receive(ctx context.Context, call Call) ([]byte, error)
}

// ActorFunc adapts a function to Actor, for actors that keep no fields.
type ActorFunc func(ctx context.Context, call Call) ([]byte, error)

// Receive calls f.
func (f ActorFunc) Receive(ctx context.Context, call Call) ([]byte, error) { return f(ctx, call) }

// Activator is implemented by actors that need a hook when activated: after
// the state is loaded, before the first call's turn. An error fails that call
// and discards the activation.
type Activator interface {
	Activate(ctx context.Context) error
}

// Deactivator is implemented by actors that need a hook when deactivated
// (idle, moved to another host, or host shutdown). It runs as the
// activation's last turn; state it sets is saved.
type Deactivator interface {
	Deactivate(ctx context.Context) error
}

// Factory makes the Actor for one activation. self stays valid for the
// activation's life; keep it to reach the actor's identity and state.
type Factory func(self *Self) Actor

// Func returns a Factory for an actor that is just a function.
func Func(f ActorFunc) Factory { return func(*Self) Actor { return f } }

// Call is one call delivered to an actor. Payload is owned by the actor for
// the turn and must not be retained after Receive returns unless copied.
type Call struct {
	Method  string
	Payload []byte
	// Header holds the request's headers, including any the caller added
	// with router.WithHeader.
	Header nats.Header
}

// UnknownMethod is the error an actor returns for a method it does not have.
func UnknownMethod(c Call) error {
	return protocol.Errorf(protocol.CodeUnknownMethod, "no method %q", c.Method)
}

// Self is an activation's handle on itself: its identity, its durable state
// and the router for calling other actors. Its methods may only be called
// from the activation's own turns (Receive and the hooks).
type Self struct {
	a *activation
}

// Type is the actor's type.
func (s *Self) Type() placement.ActorType { return s.a.t.name }

// ID is the actor's id.
func (s *Self) ID() placement.ActorID { return s.a.id }

// State is the actor's durable state: as loaded on activation, or as set by
// SetState in this or an earlier turn. nil when the actor has none. The bytes
// must not be modified.
func (s *Self) State() []byte { return s.a.state }

// SetState replaces the actor's state. At the end of the turn the host
// saves it with a compare-and-set on the last revision it read, before the
// reply is sent: an acknowledged call's state is durable, and a stale
// activation's write is refused. The host keeps b; do not modify it after.
func (s *Self) SetState(b []byte) {
	if b == nil {
		b = []byte{}
	}
	s.a.state = b
	s.a.markChanged()
}

// markChanged records that the running turn changed the state.
func (a *activation) markChanged() { a.dirty, a.changed = true, true }

// Now is the time on the host's clock (Config.Clock): the system clock on
// a host, the test's clock under package actortest. Actors that compute
// deadlines with it can be tested without waiting.
func (s *Self) Now() time.Time { return s.a.e.clock.Now() }

// Router calls other actors; pass the turn's ctx so the deadline carries over.
func (s *Self) Router() *router.Router { return s.a.e.rt.router() }

// TypeOption tweaks one registered actor type.
type TypeOption interface{ apply(*actorType) }

type typeOptionFunc func(*actorType)

func (f typeOptionFunc) apply(t *actorType) { f(t) }

// MailboxSize bounds the calls waiting for one activation of the type;
// further calls fail with protocol.ErrBusy. It overrides Config.MailboxSize.
func MailboxSize(n int) TypeOption {
	return typeOptionFunc(func(t *actorType) { t.mailbox = n })
}

// IdleTimeout deactivates an activation of the type after it received no
// call for d. It overrides Config.IdleTimeout.
func IdleTimeout(d time.Duration) TypeOption {
	return typeOptionFunc(func(t *actorType) { t.idle = d })
}

// Reentrant lets a call re-enter an activation of the type whose turn is
// waiting for it: a call that belongs to the call chain holding the turn,
// made by an actor the turn called (directly or through others), runs at
// once as a nested turn while the holder waits. Without it such a call fails
// at once with protocol.ErrWouldDeadlock, naming the cycle. Calls from other
// chains queue as usual either way.
func Reentrant() TypeOption {
	return typeOptionFunc(func(t *actorType) { t.reentrant = true })
}

// GroupCommit bounds the turns one state save covers (DefaultGroupCommit).
// Turns that find calls queued behind them run on the state in memory, and
// one save covers them; their replies are held until it is acknowledged
// (group.go, docs/GUARANTEES.md). GroupCommit(1) saves after every turn that
// changed the state.
func GroupCommit(turns int) TypeOption {
	return typeOptionFunc(func(t *actorType) { t.group = turns })
}

// NoState declares that the type keeps no durable state: activation reads
// nothing from the state bucket and SetState is ignored.
func NoState() TypeOption {
	return typeOptionFunc(func(t *actorType) { t.stateless = true })
}

// newActorType checks and makes a type to register among types.
func newActorType(cfg Config, types catalog, typ placement.ActorType, factory Factory, opts []TypeOption) (*actorType, error) {
	if err := typ.Validate(); err != nil {
		return nil, err
	}
	if factory == nil {
		return nil, fmt.Errorf("host: nil factory for actor type %q", typ)
	}
	if _, dup := types[typ]; dup {
		return nil, fmt.Errorf("host: actor type %q registered twice", typ)
	}
	t := &actorType{name: typ, factory: factory, mailbox: cfg.MailboxSize, idle: cfg.IdleTimeout, group: DefaultGroupCommit, window: defaultWindow}
	for _, o := range opts {
		o.apply(t)
	}
	if t.mailbox < 1 || t.idle <= 0 || t.group < 1 {
		return nil, fmt.Errorf("host: actor type %q: mailbox size, idle timeout and group commit must be positive", typ)
	}
	if err := t.validSubs(); err != nil {
		return nil, err
	}
	t.dir.init()
	return t, nil
}

// actorType is a registered type.
type actorType struct {
	name      placement.ActorType
	factory   Factory
	mailbox   int
	group     int // the most turns one save covers (group.go)
	idle      time.Duration
	stateless bool
	reentrant bool
	window    windowLimits   // the idempotent calls remembered (calls.go)
	subs      []Subscription // streams delivered to the type (streams.go)
	// workerTimeout bounds a worker type's turns (worker.go).
	workerTimeout time.Duration
	dir           directory
	counters      typeCounters
}
