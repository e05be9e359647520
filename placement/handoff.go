package placement

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// historyLen is how many recent tables a watcher keeps to decide handoffs
// without waiting for every member. Older tables are not needed once every
// member has released past them.
const historyLen = 64

// ReleaseKey is protocol.ReleaseKey: the key of a host's release record.
func ReleaseKey(id HostID) string { return protocol.ReleaseKey(id) }

// Release records that the host (id, incarnation) has deactivated every actor
// it does not own in the table of generation gen. It is one write per host
// per table change that took actors from it (Watcher.ReleaseImplied says
// when a host may skip it); the record expires after ttl (use the bucket's marker
// TTL), by which time every watcher has long applied it; what it said stays
// true after it expires.
func Release(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, id HostID, incarnation string, gen uint64, ttl time.Duration) error {
	data, err := proto.Marshal(&pb.ReleaseRecord{HostId: string(id), Incarnation: incarnation, Generation: gen})
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, protocol.KVSubject(kv.Bucket(), ReleaseKey(id)), data, jetstream.WithMsgTTL(ttl)); err != nil {
		return fmt.Errorf("placement: release at generation %d: %w", gen, err)
	}
	return nil
}

// handoff is the pure rule that decides when a host may activate an actor it
// gained: only when no other member can still hold it.
//
// A member m that released at generation r holds no actor it does not own in
// the table of generation r, and it activates an actor at a later table only
// once that rule lets it. So m can hold actor a only if m owned a in some
// table from r's to the current one. If no member could, a is free to take.
// When every member has released at the current generation (the table is
// settled) that holds for every actor at once; otherwise the recent tables
// answer it per actor, and an actor whose history reaches further back than
// the tables kept must wait.
type handoff struct {
	// released is the generation each member has released at, counting only
	// records from the member's current incarnation. Change it with
	// setReleased or resetReleased, which keep unreleased.
	released map[HostID]uint64
	// bound is, for each member of the current table, the generation from
	// which a release implies a release at the current one (see
	// releaseBounds); nil when unknown, which implies nothing.
	bound map[HostID]uint64
	// unreleased counts the members of the current table that have not
	// released at its generation.
	unreleased int
	// history holds recent tables in ascending generation order; the last
	// one is the current table.
	history []*Table
}

// memberRevs is what the watcher knows of a member's record: the revision
// at which its incarnation joined, and the one at which its record last
// changed meaning (for a draining member, its drain).
type memberRevs struct{ since, changed uint64 }

// releaseBounds returns, for each member m of t, the lowest generation r
// such that m's release at r implies its release at t's generation: the
// changes between r and t took nothing from m, so m holds nothing t does
// not give it. A record keeps its incarnation's subject and types, and its
// state only goes from active to draining (PROTOCOL.md, "Membership
// bucket"), which makes the bound:
//
//   - for an active member, the latest join among the active members that
//     serve one of its types (itself included). Every candidate of m's
//     types in t was a candidate in every table from r on, so each table in
//     between gave m all it gives m in t, and t gives m everything those
//     tables did: what m may hold (what it owned at r, and whatever it
//     activated later) is m's in t. A host that joined after r and left
//     again took actors from m for a while, but t gives them back;
//   - for a draining member, its drain: draining since r, it owned nothing
//     from r on.
//
// So a change that adds no candidate to a host's types (a drain, a
// departure, a join of other types) implies every other host's release, and
// a host writes its release only when a change took actors from it.
// O(members × types).
func releaseBounds(t *Table, revs map[HostID]memberRevs) map[HostID]uint64 {
	if revs == nil {
		return nil
	}
	latest := make(map[ActorType]uint64, len(t.byType))
	for typ, th := range t.byType {
		for _, c := range th.cands {
			latest[typ] = max(latest[typ], revs[c.m.ID].since)
		}
	}
	bound := make(map[HostID]uint64, len(t.members))
	for _, m := range t.members {
		r := revs[m.ID]
		if m.Draining {
			bound[m.ID] = r.changed
			continue
		}
		b := r.since
		for _, typ := range m.Types {
			b = max(b, latest[typ])
		}
		bound[m.ID] = b
	}
	return bound
}

// settled reports whether every member of the current table has released
// at its generation.
func (h *handoff) settled() bool { return h.current() != nil && h.unreleased == 0 }

