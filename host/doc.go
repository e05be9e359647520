// Package host runs actors: it is the serving side of troupe.
//
// A Host joins the member set with a lease in the membership bucket (see
// package placement), subscribes to its own subject <prefix>.host.<id>, and
// serves calls for the actors that the placement table gives it:
//
//	nc, _ := nats.Connect(url, nats.ReconnectBufSize(-1))
//	h, _ := host.New(nc, host.Config{})
//	_ = h.Register("counter", counter.New)
//	_ = h.Start(ctx)
//	defer h.Shutdown(ctx)
//
// # Turns
//
// Each active actor has a mailbox: a bounded FIFO of calls (Config.MailboxSize;
// a full one answers protocol.ErrBusy). While calls are waiting, one goroutine
// runs them one turn at a time; when the mailbox empties the goroutine ends,
// so an idle actor costs memory but no goroutine. A call to an idle, active
// actor of a type without state may run on the goroutine that read the
// request instead, which hands the reading on if the turn waits or runs
// long (intake.go).
//
// # Lifecycle
//
// The first call activates an actor: the host loads its state from the state
// bucket, calls the type's Factory, then the optional Activate hook. An
// actor is deactivated (optional Deactivate hook, then a final save) when it
// has been idle for the idle timeout, when a table change gives it to
// another host, and when the host shuts down. Deactivation is itself a turn,
// queued behind the calls already waiting (for a move, right behind the
// running turn; the calls behind it are answered MOVED), so it never
// overlaps a call.
//
// # Single activation
//
// At most one activation of an actor runs turns at any moment, across all
// hosts. After a table change a host deactivates the actors it lost and then
// says it released: to its gainers and the collectors by notice, and in a
// release record when the settled record does not follow (nothing at all
// when the change took nothing from it, as its last recorded release
// implies this one); a host activates an actor it gained only when no
// other member can still hold it (placement.Watcher.MayActivate); and a host
// runs a turn or sends a save only while its lease is valid
// (placement.Lease.Valid). A host that lost its lease drops every
// activation and joins again as a new incarnation. Shutdown drains: it marks
// the host draining, waits until its actors are handed off, and then leaves.
// Give a host a connection without a reconnect buffer
// (nats.ReconnectBufSize(-1)), so that no save waits out an outage in memory.
// PROTOCOL.md ("Handoff") and docs/GUARANTEES.md have the details.
//
// # State
//
// An actor's state is bytes (Self.State, Self.SetState). A turn that set it is
// saved before its reply is sent, with a compare-and-set on the revision the
// activation read: an acknowledged call's state is durable, and a write from
// a stale activation is refused with protocol.ErrStateConflict instead of
// overwriting newer state. A turn that fails, panics, or whose save fails is
// discarded with its activation, so memory never drifts from the store; the
// next call activates the actor again from the store.
//
// Calls that queue up behind a save do not each wait for their own: the
// next turns run on the state in memory while a saver stores it, one save
// covers every turn that ended during the one before, and each reply is
// held until the save that covers its state is acknowledged (group commit,
// an output gate: group.go; GroupCommit bounds the turns per save).
//
// An actor may also keep named keys (Self.Key, SetKey, DeleteKey; GetKey and
// SetKeyOf with a codec). They live in the same state entry and are saved
// together with the same compare-and-set (statekeys.go says why).
//
// # Typed methods
//
// Typed makes a Factory from Go methods with typed requests and replies,
// each declared once as a router.Method (name, types, codec) and served with
// Handle; callers call the same router.Method. Payloads on the wire stay the
// codec's bytes, so other languages call typed methods unchanged.
//
// # Call chains and reentrancy
//
// Calls an actor makes with its turn's ctx carry the call chain. A call that
// comes back to an actor whose turn waits for it runs as a nested turn when
// the type is Reentrant, and otherwise fails at once with
// protocol.ErrWouldDeadlock naming the cycle; chains deeper than
// Config.MaxCallChainDepth fail with protocol.ErrChainTooDeep (chain.go).
//
// # Timers, reminders and one-way sends
//
// A timer (Self.SetTimer) belongs to one activation: each tick is a turn the
// host posts to the actor's own mailbox, so it never overlaps a call; timers
// stop with the activation and do not keep an idle actor alive unless
// Timer.KeepAlive is set.
//
// A reminder (Self.SetReminder, router.Router.SetReminder, or the reminder
// gateway) is durable and kept by the NATS server as a JetStream message
// schedule in the reminder stream, not by any host. When it fires, the
// server stores a firing in the same stream; three hosts the table names
// (placement.ReminderPullers) pull firings from one shared durable consumer
// and deliver each as an ordinary call through their routers, so it runs on
// whichever host owns the actor then, and acknowledge it after the reply. One shared work queue needs no
// per-reminder or per-actor state in hosts and nothing to rebalance: the
// router already reaches the owner through table changes and crashes.
// Delivery is at least once; see reminders.go and PROTOCOL.md.
//
// A request without a reply subject is a one-way send (router.Router.Send):
// admitted like a call, answered to nobody, delivered at most once.
//
// # Stream subscriptions
//
// A type registered with Subscribe gets a JetStream stream's messages, each
// as a call to one actor, exactly once and in stream order per actor: the
// host that owns (type, troupe_sub_<name>) pulls them and forwards each to
// its actor's owner, and the actor's state records the last sequence it
// applied in the same save (streams.go, puller.go, docs/streams.md).
//
// # Routing
//
// A request carries the caller's table generation. A host that has not yet
// applied that generation waits for its watcher (bounded by the call's
// deadline) before deciding; a host that does not own the actor at its
// table answers MOVED with its generation, and the caller catches up and
// retries.
//
// # Observability
//
// Config.Metrics (a prometheus.Registerer) turns on the host's Prometheus
// metrics and its router's; Config.TracerProvider turns on tracing: a turn
// continues the W3C trace context its request carries, and its ctx carries
// the turn's span into calls the actor makes through Self.Router(). Both are
// nil by default, which costs a call one nil check. Ready reports whether the
// host is ready to take calls, for health checks. docs/operations.md lists
// the metrics and their labels.
//
// # Operations
//
// Stats gives, per actor type, the active actors and the turns run and
// failed (counters the hot path keeps with atomic adds). Every host answers
// the admin subjects <prefix>.admin.actors (all hosts: scatter/gather) and
// <prefix>.admin.actors.<id> with its Report, and the NATS service discovery
// subjects ($SRV.PING, INFO, STATS) as an instance of the service "troupe",
// so `nats micro ls` lists it. PROTOCOL.md specifies both.
//
// # Testing actors
//
// Package actortest runs actor types in memory, with a clock the test
// moves: the same turns a host runs, no server.
//
// # Inside the host
//
// The host keeps the shape of placement: a core that does no I/O, with
// NATS at its edges.
//
//   - The turn engine (engine.go, turn.go, mailbox.go, group.go, chain.go,
//     timers.go, statekeys.go) runs each activation's turns. One runTurn serves every
//     kind of turn — a call (one-way sends and reminder firings arrive as
//     calls), a nested call, a posted timer tick — and the last two kinds
//     that end an activation; the kind is explicit in the envelope. What an
//     activation needs from outside is the turnRuntime interface — the
//     fence, the activation wait, state load and save, where outcomes go,
//     the router — and a clock with timers. It imports no NATS client code
//     beyond the nats.Header type of Call.
//   - The runtimes: hostRuntime (runtime_host.go) over NATS, and
//     memRuntime (sandbox.go) in memory, which the runtime tests
//     (runtime_test.go: no server, no sleeps) and package actortest use
//     with a clock moved by hand (clock_manual.go).
//   - Roles of their own: the fence (fence.go: epochs, the lease, saves in
//     flight), the state store (state.go: compare-and-set, recognising a
//     write that landed unanswered, OUTCOME_UNKNOWN; tested without a
//     host), the activation directory (directory.go), the idle sweeper
//     (idle.go, on the clock's timer), running work (inflight.go), and the
//     reply batcher (replies.go).
//   - The edges on *Host: start and shutdown (host.go), taking requests
//     (intake.go, serve.go, gateway.go, oneway.go), following gateway calls
//     to their owners (forward.go, probe.go), handoff and the lease
//     (handoff.go),
//     reminders (reminders.go), operations (admin.go, discovery.go,
//     metrics*.go, observe.go).
//   - Worker types (worker.go): a type registered with RegisterWorker is an
//     ordinary type whose Actor sends each turn to a worker in another
//     language over NATS and applies its answer (PROTOCOL.md, docs/workers.md).
//
// Handoff, the release records and the table follower stay on *Host: they
// are the host's side of the membership protocol, and each step needs the
// watcher, the lease and the directory together; a type of their own would
// only hand those back through callbacks.
package host
