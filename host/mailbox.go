package host

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// smallQueue is the mailbox capacity an idle activation keeps.
const smallQueue = 2

// activation is one live actor on this host: its mailbox and, once the first
// turn has run, its Actor and state.
//
// The mailbox fields are guarded by mu. A goroutine runs the mailbox only
// while it holds calls (running); an idle activation holds no goroutine. The
// remaining fields belong to that goroutine.
//
// A host may hold millions of idle activations, so the struct keeps only
// what every activation uses (160 bytes); what few use is in rare, made on
// first use. BenchmarkActivation measures the whole cost per actor.
type activation struct {
	e     *engine
	t     *actorType
	id    placement.ActorID
	epoch epoch // the host incarnation the activation belongs to
	rare  atomic.Pointer[rare]

	mu       sync.Mutex
	queue    []*envelope
	head     int
	lastUsed int64 // unix nanoseconds of the end of the last turn (Clock)

	// Owned by the goroutine running the mailbox.
	self  Self
	actor Actor
	state []byte
	rev   uint64

	// Guarded by mu.
	running      bool
	deactivating bool
	closed       bool
	// Owned by the goroutine running the mailbox.
	activated  bool
	discard    bool // in-memory state may differ from the store: drop without saving
	dirty      bool // the state in memory differs from the store
	changed    bool // the running turn changed the state (group.go)
	keysShared bool // the named keys were handed to the saver: copy before writing
}

// rare is what most activations never use, made on first use by extra.
// Each field keeps the owner it would have in activation.
type rare struct {
	// Guarded by the activation's mu.
	closedCh chan struct{} // made on demand by closedChan
	chain    string        // the call chain holding the running turn (chain.go)
	nested   *nestedTurns  // nested turns running inside it; nil when none
	gate     *outputGate   // the output gate while saves are pipelined (group.go)

	// Owned by the goroutine running the mailbox.
	keys   map[string][]byte // named state keys; nil if it never had any (statekeys.go)
	cursor cursors           // stream cursors; nil if it never consumed a stream (streams.go)
	timers *timerSet         // nil until the actor sets a timer
	calls  *callWindow       // recorded idempotent calls; nil when none (calls.go)
	// For ActivationRecord, set when activated, if Config.OnActivation is.
	incarnation string
	gen         uint64
	started     time.Time
}

// extra returns the activation's rare fields, making them if need be.
func (a *activation) extra() *rare {
	if r := a.rare.Load(); r != nil {
		return r
	}
	a.rare.CompareAndSwap(nil, new(rare))
	return a.rare.Load()
}

// keys is the actor's named state keys, nil if it never had any.
func (a *activation) keys() map[string][]byte {
	if r := a.rare.Load(); r != nil {
		return r.keys
	}
	return nil
}

// setKeys replaces the named state keys.
func (a *activation) setKeys(keys map[string][]byte) {
	if keys != nil || a.rare.Load() != nil {
		a.extra().keys = keys
	}
}

// chainHeld is the call chain holding the running turn, "" when none.
// Call with mu held.
func (a *activation) chainHeld() string {
	if r := a.rare.Load(); r != nil {
		return r.chain
	}
	return ""
}

func newActivation(e *engine, t *actorType, id placement.ActorID) *activation {
	a := &activation{e: e, t: t, id: id, epoch: e.rt.epoch(), lastUsed: e.clock.Now().UnixNano()}
	a.self.a = a
	return a
}

// enqueue adds a call to the mailbox and starts the mailbox if it was idle.
func (a *activation) enqueue(env *envelope) error { return a.enqueueFrom(env, nil) }

// enqueueFrom is enqueue on the intake's reader (intake.go): a mailbox it
// may run itself goes to slot instead of a goroutine of its own.
func (a *activation) enqueueFrom(env *envelope, slot *inlineSlot) error {
	a.mu.Lock()
	switch {
	case a.closed:
		a.mu.Unlock()
		return errClosed
	case env.kind < kindDeactivate && len(a.queue)-a.head >= a.t.mailbox:
		a.mu.Unlock()
		return errBusy
	}
	a.queue = append(a.queue, env)
	if slot != nil && slot.ok && !a.running && a.activated && a.t.stateless {
		// The intake's reader runs the mailbox (intake.go). a.activated
		// belongs to the mailbox goroutine, which last ran before it set
		// running to false under a.mu.
		a.running = true
		a.mu.Unlock()
		a.e.turns.add()
		slot.next = a
		return nil
	}
	a.startLocked()
	return nil
}

// pushFront puts an order to deactivate ahead of the queued calls, behind
// the running turn only.
func (a *activation) pushFront(env *envelope) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.deactivating = true
	if a.head > 0 {
		a.head--
		a.queue[a.head] = env
	} else {
		a.queue = append([]*envelope{env}, a.queue...)
	}
	a.startLocked()
}

// startLocked starts the mailbox goroutine if it is idle, and unlocks a.mu.
func (a *activation) startLocked() {
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		a.e.turns.add()
		go a.run()
	}
}

// moveAway ends the activation because the table gave the actor to another
// host: after the running turn, it deactivates (hook and save); the calls
// queued behind are answered MOVED.
func (a *activation) moveAway() { a.pushFront(&envelope{kind: kindDeactivate}) }

