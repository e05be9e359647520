package placement

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
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
	// snap is what mayActivate reads, lock-free: the tables, the bounds and
	// a release cell per member of the current table. The tables and the
	// maps are never modified once published; a table change, a trim or a
	// reset publishes a new snapshot (and calls onPublish, when set).
	*snap
	onPublish func(*snap)
	// released is the generation each member has released at, counting only
	// records from the member's current incarnation. Change it with
	// setReleased or resetReleased, which keep unreleased and the cells.
	released map[HostID]uint64
	// unreleased counts the members of the current table that have not
	// released at its generation.
	unreleased int
}

// snap is an immutable view of the handoff state, except for its release
// cells, which only ever say what a member's current incarnation did: a
// reader that sees one a moment late is merely more cautious.
type snap struct {
	// history holds recent tables in ascending generation order; the last
	// one is the current table.
	history []*Table
	// bound is, for each member of the current table (in the order of its
	// Members), the generation from which a release implies a release at
	// the current one (see releaseBounds); nil when unknown, which implies
	// nothing.
	bound []uint64
	// cells holds each current member's release generation, 0 for none, in
	// the order of the current table's Members. Slices rather than maps
	// keyed by id: a snapshot is built for every table change on every host.
	cells []atomic.Uint64
	// stale counts the members whose release is older than both the
	// current table and the oldest table kept: such a member may hold
	// anything.
	stale atomic.Int64
}

// memberRevs is what the watcher knows of a member's record: the revision
// at which its incarnation joined, and the one at which its record last
// changed meaning (for a draining member, its drain).
type memberRevs struct{ since, changed uint64 }

// releaseBounds returns, for each member m of t (in the order of
// t.Members, as revs is), the lowest generation r
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
func releaseBounds(t *Table, revs []memberRevs) []uint64 {
	if revs == nil {
		return nil
	}
	latest := make(map[ActorType]uint64, len(t.byType))
	for typ, th := range t.byType {
		var l uint64
		for _, c := range th.cands {
			l = max(l, revs[c.idx].since)
		}
		latest[typ] = l
	}
	bound := make([]uint64, len(t.members))
	for i, m := range t.members {
		if m.Draining {
			bound[i] = revs[i].changed
			continue
		}
		b := revs[i].since
		for _, typ := range m.Types {
			b = max(b, latest[typ])
		}
		bound[i] = b
	}
	return bound
}

// settled reports whether every member of the current table has released
// at its generation.
func (h *handoff) settled() bool { return h.current() != nil && h.unreleased == 0 }

// setReleased records that member id has released at gen (or, with ok
// false, at no generation of its current incarnation), in O(1). It reports
// whether that changed what the current table counts id as.
func (h *handoff) setReleased(id HostID, gen uint64, ok bool) bool {
	if h.released == nil {
		h.released = make(map[HostID]uint64)
	}
	if !ok {
		gen = 0
		delete(h.released, id)
	} else {
		h.released[id] = gen
	}
	i, member := h.index(id)
	if !member || h.cells[i].Load() == gen {
		return false
	}
	was, wasStale := h.counts(h.effective(i, h.cells[i].Load()))
	h.cells[i].Store(gen)
	now, nowStale := h.counts(h.effective(i, gen))
	switch {
	case was && !now:
		h.unreleased++
	case !was && now:
		h.unreleased--
	}
	switch {
	case wasStale && !nowStale:
		h.stale.Add(-1)
	case !wasStale && nowStale:
		h.stale.Add(1)
	}
	return true
}

// resetReleased replaces every member's release generation.
func (h *handoff) resetReleased(released map[HostID]uint64) {
	h.released = released
	if h.snap != nil {
		h.publish(h.history, h.bound, false, nil, 0)
	}
}

// publish makes a new snapshot of history and bound, with cells filled from
// h.released, and counts the current table's unreleased and stale members
// afresh: once per table, not per entry. With carry, h.released has changed
// since the last snapshot only through setReleased, which keeps that
// snapshot's cells equal to it for its members, and for the members in
// settled (sorted by ID), whose release it now says is at: the cells of the
// others are copied along the sorted member lists, and only members new to
// the table are looked up.
func (h *handoff) publish(history []*Table, bound []uint64, carry bool, settled []HostID, at uint64) {
	s := &snap{history: history, bound: bound}
	cur := s.current()
	s.cells = make([]atomic.Uint64, len(cur.Members()))
	var prev []Member
	var prevCells []atomic.Uint64
	if carry && h.snap != nil {
		prev, prevCells = h.snap.current().Members(), h.snap.cells
	}
	h.snap, h.unreleased = s, 0
	var stale int64
	j, k := 0, 0
	for i, m := range cur.Members() {
		for j < len(prev) && prev[j].ID < m.ID {
			j++
		}
		for k < len(settled) && settled[k] < m.ID {
			k++
		}
		var r uint64
		switch {
		case k < len(settled) && settled[k] == m.ID:
			r = at
		case j < len(prev) && prev[j].ID == m.ID:
			r = prevCells[j].Load()
		default:
			r = h.released[m.ID]
		}
		s.cells[i].Store(r)
		released, isStale := s.counts(s.effective(i, r))
		if !released {
			h.unreleased++
		}
		if isStale {
			stale++
		}
	}
	s.stale.Store(stale)
	if h.onPublish != nil {
		h.onPublish(s)
	}
}

// index is the position of member id in the current table's Members, which
// is also its position in cells and bound.
func (s *snap) index(id HostID) (int, bool) {
	if s == nil {
		return 0, false
	}
	return s.current().index(id)
}

