package host

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
)

// Group commit: the output gate.
//
// A turn that changes the state, with nothing else going on, saves at its
// end and then replies, as always. But when calls are queued behind it, or a
// save is already in flight, the activation does not wait: the turn's state
// (the bytes and named keys as they are after it) is handed to the
// activation's saver, its reply is held, and the next turn runs at once on
// the state in memory. The saver sends one compare-and-set save at a time;
// each covers every turn that ended while the one before it was in flight,
// and when it is acknowledged their held replies leave together. A busy
// actor thus pays one save per round trip to the store, not one per call.
//
// This is the output gate of Cloudflare's Durable Objects:
//
//   - No reply reports state that is not stored. A turn that changes
//     nothing, but ran on state not yet stored, holds its reply until the
//     save that covers that state is acknowledged; on stored state it
//     replies at once.
//   - A held reply waits for a save only, never for later turns: the saver
//     works beside the mailbox, so a turn that calls out or runs long does
//     not delay the replies of the turns before it.
//   - A failed save fails every call it covered, and every call whose turn
//     ran after it, each with the save's error (UNAVAILABLE, STATE_CONFLICT,
//     STATE_TOO_LARGE, OUTCOME_UNKNOWN), exactly what the turn would have got
//     saving alone; the activation is discarded and the calls still queued
//     run on a new one, which reads the store.
//   - A turn that fails after changing the state discards the activation as
//     always; its changes were never handed to the saver, so the turns
//     before it are saved without them.
//
// A snapshot costs nothing to take: SetState replaces the state's bytes
// (callers must not modify them) and the named keys are copied on the next
// write after a snapshot shares them (statekeys.go). GroupCommit bounds the
// turns one save covers: a turn waits to start while the next save already
// covers that many. Nested turns (chain.go) wait for the saver and then save
// themselves, covering everything before them, since their caller is the
// waiting turn. Posted turns (timer ticks) join like calls, with no reply.

// DefaultGroupCommit is the most turns one save covers, unless a type says
// otherwise with the GroupCommit option.
const DefaultGroupCommit = 64

// outputGate is an activation's output gate, in its rare part: what its saver
// has to save and the replies that wait for it. Guarded by the activation's
// mu.
type outputGate struct {
	saving  bool          // the saver goroutine runs
	pending *pendingSave  // state after the latest turns, for the next save
	sent    []heldReply   // replies waiting for the save in flight
	err     error         // a save failed: the activation is to be discarded
	wake    chan struct{} // closed when the saver takes pending or stops; made on demand
}

// pendingSave is the state after the latest turns, not yet sent.
type pendingSave struct {
	state   []byte
	keys    map[string][]byte
	calls   []byte  // the call window after them, encoded (calls.go)
	streams cursors // never modified: a turn that advances one replaces it (streams.go)
	turns   int     // turns it covers
	replies []heldReply
}

// heldReply is a call's outcome waiting for its save.
type heldReply struct {
	env   *envelope
	reply *nats.Msg
	start time.Time // when its turn started, for the metrics
}

// groupTurn runs a call's or a posted turn and sends its outcome through
// the gate.
func (a *activation) groupTurn(env *envelope) {
	a.changed = false
	if env.kind == kindPosted {
		_, err := a.runTurn(env)
		a.endPosted(env, err)
		a.pass(nil)
		return
	}
	start := a.e.obs.turnStart(env)
	reply, err := a.runTurn(env)
	a.pass(&heldReply{env: env, reply: env.replyMsg(reply, err), start: start})
}

