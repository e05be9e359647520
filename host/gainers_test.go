package host

import (
	"slices"
	"testing"

	"github.com/troupe-dev/troupe/placement"
)

// gainers names the hosts that became candidates of a type this host serves
// and stays in, every candidate of a type it left, each once, never itself,
// and nobody for types it did not hold.
func TestGainersAreTheNewCandidatesOfTheTypesThisHostHeld(t *testing.T) {
	m := func(id placement.HostID, draining bool, types ...placement.ActorType) placement.Member {
		return placement.Member{ID: id, Types: types, Draining: draining}
	}
	prev := placement.NewTable(1, []placement.Member{
		m("a", false, "p", "q"), m("c", false, "p"), m("e", false, "q"), m("g", false, "r"),
	})
	for _, tc := range []struct {
		name  string
		now   []placement.Member
		types []string
		want  []placement.HostID
	}{
		{"nothing changed", prev.Members(), []string{"p", "q", "r"}, nil},
		{"joins of p before, between and after the held",
			append(slices.Clone(prev.Members()), m("0", false, "p"), m("b", false, "p"), m("d", false, "p", "q"), m("z", false, "q")),
			[]string{"p", "q"}, []placement.HostID{"0", "b", "d", "z"}},
		{"a join of a type this host does not hold", append(slices.Clone(prev.Members()), m("h", false, "r")),
			[]string{"p", "q", "r"}, nil},
		{"a departure takes nothing", []placement.Member{m("a", false, "p", "q"), m("e", false, "q")},
			[]string{"p", "q"}, nil},
		{"this host drains: every candidate of its types, once",
			[]placement.Member{m("a", true, "p", "q"), m("c", false, "p"), m("e", false, "q"), m("g", false, "r"), m("x", false, "p", "q")},
			[]string{"p", "q"}, []placement.HostID{"c", "e", "x"}},
	} {
		got := gainers(prev, placement.NewTable(2, tc.now), "a", tc.types)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: gainers %v, want %v", tc.name, got, tc.want)
		}
	}
}
