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
// per table change; the record expires after ttl (use the bucket's marker
// TTL), by which time every watcher has long applied it.
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
	// unreleased counts the members of the current table that have not
	// released at its generation.
	unreleased int
	// history holds recent tables in ascending generation order; the last
	// one is the current table.
	history []*Table
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

// isReleased reports whether id has released at the current generation.
func (h *handoff) isReleased(id HostID) bool {
	cur := h.current()
	return cur != nil && h.released[id] >= cur.Generation()
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
			if r := h.released[m.ID]; m.ID != self && r < cur.Generation() && r < oldest {
				return false // it released before the oldest table kept, or never: it may hold anything
			}
		}
	}
	for i, t := range h.history {
		o, ok := t.Owner(typ, id)
		if !ok || o.ID == self {
			continue
		}
		r, member := h.released[o.ID], false
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
func (h *handoff) push(t *Table) {
	if len(h.history) == historyLen {
		copy(h.history, h.history[1:])
		h.history = h.history[:historyLen-1]
	}
	h.history = append(h.history, t)
	h.recount()
}
