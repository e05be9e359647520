// Package actortest runs actor types in memory, for unit tests of actors.
//
// A Kit runs the same turns a host runs — one at a time in mailbox order,
// the Activate and Deactivate hooks, the state saved before the reply, the
// rules that discard an activation after a failed turn, timers, idle
// deactivation, reentrancy — with the state in memory, a clock the test
// moves with Advance, and no NATS server:
//
//	func TestCounter(t *testing.T) {
//		kit := actortest.New(t)
//		kit.Register("counter", counter.New)
//		if _, err := kit.Call("counter", "c1", "add", []byte("5")); err != nil {
//			t.Fatal(err)
//		}
//		if got := string(kit.State("counter", "c1")); got != "5" {
//			t.Fatalf("saved state %q, want 5", got)
//		}
//	}
//
// Calls the actors make through Self.Router reach the other types
// registered in the Kit, or a Stub; Calls lists them all. Reminders set
// with "@at" or "@every" schedules fire as Advance passes their times;
// FireReminder delivers any reminder's firing at once.
//
// What a Kit leaves out is the cluster: placement, handoff between hosts,
// leases, and NATS itself. Test those against a real server, as troupe's
// own tests do.
package actortest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/host/internal/sandboxapi"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Kit runs actor types in memory. Its methods are safe to call from any
// goroutine; Register them all before the first call.
type Kit struct {
	t  testing.TB
	sb sandboxapi.Sandbox
	r  *router.Router

	mu        sync.Mutex
	calls     []Call
	stubs     map[placement.ActorType]Stub
	reminders map[reminderKey]*reminder
	fired     uint64 // firings delivered, for Troupe-Reminder-Seq
}

// Call is one call made through the Kit's router: by the test, or by an
// actor (then Caller is that actor).
type Call struct {
	Caller  protocol.Hop // zero for a call the test made
	Type    placement.ActorType
	ID      placement.ActorID
	Method  string
	Payload []byte
	OneWay  bool
}

// Stub answers the calls to an actor type the Kit does not run.
type Stub func(ctx context.Context, id placement.ActorID, method string, payload []byte) ([]byte, error)

// Option configures a Kit.
type Option func(*options)

type options struct {
	cfg   host.Config
	start time.Time
}

// WithConfig sets the host settings the Kit honours: MailboxSize,
// IdleTimeout, CallTimeout, SaveTimeout, MaxCallChainDepth, Logger and
// OnActivation.
func WithConfig(cfg host.Config) Option { return func(o *options) { o.cfg = cfg } }

// WithStart sets the clock's time when the Kit starts (default: 1 Jan 2030,
// 00:00 UTC).
func WithStart(t time.Time) Option { return func(o *options) { o.start = t } }

// New returns a Kit that is closed when the test ends: every activation is
// deactivated (hooks run, state saved), and the test fails if that hangs.
func New(t testing.TB, opts ...Option) *Kit {
	t.Helper()
	o := options{start: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cfg.ID == "" {
		o.cfg.ID = "actortest"
	}
	sb, err := sandboxapi.New(o.cfg, o.start)
	if err != nil {
		t.Fatal(err)
	}
	k := &Kit{t: t, sb: sb, stubs: make(map[placement.ActorType]Stub), reminders: make(map[reminderKey]*reminder)}
	k.r = router.NewLocal(local{k}, router.Config{DefaultTimeout: o.cfg.CallTimeout})
	sb.SetRouter(k.r)
	t.Cleanup(func() {
		k.mu.Lock()
		for _, r := range k.reminders {
			r.stop()
		}
		k.mu.Unlock()
		sb.Close()
	})
	return k
}

// Register adds an actor type, as host.Host.Register does; the test fails
// on an invalid one.
func (k *Kit) Register(typ placement.ActorType, factory host.Factory, opts ...host.TypeOption) {
	k.t.Helper()
	if err := k.sb.Register(typ, factory, opts); err != nil {
		k.t.Fatal(err)
	}
}

// Stub answers the calls to typ, a type the Kit does not run, with f.
func (k *Kit) Stub(typ placement.ActorType, f Stub) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stubs[typ] = f
}

// Router calls the Kit's actors as a client would.
func (k *Kit) Router() *router.Router { return k.r }

// Call calls an actor with the Kit's default timeout (host.Config's
// CallTimeout) and returns its reply or its *protocol.Error.
func (k *Kit) Call(typ placement.ActorType, id placement.ActorID, method string, payload []byte, opts ...router.CallOption) ([]byte, error) {
	return k.r.Call(context.Background(), typ, id, method, payload, opts...)
}

