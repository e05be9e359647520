package host

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// The turn engine.
//
// An activation (mailbox.go) runs its actor's turns one at a time, in
// mailbox order (turn.go). It does no I/O of its own: what it needs from
// outside — the fence, the state store, where outcomes go, the router an
// actor calls others with — it asks of its runtime, and the time of its
// clock. The host is the runtime over NATS (runtime_host.go); the runtime
// tests and package actortest run activations over an in-memory one, with
// a clock they move by hand.

// turnRuntime is what an activation needs from outside it. Its methods are
// called from the activations' goroutines, many at once.
type turnRuntime interface {
	// epoch is the epoch a new activation belongs to.
	epoch() epoch
	// mayAct reports whether an activation of epoch e may run a turn now.
	mayAct(e epoch) bool
	// errFenced is the error of a turn the fence refused.
	errFenced() *protocol.Error
	// actedUntil bounds when an activation of epoch e ending at now last
	// acted (fence.actedUntil).
	actedUntil(e epoch, now time.Time) time.Time

	// awaitActivation blocks until the actor may be activated here: the
	// table gives it to this host and no other host can still hold it. It
	// fails with MOVED, UNAVAILABLE or DEADLINE_EXCEEDED.
	awaitActivation(ctx context.Context, typ placement.ActorType, id placement.ActorID) error
	// placed says where an activation starts: the host's incarnation and
	// its table's generation, for ActivationRecord.
	placed() (incarnation string, generation uint64)

	// load reads an actor's state entry; a key never written gives the
	// zero stateEntry.
	load(ctx context.Context, key string) (stateEntry, error)
	// save writes it with compare-and-set on rev, if an activation of epoch
	// e may act, and returns the new revision (stateStore.save).
	save(e epoch, key string, value []byte, hdr nats.Header, rev uint64) (uint64, error)
	// maxPayload is the largest message a reply or a state entry may be,
	// 0 for no limit.
	maxPayload() int64

	// respond delivers the outcome of a call's turn to its caller.
	respond(env *envelope, reply *nats.Msg)
	// reject answers a call that never reached its turn.
	reject(env *envelope, e *protocol.Error)
	// readmit routes again a call that was queued behind a deactivation:
	// to the actor's next activation, or MOVED.
	readmit(env *envelope)
	// router is what actors call other actors with.
	router() *router.Router
}

// engine is what the activations of one host share: their runtime, their
// clock and settings, and the count of running work that Shutdown waits
// for.
type engine struct {
	rt           turnRuntime
	clock        clock
	host         placement.HostID
	log          *slog.Logger
	obs          *observer // nil when off
	callTimeout  time.Duration
	saveTimeout  time.Duration
	onActivation func(ActivationRecord)

	turns   inflight    // running mailboxes, nested turns and the host's own deferred work
	closing atomic.Bool // the host is shutting down: timers stop posting ticks
}

// clock is the time as the engine sees it: idle collection and actor
// timers follow it. Call deadlines are wall-clock time, shared with callers
// on other machines, and do not.
type clock interface {
	Now() time.Time
	// AfterFunc runs f on its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) clockTimer
}

// clockTimer is a timer made by a clock's AfterFunc. *time.Timer is one.
type clockTimer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// clockOf makes Config.Clock a clock: its own AfterFunc when it has one,
// else the runtime's timers.
func clockOf(c Clock) clock {
	if full, ok := c.(clock); ok {
		return full
	}
	return nowOnly{c}
}

type nowOnly struct{ Clock }

func (nowOnly) AfterFunc(d time.Duration, f func()) clockTimer { return time.AfterFunc(d, f) }

func (systemClock) AfterFunc(d time.Duration, f func()) clockTimer { return time.AfterFunc(d, f) }

// record reports an activation's start (end zero) or end to
// Config.OnActivation.
func (e *engine) record(a *activation, end time.Time) {
	if e.onActivation == nil {
		return
	}
	r := a.extra()
	e.onActivation(ActivationRecord{
		Type: a.t.name, ID: a.id, Host: e.host, Incarnation: r.incarnation,
		Generation: r.gen, Start: r.started, End: end,
	})
}
