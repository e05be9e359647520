package host

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Call chains and reentrancy.
//
// A call made from inside a turn (with the turn's ctx) carries the chain it
// belongs to: an id, made by the first actor in the chain that calls out,
// and the path of actors whose turns wait on the call (protocol.HeaderChain,
// protocol.HeaderChainPath). While a turn runs, its activation records the
// chain that holds it: the chain the turn's call arrived with, or the one
// the turn started by calling out.
//
// When a call arrives for an activation whose running turn is held by the
// call's own chain, and the call's path already lists that actor, the turn
// is waiting (directly or through other actors) for this very call: queued
// behind it, the call could never run. If the type is reentrant, the call
// runs at once as a nested turn, on its own goroutine, while the holder
// waits; otherwise it fails at once with CodeWouldDeadlock naming the
// cycle. Both facts are local to the callee's host, so the check is cheap
// and certain: a chain that passes through several hosts is judged where
// it comes back, and a path that lists the actor while its turn is free or
// held by another chain (the earlier turn ended) is queued as usual.
//
// A nested turn saves the activation's state at its end like any turn, so
// its reply is durable too; the waiting turn's changes made before it
// called out are saved with it. The waiting turn ends only after every
// nested turn it let in has ended.

// chainHeaders is what a request says about its call chain.
type chainHeaders struct {
	id   string         // "" when the call is not part of a chain
	path []protocol.Hop // the actors waiting on the call, outermost first
}

// parseChain reads a request's chain headers and checks its depth against
// max.
func parseChain(hdr nats.Header, max int) (chainHeaders, *protocol.Error) {
	id := hdr.Get(protocol.HeaderChain)
	if id == "" {
		return chainHeaders{}, nil
	}
	if err := protocol.ValidateChainID(id); err != nil {
		return chainHeaders{}, protocol.Errorf(protocol.CodeBadRequest, "malformed %s header: %v", protocol.HeaderChain, err)
	}
	path, err := protocol.ParsePath(hdr.Get(protocol.HeaderChainPath))
	if err != nil {
		return chainHeaders{}, protocol.Errorf(protocol.CodeBadRequest, "malformed %s header: %v", protocol.HeaderChainPath, err)
	}
	if len(path) >= max {
		return chainHeaders{}, protocol.Errorf(protocol.CodeChainTooDeep,
			"call chain %s already passes through %d actors (the limit is %d): %s", id, len(path), max, protocol.FormatPath(path))
	}
	return chainHeaders{id: id, path: path}, nil
}

// lists reports whether the path includes the actor hop.
func (c *chainHeaders) lists(hop protocol.Hop) bool {
	for _, h := range c.path {
		if h == hop {
			return true
		}
	}
	return false
}

// turnChain is a turn's router.ChainSource: calls made with the turn's ctx
// carry the turn's chain, with the actor appended to the path.
type turnChain struct {
	a     *activation
	env   *envelope
	out   router.Chain // made on the first call out; guarded by a.mu
	ended bool         // the turn is over; guarded by a.mu
	calls int          // calls out that took a derived call id; guarded by a.mu
}

