package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// hostIDs returns n host ids host-0 … host-(n-1).
func hostIDs(n int) []HostID {
	ids := make([]HostID, n)
	for i := range ids {
		ids[i] = HostID(fmt.Sprintf("host-%d", i))
	}
	return ids
}

// membersOf returns one non-draining member per id, serving types.
func membersOf(ids []HostID, types ...ActorType) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: id, Subject: "troupe.host." + string(id), Types: types}
	}
	return ms
}

// actorIDs returns n actor ids: sequential ones, the common case, and every
// fourth a random byte string.
func actorIDs(n int) []ActorID {
	r := rand.New(rand.NewPCG(11, 12))
	ids := make([]ActorID, n)
	for i := range ids {
		if i%4 == 3 {
			ids[i] = ActorID(randBytes(r, 1+r.IntN(24)))
		} else {
			ids[i] = ActorID(fmt.Sprintf("user-%d", i))
		}
	}
	return ids
}

// owners returns the owner's id of (typ, id) for each id, "" when none.
func owners(t *Table, typ ActorType, ids []ActorID) []HostID {
	out := make([]HostID, len(ids))
	for i, id := range ids {
		if m, ok := t.Owner(typ, id); ok {
			out[i] = m.ID
		}
	}
	return out
}

// naiveOwner is the placement function written plainly from the package
// documentation: score every serving, non-draining host and take the best.
func naiveOwner(members []Member, typ ActorType, id ActorID) (HostID, bool) {
	latest := map[HostID]Member{}
	for _, m := range members {
		latest[m.ID] = m
	}
	key := refKeyHash(typ, id)
	var best HostID
	var bestScore uint64
	found := false
	for hid, m := range latest {
		if m.Draining || !slices.Contains(m.Types, typ) {
			continue
		}
		s := refFmix64(key ^ refHostHash(hid))
		if !found || s > bestScore || s == bestScore && hid < best {
			best, bestScore, found = hid, s, true
		}
	}
	return best, found
}

func TestNilTable(t *testing.T) {
	var tb *Table
	if tb.Generation() != 0 || tb.Members() != nil || tb.Hosts("a") != nil || tb.Types() != nil {
		t.Error("nil table is not empty")
	}
	if _, ok := tb.Owner("a", "x"); ok {
		t.Error("nil table has an owner")
	}
	if tb.Serves("a") {
		t.Error("nil table serves a type")
	}
	if _, ok := tb.Member("h"); ok {
		t.Error("nil table has a member")
	}
}

func TestEmptyTable(t *testing.T) {
	tb := NewTable(7, nil)
	if tb.Generation() != 7 {
		t.Errorf("Generation() = %d, want 7", tb.Generation())
	}
	if len(tb.Members()) != 0 || len(tb.Types()) != 0 || tb.Serves("a") {
		t.Error("empty table has members or types")
	}
	if _, ok := tb.Owner("a", "x"); ok {
		t.Error("empty table has an owner")
	}
}