// pass sends a turn's outcome: at once, after saving, or held in the gate.
// h is nil for a posted turn.
func (a *activation) pass(h *heldReply) {
	if a.t.stateless || a.discard {
		// Nothing to save: a type without state never has a gate, and a
		// turn that discards the activation has its error as its outcome,
		// its changes not to be saved.
		a.dirty = false
		a.respond(h, nil)
		return
	}
	a.mu.Lock()
	r := a.rare.Load()
	var g *outputGate
	if r != nil {
		g = r.gate
	}
	switch {
	case g != nil && g.err != nil:
		err := g.err
		a.mu.Unlock()
		a.discard = true
		a.respond(h, err)
	case a.dirty && (a.head < len(a.queue) || g != nil && g.saving):
		// Calls wait behind this turn, or a save is in flight: hand the
		// state to the saver and go on.
		if g == nil {
			g = &outputGate{}
			a.extra().gate = g
		}
		p := g.pending
		if p == nil {
			p = &pendingSave{}
			g.pending = p
		}
		p.state, p.keys, p.calls, p.streams, p.turns = a.state, a.keys(), a.window().snapshot(), a.cursors(), p.turns+1
		a.keysShared = p.keys != nil
		if h != nil {
			p.replies = append(p.replies, *h)
		}
		a.dirty = false
		start := !g.saving
		g.saving = true
		a.mu.Unlock()
		if start {
			a.e.turns.add()
			go a.saver(g)
		}
	case a.dirty:
		a.mu.Unlock()
		err := a.save()
		if err != nil {
			a.discard = true
			if h == nil {
				a.e.log.Warn("state not saved", "type", a.t.name, "id", protocol.EncodeID(string(a.id)), "err", err)
			}
		}
		a.respond(h, err)
	case g != nil && g.pending != nil:
		// The turn read state that is not sent yet.
		if h != nil {
			g.pending.replies = append(g.pending.replies, *h)
		}
		g.pending.turns++
		a.mu.Unlock()
	case g != nil && g.saving:
		// The turn read the state being saved.
		if h != nil {
			g.sent = append(g.sent, *h)
		}
		a.mu.Unlock()
	default:
		a.mu.Unlock()
		a.respond(h, nil)
	}
}

// respond sends a held reply, with err in place of a success when the save
// that was to cover it failed.
func (a *activation) respond(h *heldReply, err error) {
	if h == nil {
		return
	}
	if err != nil && h.reply.Header == nil {
		h.reply = errorReply(protocol.AsError(err)) // one each: respond addresses it
	}
	a.e.obs.turnEnd(h.env, h.reply, h.start)
	if h.env.kind == kindCall {
		a.t.counters.count(h.reply)
		a.touch()
	}
	a.e.rt.respond(h.env, h.reply)
}

// saver sends the gate's pending state, one save at a time, until nothing
// is pending, and releases the replies each save covers. After a failed
// save it fails everything pending and stops; the mailbox discards the
// activation.
func (a *activation) saver(g *outputGate) {
	defer a.e.turns.done()
	for {
		a.mu.Lock()
		p := g.pending
		g.pending = nil
		if p == nil || g.err != nil {
			// Replies held since the last save was taken (turns that
			// read its state) go now: that state is stored, or the
			// save failed with g.err.
			out, err := g.sent, g.err
			g.sent = nil
			g.saving = false
			g.wakeLocked()
			a.mu.Unlock()
			for i := range out {
				a.respond(&out[i], err)
			}
			return
		}
		g.sent = append(g.sent, p.replies...)
		g.wakeLocked()
		a.mu.Unlock()

		rev, err := a.store(p.state, p.keys, p.calls, p.streams)

		a.mu.Lock()
		out := g.sent
		g.sent = nil
		if err != nil {
			g.err = err
			if g.pending != nil {
				out = append(out, g.pending.replies...)
				g.pending = nil
			}
		} else {
			a.rev = rev
		}
		a.mu.Unlock()
		for i := range out {
			a.respond(&out[i], err)
		}
	}
}

// wakeLocked wakes the goroutines waiting for the saver.
func (g *outputGate) wakeLocked() {
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
}

// waitLocked waits, with a.mu held, until the saver changes state.
func (a *activation) waitLocked(g *outputGate) {
	if g.wake == nil {
		g.wake = make(chan struct{})
	}
	ch := g.wake
	a.mu.Unlock()
	<-ch
	a.mu.Lock()
}

// waitForRoom holds the next turn while the pending save already covers the
// type's bound of turns, and reports a failed save.
func (a *activation) waitForRoom() error {
	r := a.rare.Load()
	if r == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	g := r.gate
	for g != nil && g.err == nil && g.pending != nil && g.pending.turns >= a.t.group {
		a.waitLocked(g)
	}
	if g != nil {
		return g.err
	}
	return nil
}

// drain waits until the saver has stopped: every state handed to it is
// stored, or a save failed (its error). Then the caller may save itself.
func (a *activation) drain() error {
	r := a.rare.Load()
	if r == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	g := r.gate
	for g != nil && g.saving {
		a.waitLocked(g)
	}
	if g == nil {
		return nil
	}
	r.gate = nil // a new gate for the next burst, if there is one
	return g.err
}