// NextCallID is the call id of the turn's next call out: the turn's own
// call id (hashed when it is long) and the call's number in the turn, so
// that the turn, run again for a retry of its call, calls with the same
// ids, in the same order, and the actors it calls apply each once
// (calls.go). A turn without a call id gives "": a new random id.
func (c *turnChain) NextCallID() string {
	id := c.env.callID
	if id == "" {
		return ""
	}
	a := c.a
	a.mu.Lock()
	c.calls++
	n := c.calls
	a.mu.Unlock()
	if len(id) > protocol.MaxCallID-12 {
		sum := sha256.Sum256([]byte(id))
		id = base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	return id + "." + strconv.Itoa(n)
}

// CallChain returns the chain of calls made from the turn. A turn that
// arrived without a chain starts one here, and its activation becomes held
// by it.
func (c *turnChain) CallChain() router.Chain {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.out.ID == "" {
		id := c.env.chain.id
		if id == "" {
			id = protocol.NewChainID()
			if c.env.kind != kindNested && !c.ended { // a goroutine the turn left must not hold the next turn
				a.extra().chain = id
			}
		}
		path := make([]protocol.Hop, len(c.env.chain.path), len(c.env.chain.path)+1)
		copy(path, c.env.chain.path)
		c.out = router.Chain{ID: id, Path: append(path, protocol.Hop{Type: a.t.name, ID: a.id})}
	}
	return c.out
}

// nestedTurns counts the nested turns running inside an activation's turn.
type nestedTurns struct {
	n    int
	done chan struct{} // closed when n drops to 0
	// byID holds, per call id, the end of the latest nested turn with
	// that id: an attempt a caller sent again (its first ran longer than
	// the attempt's timeout) waits for the one before it and then finds
	// its recorded reply, instead of running beside it.
	byID map[string]chan struct{}
}

// holdChain records, at the start of a turn, the chain its call arrived
// with, and gives the turn's context its chain source.
func (a *activation) holdChain(env *envelope) {
	env.src = turnChain{a: a, env: env}
	env.ctx.src = &env.src
	if env.kind == kindNested || env.chain.id == "" {
		return
	}
	r := a.extra()
	a.mu.Lock()
	r.chain = env.chain.id
	a.mu.Unlock()
}

// releaseChain ends a turn's hold on its chain, once the nested turns it let
// in have ended.
func (a *activation) releaseChain(env *envelope) {
	a.mu.Lock()
	defer a.mu.Unlock()
	env.src.ended = true
	if env.kind == kindNested {
		return
	}
	r := a.rare.Load()
	if r == nil {
		return // no chain was held, and no nested turn let in
	}
	for r.nested != nil {
		done := r.nested.done
		a.mu.Unlock()
		<-done
		a.mu.Lock()
	}
	r.chain = ""
}

// enterChain handles a call that may belong to the chain holding the
// activation's turn. It reports false when the call is to be queued as
// usual; otherwise it has started a nested turn (reentrant types) or
// answered CodeWouldDeadlock.
func (a *activation) enterChain(env *envelope) bool {
	self := protocol.Hop{Type: a.t.name, ID: a.id}
	if env.chain.id == "" || !env.chain.lists(self) {
		return false
	}
	a.mu.Lock()
	held := a.running && !a.closed && a.chainHeld() == env.chain.id
	if held && a.t.reentrant {
		r := a.rare.Load() // made by the hold
		if r.nested == nil {
			r.nested = &nestedTurns{done: make(chan struct{})}
		}
		r.nested.n++
		if env.callID != "" {
			if r.nested.byID == nil {
				r.nested.byID = make(map[string]chan struct{})
			}
			env.after, env.ended = r.nested.byID[env.callID], make(chan struct{})
			r.nested.byID[env.callID] = env.ended
		}
	}
	a.mu.Unlock()
	switch {
	case !held:
		return false
	case !a.t.reentrant:
		a.e.rt.reject(env, protocol.Errorf(protocol.CodeWouldDeadlock,
			"call cycle %s: %s is busy with a turn that waits for this call, and type %q is not reentrant (host.Reentrant)",
			protocol.FormatCycle(env.chain.path, self), self, a.t.name))
		return true
	}
	env.kind = kindNested
	a.e.turns.add()
	go a.nestedTurn(env)
	return true
}

// nestedTurn runs a re-entering call while the turn holding its chain waits.
func (a *activation) nestedTurn(env *envelope) {
	defer a.e.turns.done()
	if env.after != nil {
		<-env.after
	}
	a.runNested(env)
	r := a.rare.Load()
	a.mu.Lock()
	if env.ended != nil {
		close(env.ended)
		if r.nested.byID[env.callID] == env.ended {
			delete(r.nested.byID, env.callID)
		}
	}
	if r.nested.n--; r.nested.n == 0 {
		close(r.nested.done)
		r.nested = nil
	}
	a.mu.Unlock()
}

// discardedByNested is the error of a turn whose nested turn failed with
// unsaved changes (or panicked): the activation is being discarded, and the
// turn must not save over what the store holds. It is not a code the router
// retries: the same calls would fail the same way until the deadline.
func discardedByNested() *protocol.Error {
	return protocol.Errorf(protocol.CodeInternal, "a nested turn of this actor failed and discarded the activation's changes; this turn was discarded too")
}