func TestNewTableNormalises(t *testing.T) {
	in := []Member{
		{ID: "c", Subject: "s.c", Types: []ActorType{"b", "a", "b"}},
		{ID: "a", Subject: "old", Types: []ActorType{"x"}},
		{ID: "b", Subject: "s.b", Types: []ActorType{"a"}, Draining: true},
		{ID: "a", Subject: "s.a", Types: []ActorType{"a"}},
	}
	tb := NewTable(1, in)
	in[0].Types[0] = "mutated"
	in[3].Subject = "mutated"

	want := []Member{
		{ID: "a", Subject: "s.a", Types: []ActorType{"a"}},
		{ID: "b", Subject: "s.b", Types: []ActorType{"a"}, Draining: true},
		{ID: "c", Subject: "s.c", Types: []ActorType{"a", "b"}},
	}
	got := tb.Members()
	if len(got) != len(want) {
		t.Fatalf("Members() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Subject != want[i].Subject ||
			got[i].Draining != want[i].Draining || !slices.Equal(got[i].Types, want[i].Types) {
			t.Errorf("Members()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if m, ok := tb.Member("c"); !ok || m.Subject != "s.c" {
		t.Errorf("Member(c) = %+v, %v", m, ok)
	}
	if _, ok := tb.Member("x"); ok {
		t.Error("Member(x) found")
	}
	if h := tb.Hosts("a"); !slices.Equal(h, []HostID{"a", "c"}) {
		t.Errorf("Hosts(a) = %v, want [a c]", h)
	}
	if ty := tb.Types(); !slices.Equal(ty, []ActorType{"a", "b"}) {
		t.Errorf("Types() = %v, want [a b] (x's only host was replaced)", ty)
	}
}

// NewCandidates lists the hosts of a type in one table that were not among
// them in another, whatever else changed; IsCandidate answers for one host.
func TestNewCandidatesAreTheHostsATableAdded(t *testing.T) {
	m := func(id HostID, draining bool, types ...ActorType) Member {
		return Member{ID: id, Types: types, Draining: draining}
	}
	prev := NewTable(1, []Member{m("b", false, "p"), m("d", false, "p", "q"), m("f", true, "p")})
	now := NewTable(2, []Member{m("a", false, "p"), m("b", false, "q"), m("d", false, "p"), m("f", false, "p"), m("g", false, "q")})
	for _, tc := range []struct {
		typ  ActorType
		want []HostID
	}{{"p", []HostID{"a", "f"}}, {"q", []HostID{"b", "g"}}, {"r", nil}} {
		if got := now.NewCandidates(prev, tc.typ); !slices.Equal(got, tc.want) {
			t.Errorf("NewCandidates(%s) = %v, want %v", tc.typ, got, tc.want)
		}
	}
	if got := now.NewCandidates(nil, "q"); !slices.Equal(got, []HostID{"b", "g"}) {
		t.Errorf("NewCandidates from no table = %v, want every host of q", got)
	}
	if !prev.IsCandidate("p", "d") || prev.IsCandidate("p", "f") || prev.IsCandidate("q", "b") || prev.IsCandidate("r", "b") {
		t.Error("IsCandidate disagrees with Hosts")
	}
}

func TestHostsAndTypesAreCopies(t *testing.T) {
	tb := NewTable(1, membersOf(hostIDs(3), "a"))
	tb.Hosts("a")[0] = "mutated"
	tb.Types()[0] = "mutated"
	if tb.Hosts("a")[0] != "host-0" || tb.Types()[0] != "a" {
		t.Error("Hosts or Types share storage with the table")
	}
}

func TestOwnerDoesNotAllocate(t *testing.T) {
	tb := NewTable(1, membersOf(hostIDs(10), "counter"))
	allocs := testing.AllocsPerRun(100, func() { tb.Owner("counter", "user-42") })
	if allocs != 0 {
		t.Errorf("Owner allocates %v times per call", allocs)
	}
}

// TestTieBreak checks that equal scores (equal host hashes) go to the
// smaller host ID, that is the earlier candidate.
func TestTieBreak(t *testing.T) {
	if i := pick(5, []candidate{{hash: 9, idx: 0}, {hash: 9, idx: 1}}); i != 0 {
		t.Errorf("tie went to candidate %d, want the first", i)
	}
}

func TestBalance(t *testing.T) {
	const n = 100_000
	tb := NewTable(1, membersOf(hostIDs(10), "counter"))
	load := map[HostID]int{}
	for _, h := range owners(tb, "counter", actorIDs(n)) {
		load[h]++
	}
	mean := float64(n) / 10
	mx := slices.Max(mapValues(load))
	t.Logf("max/mean = %.4f, min/mean = %.4f", float64(mx)/mean, float64(slices.Min(mapValues(load)))/mean)
	if len(load) != 10 || float64(mx) > 1.15*mean {
		t.Errorf("load %v: max %d > 1.15 × mean %.0f", load, mx, mean)
	}
}

func mapValues(m map[HostID]int) []int {
	var vs []int
	for _, v := range m {
		vs = append(vs, v)
	}
	return vs
}

func TestAddHostMovesOnlyToNewHost(t *testing.T) {
	const n = 100_000
	ids := actorIDs(n)
	hosts := hostIDs(11)
	before := owners(NewTable(1, membersOf(hosts[:10], "counter")), "counter", ids)
	after := owners(NewTable(2, membersOf(hosts, "counter")), "counter", ids)
	moved := 0
	for i := range ids {
		if before[i] == after[i] {
			continue
		}
		moved++
		if after[i] != hosts[10] {
			t.Fatalf("id %q moved %s → %s, not to the new host", ids[i], before[i], after[i])
		}
	}
	frac := float64(moved) / n
	t.Logf("moved fraction %.4f (ideal 1/11 = %.4f)", frac, 1.0/11)
	if frac > 1.2/11 {
		t.Errorf("moved %.4f of ids, more than 1.2/11", frac)
	}
}

func TestRemoveHostMovesOnlyItsIDs(t *testing.T) {
	ids := actorIDs(20_000)
	hosts := hostIDs(10)
	full := owners(NewTable(1, membersOf(hosts, "counter")), "counter", ids)
	for _, gone := range []int{0, 4, 9} {
		rest := slices.Delete(slices.Clone(hosts), gone, gone+1)
		less := owners(NewTable(2, membersOf(rest, "counter")), "counter", ids)
		for i := range ids {
			if full[i] != less[i] && full[i] != hosts[gone] {
				t.Fatalf("removing %s moved %q from %s to %s", hosts[gone], ids[i], full[i], less[i])
			}
			if less[i] == hosts[gone] {
				t.Fatalf("removed host %s still owns %q", hosts[gone], ids[i])
			}
		}
	}
}

func TestDrainingIsLikeLeaving(t *testing.T) {
	ids := actorIDs(20_000)
	hosts := hostIDs(10)
	ms := membersOf(hosts, "counter")
	ms[3].Draining = true
	drained := owners(NewTable(1, ms), "counter", ids)
	left := owners(NewTable(1, slices.Delete(slices.Clone(ms), 3, 4)), "counter", ids)
	if !slices.Equal(drained, left) {
		t.Error("a draining member changes placement differently from a departed one")
	}
	if slices.Contains(drained, hosts[3]) {
		t.Error("a draining member owns ids")
	}
	all := NewTable(1, []Member{{ID: "d", Types: []ActorType{"counter"}, Draining: true}})
	if _, ok := all.Owner("counter", "x"); ok || all.Serves("counter") || all.Hosts("counter") != nil {
		t.Error("a type served only by draining members has an owner")
	}
}

func TestTypesAreIndependent(t *testing.T) {
	ids := actorIDs(20_000)
	hosts := hostIDs(8)
	ms := membersOf(hosts[:5], "a", "b")
	ms = append(ms, membersOf(hosts[5:], "b")...)
	tb := NewTable(1, ms)
	onlyA := NewTable(1, membersOf(hosts[:5], "a"))

	if got := owners(tb, "a", ids); !slices.Equal(got, owners(onlyA, "a", ids)) {
		t.Error("owners of type a depend on hosts serving only b")
	}
	for _, h := range owners(tb, "a", ids) {
		if slices.Contains(hosts[5:], h) {
			t.Fatalf("host %s does not serve a but owns an a", h)
		}
	}
	if _, ok := tb.Owner("c", "x"); ok || tb.Serves("c") {
		t.Error("unserved type c has an owner")
	}
}

func TestOrderIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ids := actorIDs(2_000)
	types := []ActorType{"t0", "t1", "t2", "t3"}
	ms := dedupLast(randomMembers(r, 20))
	base := NewTable(1, ms)
	for range 10 {
		shuffled := slices.Clone(ms)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		tb := NewTable(1, shuffled)
		for _, typ := range types {
			if !slices.Equal(owners(tb, typ, ids), owners(base, typ, ids)) {
				t.Fatalf("shuffling the member set changes placement of type %s", typ)
			}
		}
	}
}

// dedupLast drops all but the last member of each ID, so that shuffling
// cannot change which duplicate wins (duplicates keep the last by design).
func dedupLast(ms []Member) []Member {
	seen := map[HostID]bool{}
	var out []Member
	for i := len(ms) - 1; i >= 0; i-- {
		if !seen[ms[i].ID] {
			seen[ms[i].ID] = true
			out = append(out, ms[i])
		}
	}
	return out
}

func TestOwnerMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	types := []ActorType{"t0", "t1", "t2", "t3"}
	for round := range 200 {
		ms := randomMembers(r, 1+r.IntN(30))
		tb := NewTable(uint64(round), ms)
		for range 100 {
			typ := types[r.IntN(len(types))]
			id := ActorID(randBytes(r, 1+r.IntN(20)))
			want, wantOK := naiveOwner(ms, typ, id)
			m, ok := tb.Owner(typ, id)
			if ok != wantOK || ok && m.ID != want {
				t.Fatalf("round %d: Owner(%q, %q) = %v, %v; naive says %q, %v", round, typ, id, m, ok, want, wantOK)
			}
		}
	}
}

// randomMembers returns n members with random ids (some repeated), random
// subsets of types t0…t3 (some repeated) and some draining.
func randomMembers(r *rand.Rand, n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: HostID(randName(r)), Draining: r.IntN(5) == 0}
		if i > 0 && r.IntN(10) == 0 {
			ms[i].ID = ms[r.IntN(i)].ID
		}
		for range r.IntN(5) {
			ms[i].Types = append(ms[i].Types, ActorType(fmt.Sprintf("t%d", r.IntN(4))))
		}
	}
	return ms
}
