package inspect

import (
	"math"
	"testing"

	"github.com/troupe-dev/troupe/placement"
)

func TestDivide(t *testing.T) {
	tab := placement.NewTable(9, []placement.Member{
		{ID: "a", Types: []placement.ActorType{"t"}},
		{ID: "b", Types: []placement.ActorType{"t", "u"}},
		{ID: "c", Types: []placement.ActorType{"t"}, Draining: true},
	})
	if _, ok := Divide(tab, "nosuch", 64, 10); ok {
		t.Error("Divide of an unserved type reports a placement")
	}
	p, ok := Divide(tab, "t", 1000, 500)
	if !ok || p.Generation != 9 || len(p.Hosts) != 2 || p.Hosts[0].Host != "a" || p.Hosts[1].Host != "b" {
		t.Fatalf("Divide(t) = %+v, want hosts a and b (c is draining)", p)
	}
	owned := map[string]int{}
	for i := range 500 {
		m, _ := tab.Owner("t", SampleID(i))
		owned[string(m.ID)]++
	}
	for _, s := range p.Hosts {
		if s.Sample != owned[s.Host] {
			t.Errorf("%s: sample %d, the table gives it %d", s.Host, s.Sample, owned[s.Host])
		}
	}
	if sum := p.Hosts[0].Space + p.Hosts[1].Space; math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v", sum)
	}
	p.DrawRing(tab, 64)
	for i, h := range p.Ring {
		if got := tab.KeySpace("t", 64)[i]; string(got) != p.Hosts[h].Host {
			t.Fatalf("ring slice %d: %s, KeySpace says %s", i, p.Hosts[h].Host, got)
		}
	}
	if u, _ := Divide(tab, "u", 10, 3); len(u.Hosts) != 1 || u.Hosts[0].Space != 1 || u.Hosts[0].Sample != 3 {
		t.Errorf("Divide(u) = %+v, want all of it on b", u)
	}
}