// setReleased records that member id has released at gen (or, with ok
// false, at no generation of its current incarnation), in O(1).
func (h *handoff) setReleased(id HostID, gen uint64, ok bool) {
	if h.released == nil {
		h.released = make(map[HostID]uint64)
	}
	was := h.isReleased(id)
	if ok {
		h.released[id] = gen
	} else {
		delete(h.released, id)
	}
	if cur := h.current(); cur != nil {
		if _, member := cur.Member(id); member {
			switch now := h.isReleased(id); {
			case was && !now:
				h.unreleased++
			case !was && now:
				h.unreleased--
			}
		}
	}
}

// resetReleased replaces every member's release generation.
func (h *handoff) resetReleased(released map[HostID]uint64) {
	h.released = released
	h.recount()
}

// releasedAt is the generation id has released at, as far as the current
// table tells: its own release, or the current generation when that release
// implies it (releaseBounds). 0 when it has not released.
func (h *handoff) releasedAt(id HostID) uint64 {
	r, ok := h.released[id]
	if !ok {
		return 0
	}
	if cur := h.current(); cur != nil && r < cur.Generation() && h.implied(id, r) {
		return cur.Generation()
	}
	return r
}

// isReleased reports whether id has released at the current generation.
func (h *handoff) isReleased(id HostID) bool {
	cur := h.current()
	return cur != nil && h.releasedAt(id) >= cur.Generation()
}

// recount counts the current table's unreleased members afresh: once per
// table, not per entry.
func (h *handoff) recount() {
	h.unreleased = 0
	for _, m := range h.current().Members() {
		if !h.isReleased(m.ID) {
			h.unreleased++
		}
	}
}

func (h *handoff) current() *Table {
	if len(h.history) == 0 {
		return nil
	}
	return h.history[len(h.history)-1]
}

// mayActivate reports whether self may activate (typ, id) now. The caller
// has checked that self owns it in the current table.
//
// Only the actor's owners in the kept tables can hold it, so the check looks
// up those (one owner per table) instead of asking, for every member that
// has not released, whether it owned the actor: O(tables × candidates)
// rather than O(members × tables × candidates).
func (h *handoff) mayActivate(self HostID, typ ActorType, id ActorID) bool {
	cur := h.current()
	oldest := h.history[0].Generation()
	if h.unreleased > 0 {
		for _, m := range cur.Members() {
			if r := h.releasedAt(m.ID); m.ID != self && r < cur.Generation() && r < oldest {
				return false // it released before the oldest table kept, or never: it may hold anything
			}
		}
	}
	for i, t := range h.history {
		o, ok := t.Owner(typ, id)
		if !ok || o.ID == self {
			continue
		}
		r, member := h.releasedAt(o.ID), false
		if _, member = cur.Member(o.ID); !member || r >= cur.Generation() {
			continue // gone (it held nothing), or released at the current table
		}
		// o owned the actor in table i: it may still hold it if table i is
		// the one in effect at its release r or a later one.
		if i == len(h.history)-1 || h.history[i+1].Generation() > r {
			return false
		}
	}
	return true
}

// trim drops the tables before the one in effect at generation s, once
// every member of the current table has released at s or joined after it
// (the settled record of s says so). Such tables decide nothing: mayActivate
// skips a table i when its owner released at a generation no earlier than
// table i+1's, which s is; and an owner whose incarnation joined after s
// cannot hold what a table before its join gave to an incarnation of the
// same id, which was dead before the new one could join.
func (h *handoff) trim(s uint64) {
	k := 0
	for i, t := range h.history {
		if t.Generation() <= s {
			k = i
		}
	}
	if k > 0 {
		h.history = append(h.history[:0:0], h.history[k:]...)
	}
}

// push appends a new current table, dropping the oldest beyond historyLen.
// revs, when not nil, holds every member's revisions (releaseBounds).
func (h *handoff) push(t *Table, revs map[HostID]memberRevs) {
	if len(h.history) == historyLen {
		copy(h.history, h.history[1:])
		h.history = h.history[:historyLen-1]
	}
	h.history = append(h.history, t)
	h.bound = releaseBounds(t, revs)
	h.recount()
}

// implied reports whether a release of id at gen implies its release at the
// current generation.
func (h *handoff) implied(id HostID, gen uint64) bool {
	b, known := h.bound[id]
	return known && b > 0 && gen >= b
}
