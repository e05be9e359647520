package host

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// sandbox runs actor types in memory: the turn engine over memRuntime, on a
// clock moved by hand. It is the runtime tests' host and the core of
// package actortest. Calls run the same turns a host runs — mailbox order,
// activation, the discard rules, save before reply, timers, idle
// collection, reentrancy — with the state in a map and no NATS.
type sandbox struct {
	cfg     Config
	eng     *engine
	rt      *memRuntime
	clock   *manualClock
	types   catalog
	sweeper *sweeper
}

// sandboxMaxPayload is the reply and state limit a sandbox enforces: the
// NATS server's default max_payload.
const sandboxMaxPayload = 1 << 20

func newSandbox(cfg Config, start time.Time) *sandbox {
	cfg = cfg.withDefaults()
	s := &sandbox{cfg: cfg, clock: newManualClock(start), types: make(catalog)}
	s.rt = &memRuntime{s: s, entries: make(map[string]stateEntry), waiting: make(map[*envelope]chan *nats.Msg)}
	s.eng = &engine{
		rt:           s.rt,
		clock:        s.clock,
		host:         cfg.ID,
		log:          cfg.Logger.With("host", string(cfg.ID)),
		callTimeout:  cfg.CallTimeout,
		saveTimeout:  cfg.SaveTimeout,
		onActivation: cfg.OnActivation,
	}
	return s
}

// register adds an actor type; the first call starts idle collection.
func (s *sandbox) register(typ placement.ActorType, factory Factory, opts []TypeOption) error {
	t, err := newActorType(s.cfg, s.types, typ, factory, opts)
	if err != nil {
		return err
	}
	s.types[typ] = t
	s.sweeper.stop()
	s.sweeper = startSweeper(s.types, s.clock)
	return nil
}

// call runs one call to (typ, id) and returns its reply, or the
// *protocol.Error a caller over NATS would get.
func (s *sandbox) call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error) {
	done, err := s.start(ctx, typ, id, method, payload, hdr)
	if err != nil {
		return nil, err
	}
	select {
	case reply := <-done:
		return replyOf(reply)
	case <-ctx.Done():
		return nil, protocol.AsError(ctx.Err())
	}
}

// start admits a call and returns where its reply will arrive: the call is
// in the mailbox (or answered) when start returns.
func (s *sandbox) start(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) (<-chan *nats.Msg, error) {
	env, e := s.envelope(ctx, typ, id, method, payload, hdr)
	if e != nil {
		return nil, e
	}
	done := make(chan *nats.Msg, 1)
	s.rt.mu.Lock()
	s.rt.waiting[env] = done
	s.rt.mu.Unlock()
	s.admit(env)
	return done, nil
}

// send admits a one-way call: its outcome goes nowhere. It is in the
// mailbox (or dropped) when send returns.
func (s *sandbox) send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error {
	env, e := s.envelope(ctx, typ, id, method, payload, hdr)
	if e != nil {
		return e
	}
	env.msg.Reply = ""
	s.admit(env)
	return nil
}

// replyOf is a reply message as a caller sees it.
func replyOf(reply *nats.Msg) ([]byte, error) {
	if err := protocol.DecodeError(reply.Header, reply.Data); err != nil {
		return nil, err
	}
	return reply.Data, nil
}

// envelope makes a call's envelope, as Host.parse does for a request.
func (s *sandbox) envelope(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) (*envelope, *protocol.Error) {
	t, ok := s.types[typ]
	if !ok {
		return nil, protocol.Errorf(protocol.CodeNoHost, "no live host serves actor type %q (not registered)", typ)
	}
	if e := checkIdentity(id, method); e != nil {
		return nil, e
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(s.cfg.CallTimeout)
	}
	env := &envelope{kind: kindCall, msg: &nats.Msg{Reply: "sandbox", Data: payload, Header: hdr}, t: t, id: id, method: method, deadline: deadline}
	var e *protocol.Error
	if env.callID = hdr.Get(protocol.HeaderCallID); env.callID != "" {
		if e = checkCallID(env.callID); e != nil {
			return nil, e
		}
	}
	if env.chain, e = parseChain(hdr, s.cfg.MaxCallChainDepth); e != nil {
		return nil, e
	}
	return env, nil
}

