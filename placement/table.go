package placement

import (
	"cmp"
	"slices"
	"sync"

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
	ringPts  []ringPoint // see ring
}

// ringPoint is a member on the ring of monitors, collectors and reminder
// pullers.
type ringPoint struct {
	hash uint64
	id   HostID
	m    *Member
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
// built once per table.
func (t *Table) ring() []ringPoint {
	if t == nil {
		return nil
	}
	t.ringOnce.Do(func() {
		t.ringPts = make([]ringPoint, 0, len(t.members))
		for i := range t.members {
			if m := &t.members[i]; onRing(m) {
				t.ringPts = append(t.ringPts, ringPoint{m.hash, m.ID, m})
			}
		}
		slices.SortFunc(t.ringPts, compareRing)
	})
	return t.ringPts
}

// onRing reports whether member m is on the ring.
func onRing(m *Member) bool { return m.Protocol >= protocol.AliveRenewalVersion }

// setRing makes the ring of t from ring, the positions in t's members of
// those on the ring, in ring order: a watcher keeps them so, and need not
// sort them for every table.
func (t *Table) setRing(ring []int) {
	t.ringOnce.Do(func() {
		t.ringPts = make([]ringPoint, len(ring))
		for i, at := range ring {
			m := &t.members[at]
			t.ringPts[i] = ringPoint{m.hash, m.ID, m}
		}
	})
}

// walkRing returns up to k members for which ok holds, going once round the
// ring from the first point at or after from.
func (t *Table) walkRing(from ringPoint, k int, ok func(*Member) bool) []HostID {
	ring := t.ring()
	at, _ := slices.BinarySearchFunc(ring, from, compareRing)
	out := make([]HostID, 0, min(k, len(ring)))
	for i := 0; len(out) < k && i < len(ring); i++ {
		if p := ring[(at+i)%len(ring)]; ok(p.m) {
			out = append(out, p.id)
		}
	}
	return out
}

// typeHosts holds the owner candidates of one actor type.
type typeHosts struct {
	hosts []HostID    // sorted
	cands []candidate // same order as hosts
}

// candidate is a non-draining member serving a type, with its host hash
// and its position in the table's members.
type candidate struct {
	hash uint64
	m    *Member
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
// its hash set; ring, when not nil, as for setRing. It keeps members and
// their Types, which nobody may modify afterwards. Every host builds one per
// table change: it counts each type's candidates first, so that each list
// is allocated once.
func newTable(generation uint64, members []Member, ring []int) *Table {
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
		t.byType[typ] = &typeHosts{hosts: make([]HostID, 0, n), cands: make([]candidate, 0, n)}
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
		th.hosts = append(th.hosts, m.ID)
		th.cands = append(th.cands, candidate{hash: m.hash, m: m, idx: i})
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

// pick returns the candidate with the highest score for key. On equal scores
// (equal host hashes) the earlier candidate, that is the smaller host ID,
// wins. cands must not be empty.
func pick(key uint64, cands []candidate) *Member {
	best := cands[0].m
	bestScore := score(key, cands[0].hash)
	for _, c := range cands[1:] {
		if s := score(key, c.hash); s > bestScore {
			best, bestScore = c.m, s
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
	if t == nil || t.byType[typ] == nil {
		return nil
	}
	return slices.Clone(t.byType[typ].hosts)
}

// IsCandidate reports whether member id is among the Hosts of typ.
func (t *Table) IsCandidate(typ ActorType, id HostID) bool {
	if t == nil || t.byType[typ] == nil {
		return false
	}
	_, ok := slices.BinarySearch(t.byType[typ].hosts, id)
	return ok
}

// NewCandidates returns the Hosts of typ in t that are not among its Hosts
// in prev, sorted. It walks the two sorted lists together, without copying
// either: every host runs it on every table change.
func (t *Table) NewCandidates(prev *Table, typ ActorType) []HostID {
	now := t.byTypeHosts(typ)
	was := prev.byTypeHosts(typ)
	var out []HostID
	i := 0
	for _, id := range now {
		for i < len(was) && was[i] < id {
			i++
		}
		if i == len(was) || was[i] != id {
			out = append(out, id)
		}
	}
	return out
}

// byTypeHosts is Hosts without the copy, for reading only.
func (t *Table) byTypeHosts(typ ActorType) []HostID {
	if t == nil || t.byType[typ] == nil {
		return nil
	}
	return t.byType[typ].hosts
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