// Calls returns every call made through the Kit's router so far, in order.
func (k *Kit) Calls() []Call {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

// State is the actor's saved unnamed state (Self.State as the store has
// it), nil if none was saved.
func (k *Kit) State(typ placement.ActorType, id placement.ActorID) []byte {
	state, _, _ := k.sb.Stored(typ, id)
	return state
}

// Key is the actor's saved named state key (Self.Key as the store has it).
func (k *Kit) Key(typ placement.ActorType, id placement.ActorID, name string) ([]byte, bool) {
	_, keys, _ := k.sb.Stored(typ, id)
	v, ok := keys[name]
	return v, ok
}

// Saved reports whether the actor's state was ever saved.
func (k *Kit) Saved(typ placement.ActorType, id placement.ActorID) bool {
	_, _, rev := k.sb.Stored(typ, id)
	return rev != 0
}

// Active lists the active actors of typ, sorted.
func (k *Kit) Active(typ placement.ActorType) []placement.ActorID { return k.sb.Active(typ) }

// Deactivate deactivates the actor after its queued turns, as an idle
// timeout or a move to another host would (Deactivate hook, then save),
// and returns once it has ended.
func (k *Kit) Deactivate(typ placement.ActorType, id placement.ActorID) { k.sb.Deactivate(typ, id) }

// Now is the Kit's clock.
func (k *Kit) Now() time.Time { return k.sb.Now() }

// Advance moves the clock by d. Timers, idle deactivations and reminder
// firings that fall due run in time order, each with the clock at its
// time, and Advance returns once the turns they started have ended.
func (k *Kit) Advance(d time.Duration) { k.sb.Advance(d) }

// local serves the Kit's router.
type local struct{ k *Kit }

func (l local) Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error) {
	stub := l.k.record(typ, id, method, payload, hdr, false)
	if stub != nil {
		return stub(ctx, id, method, payload)
	}
	return l.k.sb.Call(ctx, typ, id, method, payload, hdr)
}

func (l local) Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error {
	stub := l.k.record(typ, id, method, payload, hdr, true)
	if stub != nil {
		_, _ = stub(ctx, id, method, payload)
		return nil
	}
	// At most once: the outcome goes nowhere, as over NATS. The message is
	// in the mailbox when Send returns.
	return l.k.sb.Send(ctx, typ, id, method, payload, hdr)
}

// record notes a call and returns the stub that answers it, if any.
func (k *Kit) record(typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header, oneWay bool) Stub {
	c := Call{Type: typ, ID: id, Method: method, Payload: slices.Clone(payload), OneWay: oneWay}
	if path, err := protocol.ParsePath(hdr.Get(protocol.HeaderChainPath)); err == nil && len(path) > 0 {
		c.Caller = path[len(path)-1]
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, c)
	return k.stubs[typ]
}

// reminderKey names one actor's reminder.
type reminderKey struct {
	typ  placement.ActorType
	id   placement.ActorID
	name string
}

type reminder struct {
	r    router.Reminder
	stop func() // cancels the next firing; a no-op when none is scheduled
}

func (l local) SetReminder(_ context.Context, typ placement.ActorType, id placement.ActorID, r router.Reminder) error {
	k := l.k
	key := reminderKey{typ, id, r.Name}
	rem := &reminder{r: r, stop: func() {}}
	k.mu.Lock()
	defer k.mu.Unlock()
	if old := k.reminders[key]; old != nil {
		old.stop()
	}
	k.reminders[key] = rem
	k.schedule(key, rem, k.sb.Now())
	return nil
}

// schedule arms rem's next firing after now, for the schedules the Kit
// follows ("@at", "@every"). k.mu is held.
func (k *Kit) schedule(key reminderKey, rem *reminder, now time.Time) {
	kind, arg, _ := strings.Cut(rem.r.Schedule, " ")
	var wait time.Duration
	switch kind {
	case "@at":
		at, err := time.Parse(time.RFC3339Nano, arg)
		if err != nil {
			return
		}
		wait = max(at.Sub(now), 0)
	case "@every":
		d, err := time.ParseDuration(arg)
		if err != nil || d <= 0 {
			return
		}
		wait = d
	default:
		return // cron and named schedules: FireReminder delivers them
	}
	rem.stop = k.sb.AfterFunc(wait, func() {
		_ = k.fire(key, rem)
		k.mu.Lock()
		defer k.mu.Unlock()
		if kind == "@every" && k.reminders[key] == rem {
			k.schedule(key, rem, k.sb.Now())
		} else if k.reminders[key] == rem {
			delete(k.reminders, key) // a one-time reminder is gone once fired
		}
	})
}

// fire delivers one firing of rem: the call a host's reminder consumer
// makes.
func (k *Kit) fire(key reminderKey, rem *reminder) error {
	k.mu.Lock()
	k.fired++
	seq := k.fired
	k.mu.Unlock()
	method := rem.r.Method
	if method == "" {
		method = protocol.DefaultReminderMethod
	}
	_, err := k.r.Call(context.Background(), key.typ, key.id, method, rem.r.Payload,
		router.WithHeader(protocol.HeaderReminder, key.name),
		router.WithHeader(protocol.HeaderReminderSeq, strconv.FormatUint(seq, 10)))
	return err
}

// FireReminder delivers a firing of the actor's reminder name now, whatever
// its schedule, and returns the call's error.
func (k *Kit) FireReminder(typ placement.ActorType, id placement.ActorID, name string) error {
	key := reminderKey{typ, id, name}
	k.mu.Lock()
	rem := k.reminders[key]
	k.mu.Unlock()
	if rem == nil {
		return protocol.Errorf(protocol.CodeInvalidArgument, "actor %s/%s has no reminder %q", typ, protocol.EncodeID(string(id)), name)
	}
	return k.fire(key, rem)
}

func (l local) DeleteReminder(_ context.Context, typ placement.ActorType, id placement.ActorID, name string) error {
	k := l.k
	key := reminderKey{typ, id, name}
	k.mu.Lock()
	defer k.mu.Unlock()
	if rem := k.reminders[key]; rem != nil {
		rem.stop()
		delete(k.reminders, key)
	}
	return nil
}

func (l local) Reminders(_ context.Context, typ placement.ActorType, id placement.ActorID) ([]router.Reminder, error) {
	k := l.k
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []router.Reminder
	for key, rem := range k.reminders {
		if key.typ == typ && key.id == id {
			out = append(out, rem.r)
		}
	}
	slices.SortFunc(out, func(a, b router.Reminder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
