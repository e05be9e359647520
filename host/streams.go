package host

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// Stream subscriptions.
//
// An actor type subscribes to a JetStream stream: each message the
// subscription's filter matches is delivered to one actor of the type, the
// one its subject token or header names, as a call to the subscription's
// method. Effects happen exactly once and in stream order per actor:
//
//   - The actor's state entry records, per subscription, the stream sequence
//     of the last message applied (its cursor, pb.ActorState.streams). A
//     turn that applies a message advances the cursor, and the new cursor is
//     saved in the same compare-and-set write as the state the turn
//     produced (group.go saves them together), so no state exists that
//     includes a message without saying so.
//   - A message whose sequence the cursor already covers is answered with
//     success without running the turn: JetStream's redeliveries, and a
//     message two pullers both send during a table change, are harmless.
//   - One host pulls each subscription (puller.go): the owner of (type,
//     troupe_sub_<name>) in the table. It sends each message through the
//     router to the actor's owner, one message per actor at a time and in
//     stream order, and acknowledges it once answered.
//
// Why one puller that forwards, rather than a consumer per host filtered to
// its actors, is in docs/streams.md with the numbers, and how to spread a
// stream over several pullers: partition its subjects by the actor id and
// declare one subscription per partition (examples/orders/partitioned.go).

// Defaults of a Subscription.
const (
	DefaultStreamMaxInFlight = 1024
	DefaultStreamMaxAttempts = 5
	DefaultStreamAckWait     = 30 * time.Second
)

// Subscription delivers a JetStream stream's messages to a type's actors.
type Subscription struct {
	// Name names the subscription within the type, in the actors' cursors
	// and in the durable consumer troupe_<type>_<name>: [A-Za-z0-9_-].
	// Renaming a subscription starts it over from the stream's first
	// message.
	Name string
	// Stream is the JetStream stream to read; it must exist when the
	// subscription's puller starts (the puller waits for it).
	Stream string
	// Subject filters the stream's messages; empty takes them all.
	Subject string
	// IDToken is the index, from 0, of the subject token that is the
	// actor's id, when IDHeader is empty: 1 takes c1 from orders.c1.new.
	// It must be a wildcard of Subject (a * or past a >), not a fixed
	// token such as a partition's number.
	IDToken int
	// IDHeader, if set, is the message header whose value is the actor's
	// id.
	IDHeader string
	// Method is the method each message calls; the message's data is the
	// payload.
	Method string
	// MaxInFlight bounds the messages delivered and not yet acknowledged,
	// across all actors (the consumer's MaxAckPending); 0 means
	// DefaultStreamMaxInFlight. Each actor has one at a time.
	MaxInFlight int
	// MaxAttempts is how often a message whose turn fails (the actor's
	// error, or a message it cannot take) is tried before it is terminated
	// and counted; 0 means DefaultStreamMaxAttempts. A message that names
	// no valid actor id is terminated at once. Failures of delivery (no
	// host, a host that died, a timeout) are retried without limit.
	MaxAttempts int
	// AckWait is the consumer's ack wait; 0 means DefaultStreamAckWait.
	AckWait time.Duration
}

// ErrInvalidSubscription is returned by Register for a subscription that
// cannot work.
var ErrInvalidSubscription = errors.New("host: invalid subscription")

// Subscribe delivers a stream's messages to the type's actors. A type may
// have several subscriptions, each with its own name.
//
// A type without state (NoState) gets each message at least once: it keeps
// no cursor.
func Subscribe(s Subscription) TypeOption {
	return typeOptionFunc(func(t *actorType) { t.subs = append(t.subs, s) })
}

// withDefaults fills the zero fields.
func (s Subscription) withDefaults() Subscription {
	if s.MaxInFlight == 0 {
		s.MaxInFlight = DefaultStreamMaxInFlight
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultStreamMaxAttempts
	}
	if s.AckWait == 0 {
		s.AckWait = DefaultStreamAckWait
	}
	return s
}

