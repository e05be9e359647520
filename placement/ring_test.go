package placement

import (
	"cmp"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// This file keeps the scheme that lost the comparison in doc.go: a
// consistent-hash ring with virtual nodes, in the manner of groupcache's
// consistenthash. It exists to be measured against the rendezvous Table.

var compareSchemes = flag.Bool("compare", false, "log the full rendezvous vs vnode ring comparison (TestCompareSchemes)")

// ring places keys on a hash ring: each host puts vnodes points on it and a
// key belongs to the host of the first point at or after its KeyHash.
type ring struct {
	byType map[ActorType]*typeRing
}

// typeRing is the ring of one actor type: sorted points and their owners.
type typeRing struct {
	points []uint64
	owners []*Member
}

// newRing builds a ring from the members of an existing Table, so that both
// schemes see the same normalised member set.
func newRing(vnodes int, tb *Table) *ring {
	r := &ring{byType: map[ActorType]*typeRing{}}
	for _, typ := range tb.Types() {
		r.byType[typ] = buildTypeRing(vnodes, tb, tb.byType[typ].cands)
	}
	return r
}

// buildTypeRing places vnodes points per candidate, at
// fmix64(FNV-1a-64(hostID + "#" + decimal(i))).
func buildTypeRing(vnodes int, tb *Table, cands []candidate) *typeRing {
	type point struct {
		at uint64
		m  *Member
	}
	pts := make([]point, 0, vnodes*len(cands))
	for _, c := range cands {
		m := &tb.members[c.idx]
		for i := range vnodes {
			h := fnvString(fnvOffset64, string(m.ID)+"#"+strconv.Itoa(i))
			pts = append(pts, point{fmix64(h), m})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return cmp.Compare(a.m.ID, b.m.ID)
	})
	tr := &typeRing{points: make([]uint64, len(pts)), owners: make([]*Member, len(pts))}
	for i, p := range pts {
		tr.points[i], tr.owners[i] = p.at, p.m
	}
	return tr
}

// owner returns the owner of (typ, id) on the ring.
func (r *ring) owner(typ ActorType, id ActorID) (*Member, bool) {
	tr := r.byType[typ]
	if tr == nil {
		return nil, false
	}
	i, _ := slices.BinarySearch(tr.points, KeyHash(typ, id))
	if i == len(tr.points) {
		i = 0
	}
	return tr.owners[i], true
}

// ownerFunc is either scheme's lookup.
type ownerFunc func(ActorType, ActorID) (*Member, bool)

// scheme builds the lookup of one placement scheme for a member set.
type scheme struct {
	name  string
	build func([]Member) ownerFunc
}

func schemes(vnodes ...int) []scheme {
	s := []scheme{{"rendezvous", func(ms []Member) ownerFunc { return NewTable(1, ms).Owner }}}
	for _, v := range vnodes {
		s = append(s, scheme{fmt.Sprintf("ring-%d", v), func(ms []Member) ownerFunc {
			return newRing(v, NewTable(1, ms)).owner
		}})
	}
	return s
}

// stats are the balance and movement of one scheme for one host count.
type stats struct {
	maxOverMean float64 // most loaded host / mean load
	moved       float64 // fraction of ids that moved when a host joined
	strayMoves  int     // moved ids that did not go to the new host
}

// measure places ids on n hosts, then on n+1, for one host naming.
func measure(s scheme, hosts []HostID, ids []ActorID) stats {
	n := len(hosts) - 1
	before := s.build(membersOf(hosts[:n], "a"))
	after := s.build(membersOf(hosts, "a"))
	load := map[HostID]int{}
	var st stats
	for _, id := range ids {
		b, _ := before("a", id)
		a, _ := after("a", id)
		load[b.ID]++
		if a.ID != b.ID {
			st.moved++
			if a.ID != hosts[n] {
				st.strayMoves++
			}
		}
	}
	mean := float64(len(ids)) / float64(n)
	st.maxOverMean = float64(slices.Max(mapValues(load))) / mean
	st.moved /= float64(len(ids))
	return st
}

// randomHostIDs returns n distinct random host ids.
func randomHostIDs(r *rand.Rand, n int) []HostID {
	seen := map[HostID]bool{}
	var ids []HostID
	for len(ids) < n {
		id := HostID(randName(r))
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// TestRingBasics checks the comparison ring itself: both schemes move ids
// only to a joining host, and the rendezvous Table balances at least as well.
func TestRingBasics(t *testing.T) {
	ids := actorIDs(20_000)
	hosts := hostIDs(11)
	var hrw stats
	for i, s := range schemes(100) {
		st := measure(s, hosts, ids)
		t.Logf("%-10s max/mean %.3f moved %.4f", s.name, st.maxOverMean, st.moved)
		if st.strayMoves != 0 {
			t.Errorf("%s: %d ids moved between old hosts", s.name, st.strayMoves)
		}
		if i == 0 {
			hrw = st
		} else if st.maxOverMean < hrw.maxOverMean {
			t.Logf("%s balances better than rendezvous here", s.name)
		}
	}
}

// TestCompareSchemes prints the numbers quoted in doc.go. Run it with
//
//	go test ./placement -run TestCompareSchemes -compare -v
//
// For each host count it averages over several random host namings, reporting
// the mean and worst max/mean load and the moved fraction when one more host
// joins (the ideal is 1/(n+1)).
func TestCompareSchemes(t *testing.T) {
	if !*compareSchemes {
		t.Skip("run with -compare")
	}
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{3, 10, 100} {
		ids := actorIDs(10_000 * n)
		for _, s := range schemes(100, 1000) {
			var sumMax, worstMax, sumMoved float64
			const trials = 5
			for range trials {
				st := measure(s, randomHostIDs(r, n+1), ids)
				sumMax += st.maxOverMean
				worstMax = max(worstMax, st.maxOverMean)
				sumMoved += st.moved
			}
			t.Logf("hosts=%-3d %-10s max/mean avg %.3f worst %.3f  moved %.4f (ideal %.4f)",
				n, s.name, sumMax/trials, worstMax, sumMoved/trials, 1/float64(n+1))
		}
	}
}
