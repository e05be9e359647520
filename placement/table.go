package placement

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/protocol"
)

// Member is one host as the table sees it. Members are immutable once in a
// Table: the Member values and slices a Table hands out are shared with it
// and must not be modified.
type Member struct {
	ID       HostID
	Subject  string      // NATS subject where the host takes calls
	Types    []ActorType // actor types it serves
	Draining bool        // a draining host owns nothing (it is leaving)
	// Reminders says the host delivers fired reminders when it is among
	// the table's ReminderPullers.
	Reminders bool
	// Protocol is the newest protocol version the host speaks (1 for a
	// host that does not say): PROTOCOL.md, "Protocol versions".
	Protocol uint32
	// Liveness is the bucket of the host's liveness key: the liveness
	// bucket, or "" for the membership bucket (hosts before the liveness
	// bucket).
	Liveness string
	// LeaseTTL is the TTL of the host's liveness key, in whole seconds;
	// DefaultLeaseTTL when the host does not say.
	LeaseTTL time.Duration

	hash uint64 // hostHash(ID), set where members enter a Table
}

// Table is the placement table of one generation: a pure function from the
// member set to the owner of every actor. It is immutable once built and
// safe for concurrent use. A nil *Table behaves as an empty table.
type Table struct {
	gen     uint64
	members []Member // sorted by ID, IDs unique
	byType  map[ActorType]*typeHosts
	types   []ActorType // keys of byType, sorted

	ringOnce sync.Once
	ringIdx  []int32 // see ring
}

// ringPoint is a place on the ring of monitors, collectors and reminder
// pullers: a host hash, and a host id for ties.
type ringPoint struct {
	hash uint64
	id   HostID
}

// point is member i's place on the ring.
func (t *Table) point(i int32) ringPoint {
	m := &t.members[i]
	return ringPoint{m.hash, m.ID}
}

func compareRing(a, b ringPoint) int {
	if a.hash != b.hash {
		return cmp.Compare(a.hash, b.hash)
	}
	return cmp.Compare(a.id, b.id) // cmp.Or would compare the ids every time
}

// ring returns the members of protocol version 2 ordered by host hash
// (fmix64(FNV-1a-64(id)), as in the placement hash; ties by id): the ring
// along which hosts monitor each other (Watched) and which names the
// collectors (Collectors) and the reminder pullers (ReminderPullers). It is
// built once per table, as the members' positions in Members: a table holds
// no pointers it need not, for the garbage collector's sake (every host
// builds one per change).
func (t *Table) ring() []int32 {
	if t == nil {
		return nil
	}
	t.ringOnce.Do(func() {
		t.ringIdx = make([]int32, 0, len(t.members))
		for i := range t.members {
			if onRing(&t.members[i]) {
				t.ringIdx = append(t.ringIdx, int32(i))
			}
		}
		slices.SortFunc(t.ringIdx, func(a, b int32) int { return compareRing(t.point(a), t.point(b)) })
	})
	return t.ringIdx
}

// onRing reports whether member m is on the ring.
func onRing(m *Member) bool { return m.Protocol >= protocol.AliveRenewalVersion }

// setRing makes ring, the positions in t's members of those on the ring in
// ring order, the ring of t: a watcher keeps them so, and need not sort them
// for every table. t keeps ring.
func (t *Table) setRing(ring []int32) {
	t.ringOnce.Do(func() { t.ringIdx = ring })
}

// walkRing returns up to k members for which ok holds, going once round the
// ring from the first point at or after from.
func (t *Table) walkRing(from ringPoint, k int, ok func(*Member) bool) []HostID {
	ring := t.ring()
	at, _ := slices.BinarySearchFunc(ring, from, func(i int32, from ringPoint) int { return compareRing(t.point(i), from) })
	out := make([]HostID, 0, min(k, len(ring)))
	for i := 0; len(out) < k && i < len(ring); i++ {
		if m := &t.members[ring[(at+i)%len(ring)]]; ok(m) {
			out = append(out, m.ID)
		}
	}
	return out
}

// typeHosts holds the owner candidates of one actor type.
type typeHosts struct {
	cands []candidate // sorted by ID, as members are
}

// candidate is a non-draining member serving a type: its position in the
// table's members, and its host hash.
type candidate struct {
	hash uint64
	idx  int
}

// NewTable builds the table of the given generation from a member set.
//
// It copies its input, so the caller may reuse members afterwards. The
// result does not depend on the order of members, except that when several
// members share an ID the last one wins. Each member's Types are sorted and
// deduplicated. NewTable does not validate ids: callers check them where
// members enter the system.
func NewTable(generation uint64, members []Member) *Table {
	return newTable(generation, uniqueMembers(members), nil)
}

// newTable builds a table from members already as NewTable makes them:
// sorted by ID, IDs distinct, each member's Types sorted and deduplicated,
// its hash set; ring, when not nil, as for setRing. It keeps members, their
// Types and ring, which nobody may modify afterwards. Every host builds one
// per table change: it counts each type's candidates first, so that each
// list is allocated once.
func newTable(generation uint64, members []Member, ring []int32) *Table {
	t := &Table{gen: generation, members: members}
	sizes := make(map[ActorType]int)
	for i := range members {
		if !members[i].Draining {
			for _, typ := range members[i].Types {
				sizes[typ]++
			}
		}
	}
	t.byType = make(map[ActorType]*typeHosts, len(sizes))
	t.types = make([]ActorType, 0, len(sizes))
	for typ, n := range sizes {
		t.byType[typ] = &typeHosts{cands: make([]candidate, 0, n)}
		t.types = append(t.types, typ)
	}
	slices.Sort(t.types)
	for i := range t.members {
		t.addCandidate(i)
	}
	if ring != nil {
		t.setRing(ring)
	}
	return t
}