// validSubs checks a type's subscriptions and fills their defaults.
func (t *actorType) validSubs() error {
	seen := map[string]bool{}
	for i, s := range t.subs {
		s = s.withDefaults()
		t.subs[i] = s
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: type %q, subscription %q: %s", ErrInvalidSubscription, t.name, s.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case protocol.ValidateSubscriptionName(s.Name) != nil:
			return bad("%v", protocol.ValidateSubscriptionName(s.Name))
		case seen[s.Name]:
			return bad("declared twice")
		case protocol.ValidateName("stream", s.Stream) != nil:
			return bad("%v", protocol.ValidateName("stream", s.Stream))
		case checkIdentity("x", s.Method) != nil:
			return bad("method: %v", checkIdentity("x", s.Method))
		case s.IDHeader == "" && (s.IDToken < 0 || s.Subject != "" && s.IDToken >= tokens(s.Subject)):
			return bad("IDToken %d is not a token of the subject filter %q", s.IDToken, s.Subject)
		case s.IDHeader == "" && literalToken(s.Subject, s.IDToken) != "":
			return bad("IDToken %d is the fixed token %q of the subject filter %q: every message would go to that one actor", s.IDToken, literalToken(s.Subject, s.IDToken), s.Subject)
		case s.MaxInFlight < 0 || s.MaxAttempts < 0 || s.AckWait < 0:
			return bad("MaxInFlight, MaxAttempts and AckWait must not be negative")
		}
		seen[s.Name] = true
	}
	return nil
}

// tokens counts a subject's tokens; a trailing > counts as one.
func tokens(subject string) int {
	n := 1
	for i := 0; i < len(subject); i++ {
		if subject[i] == '.' {
			n++
		}
	}
	if subject == ">" || len(subject) > 1 && subject[len(subject)-2:] == ".>" {
		return 1 << 30 // any index may exist
	}
	return n
}

// literalToken is the subject filter's token i if it is fixed (not * or
// past a >), else "".
func literalToken(subject string, i int) string {
	if subject == "" {
		return ""
	}
	toks := strings.Split(subject, ".")
	if i >= len(toks) || toks[i] == "*" || slices.Contains(toks[:i+1], ">") {
		return ""
	}
	return toks[i]
}

// cursors are an actor's stream cursors: per subscription name, the stream
// sequence of the last message its state includes. A value is never
// modified once made: advancing one makes a new map, so the output gate
// can hold one without copying.
type cursors map[string]uint64

func decodeCursors(in []*pb.StreamCursor) cursors {
	if len(in) == 0 {
		return nil
	}
	c := make(cursors, len(in))
	for _, sc := range in {
		c[sc.Name] = sc.Seq
	}
	return c
}

func (c cursors) encode() []*pb.StreamCursor {
	if len(c) == 0 {
		return nil
	}
	out := make([]*pb.StreamCursor, 0, len(c))
	for _, name := range slices.Sorted(maps.Keys(c)) {
		out = append(out, &pb.StreamCursor{Name: name, Seq: c[name]})
	}
	return out
}

// cursors is the actor's stream cursors, nil if it never consumed a stream.
func (a *activation) cursors() cursors {
	if r := a.rare.Load(); r != nil {
		return r.cursor
	}
	return nil
}

func (a *activation) setCursors(c cursors) {
	if c != nil || a.rare.Load() != nil {
		a.extra().cursor = c
	}
}

// streamMsg is the stream message a call delivers, if it delivers one.
type streamMsg struct {
	name string
	seq  uint64
}

// streamOf reads the stream headers of a call to a type with state; ok is
// false for a call that delivers no stream message.
func (a *activation) streamOf(env *envelope) (m streamMsg, ok bool, err error) {
	if env.kind != kindCall || env.msg == nil || a.t.stateless {
		return m, false, nil
	}
	name := env.msg.Header.Get(protocol.HeaderStream)
	if name == "" {
		return m, false, nil
	}
	if err := protocol.ValidateSubscriptionName(name); err != nil {
		return m, false, protocol.Errorf(protocol.CodeBadRequest, "%s: %v", protocol.HeaderStream, err)
	}
	seq, err := protocol.ParseStreamSeq(env.msg.Header.Get(protocol.HeaderStreamSeq))
	if err != nil {
		return m, false, protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	return streamMsg{name, seq}, true, nil
}

// covers reports whether the actor's state already includes m.
func (a *activation) covers(m streamMsg) bool { return a.cursors()[m.name] >= m.seq }

// advance records that the turn applied m: the cursor is saved with the
// state the turn produced.
func (a *activation) advance(m streamMsg) {
	c := make(cursors, len(a.cursors())+1)
	maps.Copy(c, a.cursors())
	c[m.name] = m.seq
	a.setCursors(c)
	a.markChanged()
}