// admit puts a call in its actor's mailbox, as Host.admit does for an actor
// the host owns.
func (s *sandbox) admit(env *envelope) { deliver(s.eng, env, nil) }

// activation returns the activation of (typ, id), or nil.
func (s *sandbox) activation(typ placement.ActorType, id placement.ActorID) *activation {
	t, ok := s.types[typ]
	if !ok {
		return nil
	}
	return t.dir.get(id)
}

// deactivate deactivates (typ, id) after its queued turns, as the idle
// collector or a table change would, and waits until it has ended.
func (s *sandbox) deactivate(typ placement.ActorType, id placement.ActorID) {
	if a := s.activation(typ, id); a != nil {
		a.deactivate()
		<-a.closedChan()
	}
}

// advance moves the clock by d: timers fall due and idle actors are
// deactivated, each in time order, and advance returns once the turns they
// started have ended.
func (s *sandbox) advance(d time.Duration) { s.clock.Advance(d, s.settle) }

// settle waits until no turn is running.
func (s *sandbox) settle() { <-s.eng.turns.idle() }

// close deactivates every activation and stops idle collection.
func (s *sandbox) close() {
	s.eng.closing.Store(true)
	s.sweeper.stop()
	s.types.each((*activation).deactivate)
	s.settle()
}

// memRuntime is the turn engine's runtime in memory: state entries in a map
// with compare-and-set revisions, a fence the tests open and close, and
// outcomes delivered to the waiting sandbox calls.
type memRuntime struct {
	s      *sandbox
	fenced atomic.Bool // the fence is closed: no turn starts, no save lands
	r      atomic.Pointer[router.Router]

	mu      sync.Mutex
	entries map[string]stateEntry
	seq     uint64
	waiting map[*envelope]chan *nats.Msg
	// failSave, if set, is asked before each save; an error fails it.
	failSave func(key string) error
}

func (m *memRuntime) epoch() epoch        { return 0 }
func (m *memRuntime) mayAct(e epoch) bool { return !m.fenced.Load() }

func (m *memRuntime) errFenced() *protocol.Error { return errFenced(m.s.cfg.ID) }

func (m *memRuntime) actedUntil(_ epoch, now time.Time) time.Time { return now }

// awaitActivation lets every activation start at once: in memory there is
// no other host that could still hold the actor.
func (m *memRuntime) awaitActivation(context.Context, placement.ActorType, placement.ActorID) error {
	return nil
}

func (m *memRuntime) placed() (string, uint64) { return "memory", 0 }

func (m *memRuntime) load(_ context.Context, key string) (stateEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[key], nil
}

func (m *memRuntime) save(_ epoch, key string, value []byte, hdr nats.Header, rev uint64) (uint64, error) {
	if m.fenced.Load() {
		return 0, m.errFenced()
	}
	m.mu.Lock()
	fail := m.failSave
	m.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return 0, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries[key].rev != rev {
		return 0, protocol.Errorf(protocol.CodeStateConflict, "state of %s changed under this activation; the turn was discarded", key)
	}
	m.seq++
	m.entries[key] = stateEntry{rev: m.seq, data: value, hdr: hdr}
	return m.seq, nil
}

func (m *memRuntime) maxPayload() int64 { return sandboxMaxPayload }

func (m *memRuntime) respond(env *envelope, reply *nats.Msg) {
	m.mu.Lock()
	done := m.waiting[env]
	delete(m.waiting, env)
	m.mu.Unlock()
	if done != nil {
		done <- reply
	}
}

func (m *memRuntime) reject(env *envelope, e *protocol.Error) { m.respond(env, errorReply(e)) }
func (m *memRuntime) readmit(env *envelope)                   { m.s.admit(env) }
func (m *memRuntime) router() *router.Router                  { return m.r.Load() }

// setFailSave sets failSave.
func (m *memRuntime) setFailSave(f func(key string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failSave = f
}

// entry returns the stored entry of key.
func (m *memRuntime) entry(key string) stateEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[key]
}