// uniqueMembers returns copies of members sorted by ID, keeping the last
// member of each ID, with sorted and deduplicated Types.
func uniqueMembers(members []Member) []Member {
	last := make(map[HostID]int, len(members))
	for i, m := range members {
		last[m.ID] = i
	}
	out := make([]Member, 0, len(last))
	for i, m := range members {
		if last[m.ID] == i {
			m.Types = sortedTypes(m.Types)
			m.hash = hostHash(m.ID)
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// sortedTypes returns a sorted, deduplicated copy of types.
func sortedTypes(types []ActorType) []ActorType {
	out := slices.Clone(types)
	slices.Sort(out)
	return slices.Compact(out)
}

// addCandidate registers member i as a candidate for each type it serves,
// unless it is draining. Members are added in ID order, so candidate lists
// stay sorted.
func (t *Table) addCandidate(i int) {
	m := &t.members[i]
	if m.Draining {
		return
	}
	for _, typ := range m.Types {
		th := t.byType[typ]
		th.cands = append(th.cands, candidate{hash: m.hash, idx: i})
	}
}

// Generation returns the generation the table was built for (0 for nil).
func (t *Table) Generation() uint64 {
	if t == nil {
		return 0
	}
	return t.gen
}

// Members returns all members, draining ones included, sorted by ID. The
// slice is shared with the table: the caller must not modify it.
func (t *Table) Members() []Member {
	if t == nil {
		return nil
	}
	return t.members
}

// Member returns the member with the given ID. Its Types slice is shared
// with the table and must not be modified.
func (t *Table) Member(id HostID) (Member, bool) {
	i, ok := t.index(id)
	if !ok {
		return Member{}, false
	}
	return t.members[i], true
}

// index returns the position of member id in Members.
func (t *Table) index(id HostID) (int, bool) {
	if t == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(t.members, id, func(m Member, id HostID) int {
		return cmp.Compare(m.ID, id)
	})
}

// Owner returns the member that owns the actor (typ, id): the non-draining
// member serving typ with the highest rendezvous score (see the package
// documentation). It reports false if no such member exists. The returned
// Member is shared with the table and must not be modified. Owner does not
// allocate.
func (t *Table) Owner(typ ActorType, id ActorID) (*Member, bool) {
	return t.OwnerOfKey(typ, KeyHash(typ, id))
}

// pick returns the position of the candidate with the highest score for
// key. On equal scores (equal host hashes) the earlier candidate, that is
// the smaller host ID, wins. cands must not be empty.
func pick(key uint64, cands []candidate) int {
	best := cands[0].idx
	bestScore := score(key, cands[0].hash)
	for _, c := range cands[1:] {
		if s := score(key, c.hash); s > bestScore {
			best, bestScore = c.idx, s
		}
	}
	return best
}

// MinProtocol returns the lowest protocol version among t's members, 0 for
// an empty table.
func (t *Table) MinProtocol() uint32 {
	var v uint32
	for i, m := range t.Members() {
		if i == 0 || m.Protocol < v {
			v = m.Protocol
		}
	}
	return v
}

// Serves reports whether some non-draining member serves typ.
func (t *Table) Serves(typ ActorType) bool {
	if t == nil {
		return false
	}
	return t.byType[typ] != nil
}

// Hosts returns the IDs of the non-draining members serving typ, sorted: the
// candidates among which Owner chooses. The caller owns the returned slice.
func (t *Table) Hosts(typ ActorType) []HostID {
	cands := t.candidates(typ)
	if cands == nil {
		return nil
	}
	ids := make([]HostID, len(cands))
	for i, c := range cands {
		ids[i] = t.members[c.idx].ID
	}
	return ids
}

// IsCandidate reports whether member id is among the Hosts of typ.
func (t *Table) IsCandidate(typ ActorType, id HostID) bool {
	_, ok := slices.BinarySearchFunc(t.candidates(typ), id, func(c candidate, id HostID) int {
		return cmp.Compare(t.members[c.idx].ID, id)
	})
	return ok
}

// NewCandidates returns the Hosts of typ in t that are not among its Hosts
// in prev, sorted. It walks the two sorted lists together, without copying
// either: every host runs it on every table change.
func (t *Table) NewCandidates(prev *Table, typ ActorType) []HostID {
	was := prev.candidates(typ)
	var out []HostID
	i := 0
	for _, c := range t.candidates(typ) {
		id := t.members[c.idx].ID
		for i < len(was) && prev.members[was[i].idx].ID < id {
			i++
		}
		if i == len(was) || prev.members[was[i].idx].ID != id {
			out = append(out, id)
		}
	}
	return out
}

// candidates returns the candidates of typ, for reading only.
func (t *Table) candidates(typ ActorType) []candidate {
	if t == nil || t.byType[typ] == nil {
		return nil
	}
	return t.byType[typ].cands
}

// Types returns the actor types that some non-draining member serves, sorted:
// exactly the types for which Serves reports true. The caller owns the
// returned slice.
func (t *Table) Types() []ActorType {
	if t == nil {
		return nil
	}
	return slices.Clone(t.types)
}