// drop ends the activation of a host that lost its lease: after the running
// turn (which the fence keeps from saving), without the hook or a save.
func (a *activation) drop() { a.pushFront(&envelope{kind: kindDrop}) }

// closedChan returns a channel closed once the activation has ended.
func (a *activation) closedChan() <-chan struct{} {
	r := a.extra()
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.closedCh == nil {
		r.closedCh = make(chan struct{})
		if a.closed {
			close(r.closedCh)
		}
	}
	return r.closedCh
}

// deactivate queues the activation's last turn behind the calls already in
// its mailbox. Calls that arrive after it are admitted again once it is done.
func (a *activation) deactivate() {
	a.mu.Lock()
	if a.deactivating || a.closed {
		a.mu.Unlock()
		return
	}
	a.deactivating = true
	a.mu.Unlock()
	_ = a.enqueue(&envelope{kind: kindDeactivate})
}

// idleSince reports whether the activation has been idle since before
// cutoff (unix nanoseconds).
func (a *activation) idleSince(cutoff int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.running && !a.deactivating && !a.closed && a.lastUsed < cutoff
}

// run is the mailbox goroutine: it runs queued turns in order until the
// mailbox is empty or the activation ends. Their saves go through the
// output gate (group.go): a turn with calls queued behind it hands its state
// to the saver and the next turn runs at once.
func (a *activation) run() { a.runOn(nil, 0) }

// runOn is run on the intake's reader when in is set (intake.go): the
// turns' contexts hand the reader's role on, for the inline run that
// started at start, when they wait.
func (a *activation) runOn(in *intake, start int64) {
	defer a.e.turns.done()
	for {
		if err := a.waitForRoom(); err != nil {
			a.end(false) // a save failed: what is queued goes to a new activation
			return
		}
		env := a.next()
		if env == nil {
			return
		}
		env.ctx.reader, env.ctx.readerRun = in, start
		switch env.kind {
		case kindDeactivate, kindDrop:
			a.end(env.kind == kindDeactivate)
			return
		}
		a.groupTurn(env)
		if a.discard {
			a.end(false)
			return
		}
	}
}

// end closes the activation once its saver has stored what it was handed:
// gracefully (the Deactivate hook and a save) if asked and nothing failed.
func (a *activation) end(graceful bool) {
	if err := a.drain(); err != nil {
		a.discard = true
	}
	a.close(graceful && !a.discard)
}

// next takes the next envelope, or marks the mailbox idle and returns nil.
func (a *activation) next() *envelope {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.head == len(a.queue) {
		// Keep a small queue for the next call (one allocation fewer per
		// call); let a burst's large one go.
		if cap(a.queue) > smallQueue {
			a.queue = nil
		}
		a.queue, a.head, a.running = a.queue[:0], 0, false
		return nil
	}
	env := a.queue[a.head]
	a.queue[a.head] = nil
	a.head++
	return env
}

// touch records the end of a turn for idle deactivation. It happens before
// the turn's reply is sent, so a caller that has its reply knows the actor's
// idle time starts no later than that.
func (a *activation) touch() {
	now := a.e.clock.Now().UnixNano()
	a.mu.Lock()
	a.lastUsed = now
	a.mu.Unlock()
}

// close ends the activation: with graceful set it runs the Deactivate hook
// and saves, then it leaves the directory and re-admits calls that arrived
// after the order to deactivate (to a new activation, or MOVED).
func (a *activation) close(graceful bool) {
	a.stopTimers()
	if graceful && a.activated && a.e.rt.mayAct(a.epoch) {
		a.finalTurn()
	}
	a.t.dir.remove(a.id, a)
	if a.activated {
		a.e.record(a, a.e.rt.actedUntil(a.epoch, time.Now()))
		a.e.obs.deactivated(a.t.name)
	}
	a.mu.Lock()
	a.closed = true
	if r := a.rare.Load(); r != nil && r.closedCh != nil {
		close(r.closedCh)
	}
	left := a.queue[a.head:]
	a.queue, a.head, a.running = nil, 0, false
	a.mu.Unlock()
	for _, env := range left {
		switch env.kind {
		case kindPosted:
			env.posted.done(false)
		case kindCall:
			a.e.rt.readmit(env)
		}
	}
}

// deliver puts a call in its actor's mailbox on e, activating the actor if
// it is not active: a nested turn when the call re-enters the turn its chain
// holds (chain.go), BUSY when the mailbox is full. slot is the intake's, when
// the intake's reader delivers it (enqueueFrom).
func deliver(e *engine, env *envelope, slot *inlineSlot) {
	for {
		a := env.t.dir.getOrCreate(e, env.t, env.id)
		if a.enterChain(env) {
			return
		}
		switch err := a.enqueueFrom(env, slot); err {
		case nil:
			return
		case errBusy:
			e.rt.reject(env, protocol.Errorf(protocol.CodeBusy, "mailbox of %s %s is full (%d calls waiting)", env.t.name, protocol.EncodeID(string(env.id)), env.t.mailbox))
			return
		}
		// The activation closed between lookup and enqueue: take a new one.
	}
}

// post queues a posted turn in the mailbox, to start before deadline. It
// fails with errBusy when the mailbox is full and errClosed when the
// activation has ended.
func (a *activation) post(p *postedTurn, deadline time.Time) error {
	return a.enqueue(&envelope{kind: kindPosted, t: a.t, id: a.id, deadline: deadline, posted: p})
}
