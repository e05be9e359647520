package host

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
)

// Group commit.
//
// An activation does not save after every turn. Turns that find calls
// waiting behind them run one after another on the state in memory, and one
// compare-and-set save covers them all: the one after the last of them, when
// the mailbox has nothing more queued, when the type's bound on turns per
// save (GroupCommit) is reached, or before the activation ends. A busy actor
// thus pays one save per burst of calls instead of one per call.
//
// What makes it safe is an output gate, as in Cloudflare's Durable Objects:
// while the state in memory differs from the store, every outcome a turn
// produces is held, and the held replies leave together once the save that
// covers them is acknowledged. No reply ever reports state that is not
// stored. When that save fails, the activation is discarded and every held
// call gets the save's error (UNAVAILABLE, STATE_CONFLICT, STATE_TOO_LARGE
// or OUTCOME_UNKNOWN), exactly the error a turn saved on its own would
// have got: none of their changes is stored.
//
// A turn that changes nothing replies at once when the state is clean (no
// earlier turn left changes unsaved); behind unsaved changes it may have
// read, its reply waits for their save, and no longer. A turn that fails
// after changing the state discards the activation as it always has; the
// turns before it in the group are saved first without its changes (from a
// snapshot taken as it started), and their callers get their replies.
//
// Nested turns (chain.go) save at their end as before, covering the group
// so far: their callers wait for them, so their replies cannot be held.
// Posted turns (timer ticks) join the group; they have no reply to hold.

// DefaultGroupCommit is the most turns one save covers, unless a type says
// otherwise with the GroupCommit option.
const DefaultGroupCommit = 64

// group is the turns an activation ran since its state was last stored,
// and the replies waiting for the save that covers them. It lives on the
// mailbox goroutine's stack, not in the activation.
type group struct {
	turns int          // turns run since the state was last clean
	held  []heldReply  // outcomes waiting for the save
	first [8]heldReply // backing for held, so a small group allocates nothing
}

// heldReply is a call's outcome waiting for its save.
type heldReply struct {
	env   *envelope
	reply *nats.Msg
	start time.Time // when its turn started, for the metrics
}

// snapshot is the state as a turn found it, to go back to if the turn
// fails after changing it.
type snapshot struct {
	taken bool
	state []byte
	keys  map[string][]byte
	rev   uint64
}

// take records the state before a turn, when earlier turns left changes
// unsaved (otherwise a failed turn simply discards the activation: the store
// holds the state as it was). The named keys are shared with the snapshot
// and copied on the turn's first write (statekeys.go).
func (s *snapshot) take(a *activation) {
	*s = snapshot{}
	if !a.dirty {
		a.keysShared = false
		return
	}
	*s = snapshot{taken: true, state: a.state, keys: a.keys(), rev: a.rev}
	a.keysShared = s.keys != nil
}

// restore puts the state back as the snapshot has it, if no save since
// changed its revision.
func (s *snapshot) restore(a *activation) bool {
	if !s.taken || a.rev != s.rev {
		return false
	}
	a.state, a.keysShared, a.dirty = s.state, false, true
	a.setKeys(s.keys)
	return true
}

// groupTurn runs a call's or a posted turn as part of the group, and
// releases the group when its state is clean after it, or when the turn
// discarded the activation.
func (a *activation) groupTurn(g *group, env *envelope) {
	var snap snapshot
	snap.take(a)
	a.changed = false
	start := a.e.obs.turnStart(env)
	reply, err := a.runTurn(env)
	g.turns++
	if a.discard {
		a.rescueGroup(g, &snap, err)
	}
	if env.kind == kindPosted {
		a.endPosted(env, err)
	} else {
		g.hold(env, env.replyMsg(reply, err), start)
	}
	if a.discard || !a.dirty || a.t.stateless {
		a.dirty = false
		a.releaseGroup(g, nil)
	}
}

// rescueGroup stores the turns before a turn that discarded the
// activation, without that turn's changes, and releases their replies.
func (a *activation) rescueGroup(g *group, snap *snapshot, cause error) {
	if !snap.taken {
		return // the state was clean as the turn started: nothing to rescue
	}
	var err error
	if snap.restore(a) {
		err = a.save()
		if errors.Is(cause, errDiscardedByNested) && errors.Is(err, protocol.ErrStateConflict) {
			// The nested turn's failed save may have landed after all.
			err = protocol.Errorf(protocol.CodeOutcomeUnknown, "a nested turn's save of this actor got no answer, and this turn's save met a newer state: the call may or may not have taken effect")
		}
	} // else a nested turn's save stored every turn before this one
	a.releaseGroup(g, err)
}

// commitGroup saves the group's changes and releases its replies; a failed
// save discards the activation and fails every held call.
func (a *activation) commitGroup(g *group) {
	err := a.save()
	if err != nil {
		a.discard = true
		if len(g.held) == 0 {
			a.e.log.Warn("state not saved", "type", a.t.name, "id", protocol.EncodeID(string(a.id)), "turns", g.turns, "err", err)
		}
	}
	a.releaseGroup(g, err)
}

// hold keeps a call's outcome until the group is released.
func (g *group) hold(env *envelope, reply *nats.Msg, start time.Time) {
	if g.held == nil {
		g.held = g.first[:0]
	}
	g.held = append(g.held, heldReply{env: env, reply: reply, start: start})
}

// releaseGroup sends the held replies, or err in place of each success
// when the save that was to cover them failed, and starts a new group.
func (a *activation) releaseGroup(g *group, err error) {
	for i := range g.held {
		h := &g.held[i]
		if err != nil && h.reply.Header == nil {
			h.reply = errorReply(protocol.AsError(err)) // one each: respond addresses it
		}
		a.e.obs.turnEnd(h.env, h.reply, h.start)
		if h.env.kind == kindCall {
			a.t.counters.count(h.reply)
			a.touch()
		}
		a.e.rt.respond(h.env, h.reply)
		*h = heldReply{}
	}
	g.held, g.turns = g.held[:0], 0
}

// open reports whether the group holds turns whose changes are unsaved.
func (g *group) open(a *activation) bool { return a.dirty && g.turns > 0 }