// releasedAt is the generation id has released at, as far as the current
// table tells: its own release, or the current generation when that release
// implies it (releaseBounds). 0 when it has not released.
func (s *snap) releasedAt(id HostID) uint64 {
	if i, ok := s.index(id); ok {
		return s.effective(i, s.cells[i].Load())
	}
	return 0
}

// effective is the generation member i of the current table has released
// at, given its own release r: the current generation when r implies it.
func (s *snap) effective(i int, r uint64) uint64 {
	if gen := s.current().Generation(); r != 0 && r < gen && s.impliedAt(i, r) {
		return gen
	}
	return r
}

// counts tells how a member that has released at r (effective) counts: as
// released at the current generation, or as stale, having released (if
// ever) before the oldest table kept and not at the current one.
func (s *snap) counts(r uint64) (released, stale bool) {
	gen := s.current().Generation()
	return r >= gen, r < gen && r < s.history[0].Generation()
}

// isStale reports whether member id released (if ever) before the oldest
// table kept, and not at the current one.
func (s *snap) isStale(id HostID) bool {
	if s.current() == nil {
		return false
	}
	_, stale := s.counts(s.releasedAt(id))
	return stale
}

func (s *snap) current() *Table {
	if s == nil || len(s.history) == 0 {
		return nil
	}
	return s.history[len(s.history)-1]
}

// mayActivate reports whether self may activate (typ, id) now. The caller
// has checked that self owns it in the current table.
func (h *handoff) mayActivate(self HostID, typ ActorType, id ActorID) bool {
	ok, _ := h.snap.mayActivate(self, typ, id)
	return ok
}

// mayActivate reports whether self may activate (typ, id) now, and if not,
// a member that may still hold the actor: its release is what to wait for.
// The caller has checked that self owns the actor in the current table.
//
// Only the actor's owners in the kept tables can hold it, so the check looks
// up those (one owner per table): O(tables), whatever the number of members,
// unless a member's release is older than every table kept, which the
// stale count tells in O(1).
func (s *snap) mayActivate(self HostID, typ ActorType, id ActorID) (bool, HostID) {
	cur := s.current()
	if n := s.stale.Load(); n > 1 || n == 1 && !s.isStale(self) {
		for _, m := range cur.Members() {
			if m.ID != self && s.isStale(m.ID) {
				return false, m.ID // it released before the oldest table kept, or never: it may hold anything
			}
		}
	}
	for i, t := range s.history {
		o, ok := t.Owner(typ, id)
		if !ok || o.ID == self {
			continue
		}
		if _, member := cur.Member(o.ID); !member {
			continue // gone: it held nothing
		}
		r := s.releasedAt(o.ID)
		if r >= cur.Generation() {
			continue // released at the current table
		}
		// o owned the actor in table i: it may still hold it if table i is
		// the one in effect at its release r or a later one.
		if i == len(s.history)-1 || s.history[i+1].Generation() > r {
			return false, o.ID
		}
	}
	return true, ""
}

// settle applies the settled record of generation s: each member in
// released has released at s (the others at s or later already), and the
// tables before the one in effect at s are dropped (trim). It publishes
// one snapshot and counts afresh, rather than updating one cell and the
// counts per member.
func (h *handoff) settle(s uint64, released []HostID) {
	if h.released == nil {
		h.released = make(map[HostID]uint64, len(released))
	}
	for _, id := range released {
		h.released[id] = s
	}
	if h.snap == nil {
		return
	}
	if !slices.IsSorted(released) {
		released = slices.Sorted(slices.Values(released))
	}
	h.publish(h.trimmed(s), h.bound, true, released, s)
}

// trimmed is the history without the tables before the one in effect at
// generation s (trim).
func (h *handoff) trimmed(s uint64) []*Table {
	k := 0
	for i, t := range h.history {
		if t.Generation() <= s {
			k = i
		}
	}
	if k == 0 {
		return h.history
	}
	return slices.Clone(h.history[k:])
}

// trim drops the tables before the one in effect at generation s, once
// every member of the current table has released at s or joined after it
// (the settled record of s says so). Such tables decide nothing: mayActivate
// skips a table i when its owner released at a generation no earlier than
// table i+1's, which s is; and an owner whose incarnation joined after s
// cannot hold what a table before its join gave to an incarnation of the
// same id, which was dead before the new one could join.
func (h *handoff) trim(s uint64) {
	if h.snap == nil {
		return
	}
	if history := h.trimmed(s); len(history) != len(h.history) {
		h.publish(history, h.bound, true, nil, 0)
	}
}

// push appends a new current table, dropping the oldest beyond historyLen.
// revs, when not nil, holds every member's revisions, in the order of
// t.Members (releaseBounds).
func (h *handoff) push(t *Table, revs []memberRevs) {
	var old []*Table
	if h.snap != nil {
		old = h.history
	}
	if len(old) == historyLen {
		old = old[1:]
	}
	h.publish(append(slices.Clone(old), t), releaseBounds(t, revs), true, nil, 0)
}

// implied reports whether a release of id at gen implies its release at the
// current generation.
func (s *snap) implied(id HostID, gen uint64) bool {
	i, known := s.index(id)
	return known && s.impliedAt(i, gen)
}

// impliedAt is implied for member i of the current table.
func (s *snap) impliedAt(i int, gen uint64) bool {
	return s.bound != nil && s.bound[i] > 0 && gen >= s.bound[i]
}
