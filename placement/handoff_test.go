package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// movedActor finds an actor of typ that from owns in a and to owns in b.
func movedActor(t *testing.T, a, b *Table, typ ActorType, from, to HostID) ActorID {
	t.Helper()
	for i := 0; i < 100000; i++ {
		id := ActorID(fmt.Sprint("a", i))
		oa, _ := a.Owner(typ, id)
		ob, _ := b.Owner(typ, id)
		if oa != nil && ob != nil && oa.ID == from && ob.ID == to {
			return id
		}
	}
	t.Fatalf("no actor moves from %s to %s", from, to)
	return ""
}

func members(ids ...HostID) []Member {
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: id, Types: []ActorType{"c"}}
	}
	return ms
}

func TestHandoffWaitsForThePreviousOwnerOnly(t *testing.T) {
	g1 := NewTable(10, members("a", "b"))
	g2 := NewTable(20, members("a", "b", "c"))
	var h handoff
	h.push(g1, nil)
	h.push(g2, nil)
	h.resetReleased(map[HostID]uint64{"a": 10, "b": 10, "c": 20})

	fromA := movedActor(t, g1, g2, "c", "a", "c")
	fromB := movedActor(t, g1, g2, "c", "b", "c")
	if h.settled() {
		t.Fatal("settled before a and b released at 20")
	}
	if h.mayActivate("c", "c", fromA) || h.mayActivate("c", "c", fromB) {
		t.Fatal("c may activate actors a and b have not released")
	}

	h.setReleased("a", 20, true)
	if !h.mayActivate("c", "c", fromA) {
		t.Fatal("c may not activate an actor its previous owner released")
	}
	if h.mayActivate("c", "c", fromB) {
		t.Fatal("c may activate an actor b still holds")
	}

	h.setReleased("b", 20, true)
	if !h.settled() || !h.mayActivate("c", "c", fromB) {
		t.Fatal("not settled after every member released")
	}
}

func TestHandoffLooksAtEveryTableSinceTheRelease(t *testing.T) {
	// x is b's at 10, c's at 20, and a's at 30 when b and c drain. b
	// released only at 10, so at 30 a must still wait for b, although b does
	// not own x in the current table.
	g1 := NewTable(10, members("a", "b"))
	g2 := NewTable(20, members("a", "b", "c"))
	ms := members("a", "b", "c")
	ms[1].Draining, ms[2].Draining = true, true
	g3 := NewTable(30, ms)
	var x ActorID
	for i := 0; x == "" && i < 100000; i++ {
		id := ActorID(fmt.Sprint("a", i))
		o1, _ := g1.Owner("c", id)
		o2, _ := g2.Owner("c", id)
		o3, _ := g3.Owner("c", id)
		if o1.ID == "b" && o2.ID == "c" && o3.ID == "a" {
			x = id
		}
	}
	if x == "" {
		t.Fatal("no actor moves from b to c to a")
	}
	var h handoff
	h.push(g1, nil)
	h.push(g2, nil)
	h.push(g3, nil)
	h.resetReleased(map[HostID]uint64{"a": 30, "b": 10, "c": 30})
	if h.mayActivate("a", "c", x) {
		t.Fatalf("a may activate %s while b, released at 10, may hold it", x)
	}
	h.setReleased("b", 20, true)
	if !h.mayActivate("a", "c", x) {
		t.Fatalf("a may not activate %s after b released at 20", x)
	}
}

func TestHandoffWaitsWhenTheHistoryIsTooShort(t *testing.T) {
	var h handoff
	for g := uint64(1); g <= historyLen+5; g++ {
		h.push(NewTable(g, members("a", "b")), nil)
	}
	if len(h.history) != historyLen {
		t.Fatalf("history holds %d tables, want %d", len(h.history), historyLen)
	}
	cur := h.current()
	h.resetReleased(map[HostID]uint64{"a": cur.Generation(), "b": 2})
	var id ActorID
	for i := 0; ; i++ {
		id = ActorID(fmt.Sprint("a", i))
		if o, _ := cur.Owner("c", id); o.ID == "a" {
			break
		}
	}
	if h.mayActivate("a", "c", id) {
		t.Fatal("activated although b released before the oldest table kept")
	}
	h.setReleased("b", cur.Generation()-1, true)
	if !h.mayActivate("a", "c", id) {
		t.Fatal("b released at a kept table in which it does not own the actor, yet a must wait")
	}
}

// TestHandoffKeepsItsCountAsAScanWould: settled, kept as a count per entry,
// agrees with a scan of every member after any sequence of releases, host
// departures and new tables; and each member's cell holds its release,
// whether a new snapshot carried it over or looked it up.
func TestHandoffKeepsItsCountAsAScanWould(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := hostIDs(8)
	var h handoff
	gen := uint64(1)
	h.push(NewTable(gen, membersOf(ids, "c")), nil)
	for step := range 5000 {
		id := ids[rng.IntN(len(ids))]
		switch rng.IntN(10) {
		case 0: // a new table of any members: some stay, some go, some come
			gen++
			var ms []HostID
			for _, id := range ids {
				if rng.IntN(3) > 0 {
					ms = append(ms, id)
				}
			}
			if len(ms) == 0 {
				ms = ids[:1]
			}
			h.push(NewTable(gen, membersOf(ms, "c")), nil)
		case 1:
			h.setReleased(id, 0, false)
		case 2: // a settled record, of the current generation or the one before
			s := gen - uint64(rng.IntN(2))
			var settled []HostID
			for _, m := range h.current().Members() {
				if rng.IntN(4) > 0 && h.released[m.ID] < s {
					settled = append(settled, m.ID)
				}
			}
			h.settle(s, settled)
			for _, id := range settled {
				if h.released[id] < s || h.snap.releasedAt(id) < s {
					t.Fatalf("step %d: %s counts as released at %d (cell %d) after the settled record of %d",
						step, id, h.released[id], h.snap.releasedAt(id), s)
				}
			}
		default:
			h.setReleased(id, gen-uint64(rng.IntN(2)), true)
		}
		scan, stale := true, int64(0)
		for i, m := range h.current().Members() {
			if c := h.cells[i].Load(); c != h.released[m.ID] {
				t.Fatalf("step %d: %s's cell says %d, its release is %d", step, m.ID, c, h.released[m.ID])
			}
			if r := h.released[m.ID]; r < gen {
				scan = false
				if r < h.history[0].Generation() {
					stale++
				}
			}
		}
		if h.settled() != scan {
			t.Fatalf("step %d: settled() = %v, a scan says %v", step, h.settled(), scan)
		}
		if h.stale.Load() != stale {
			t.Fatalf("step %d: %d stale members counted, a scan says %d", step, h.stale.Load(), stale)
		}
	}
}

// mayActivateByScan is the handoff rule as written: every member that has
// not released must not own the actor in any kept table from the one in
// effect at its release on (and must have released within them).
func (h *handoff) mayActivateByScan(self HostID, typ ActorType, id ActorID) bool {
	cur := h.current()
	for _, m := range cur.Members() {
		r := h.released[m.ID]
		if m.ID == self || r >= cur.Generation() {
			continue
		}
		first := -1
		for i, t := range h.history {
			if t.Generation() <= r {
				first = i
			}
		}
		if first < 0 {
			return false
		}
		for _, t := range h.history[first:] {
			if o, ok := t.Owner(typ, id); ok && o.ID == m.ID {
				return false
			}
		}
	}
	return true
}

// TestHandoffPerActorCheckAgreesWithTheRule: mayActivate, which looks up the
// actor's owners only, answers as the rule's scan over every member does,
// over random tables, releases and actors.
func TestHandoffPerActorCheckAgreesWithTheRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids := hostIDs(6)
	seen := map[bool]int{}
	for round := range 200 {
		var h handoff
		gen := uint64(10)
		for range 1 + rng.IntN(historyLen+4) {
			n := 1 + rng.IntN(len(ids))
			ms := membersOf(ids[:n], "c")
			for i := range ms {
				ms[i].Draining = rng.IntN(5) == 0
			}
			h.push(NewTable(gen, ms), nil)
			gen += uint64(1 + rng.IntN(3))
		}
		oldest := h.history[0].Generation()
		for _, id := range ids {
			if rng.IntN(4) > 0 {
				h.setReleased(id, oldest-2+uint64(rng.IntN(int(gen-oldest)+2)), true)
			}
		}
		cur := h.current()
		for i := range 50 {
			actor := ActorID(fmt.Sprint("x", i))
			o, ok := cur.Owner("c", actor)
			if !ok {
				continue
			}
			got, want := h.mayActivate(o.ID, "c", actor), h.mayActivateByScan(o.ID, "c", actor)
			if got != want {
				t.Fatalf("round %d, actor %s: mayActivate = %v, the rule says %v", round, actor, got, want)
			}
			seen[got]++
		}
	}
	if seen[true] < 100 || seen[false] < 100 {
		t.Fatalf("the cases were one-sided: %v", seen)
	}
}

// After a settled generation s, the tables before the one in effect at s
// decide nothing: trim drops them, and every answer stays the same.
func TestTrimKeepsEveryAnswer(t *testing.T) {
	tables := []*Table{
		NewTable(10, members("a", "b")),
		NewTable(20, members("a", "b", "c")),
		NewTable(30, members("a", "b", "c", "d")),
		NewTable(40, members("b", "c", "d", "e")),
	}
	var full, trimmed handoff
	for _, tab := range tables {
		full.push(tab, nil)
		trimmed.push(tab, nil)
	}
	// Settled at 25: every member of table 20 released at 20 or later.
	// d and e joined after it and released at their joins.
	released := map[HostID]uint64{"b": 25, "c": 25, "d": 30, "e": 40}
	full.resetReleased(released)
	trimmed.resetReleased(released)
	trimmed.trim(25)
	if got := trimmed.history[0].Generation(); len(trimmed.history) != 3 || got != 20 {
		t.Fatalf("trimmed to %d tables from generation %d, want 3 from 20 (the one in effect at 25)", len(trimmed.history), got)
	}
	answers := map[bool]int{}
	for _, self := range []HostID{"b", "c", "d", "e"} {
		for i := range 2000 {
			id := ActorID(fmt.Sprint("x", i))
			if o, _ := tables[3].Owner("c", id); o.ID != self {
				continue
			}
			f, tr := full.mayActivate(self, "c", id), trimmed.mayActivate(self, "c", id)
			if f != tr {
				t.Fatalf("%s, actor %s: %v with every table, %v trimmed", self, id, f, tr)
			}
			answers[f]++
		}
	}
	if answers[true] == 0 || answers[false] == 0 {
		t.Fatalf("answers %v: the case should have actors free to take and actors still held", answers)
	}
	trimmed.trim(5) // nothing before the oldest table to drop
	if len(trimmed.history) != 3 {
		t.Fatalf("trim(5) left %d tables", len(trimmed.history))
	}
}

// TestImpliedReleasesAreTrue checks releaseBounds against what the tables
// say: over random histories of joins (of random types), drains and
// departures, whenever a member's release at an earlier table r implies its
// release at the current table g, every actor it owned in any table from r
// to g is its own in g — what it may still hold is its own — and a draining
// member owned nothing from r on.
func TestImpliedReleasesAreTrue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	type rec struct {
		m              Member
		since, changed uint64
	}
	allTypes := []ActorType{"x", "y", "z"}
	actors := make([]ActorID, 150)
	for i := range actors {
		actors[i] = ActorID(fmt.Sprint("a", i))
	}
	implied, checked := 0, 0
	for run := range 40 {
		live := map[HostID]rec{}
		var tables []*Table
		var revs []map[HostID]memberRevs
		for rev := uint64(1); rev <= 30; rev++ {
			id := HostID(fmt.Sprint("h", rng.IntN(8)))
			r, in := live[id]
			switch {
			case !in || rng.IntN(5) == 0: // a join, or a new incarnation
				var types []ActorType
				for _, typ := range allTypes {
					if rng.IntN(2) == 0 {
						types = append(types, typ)
					}
				}
				live[id] = rec{Member{ID: id, Types: types}, rev, rev}
			case !r.m.Draining && rng.IntN(2) == 0:
				r.m.Draining, r.changed = true, rev
				live[id] = r
			default:
				delete(live, id)
			}
			var ms []Member
			rv := map[HostID]memberRevs{}
			for id, r := range live {
				ms = append(ms, r.m)
				rv[id] = memberRevs{since: r.since, changed: r.changed}
			}
			tables = append(tables, NewTable(rev, ms))
			revs = append(revs, rv)
		}
		for g, tg := range tables {
			bound := releaseBounds(tg, revsOf(tg, revs[g]))
			for i, m := range tg.Members() {
				for r := g - 1; r >= 0; r-- {
					if prev, ok := revs[r][m.ID]; !ok || prev.since != revs[g][m.ID].since {
						break // another incarnation, or not a member: it never released there
					}
					if tables[r].Generation() < bound[i] {
						break
					}
					implied++
					for q := r; q <= g; q++ {
						for _, typ := range allTypes {
							for _, a := range actors {
								oq, ok := tables[q].Owner(typ, a)
								if !ok || oq.ID != m.ID {
									continue
								}
								checked++
								if og, ok := tg.Owner(typ, a); !ok || og.ID != m.ID {
									t.Fatalf("run %d: %s's release at %d implies %d, but it owned %s/%s at %d and does not at %d",
										run, m.ID, tables[r].Generation(), tg.Generation(), typ, a, tables[q].Generation(), tg.Generation())
								}
							}
						}
					}
				}
			}
		}
	}
	if implied < 100 || checked < 1000 {
		t.Fatalf("the histories implied %d releases over %d owned actors: too few to check anything", implied, checked)
	}
	t.Logf("%d implied releases, %d owned actors checked", implied, checked)
}

// TestAReleaseImpliesTheNextOnlyWhenNothingWasTaken: a join takes actors
// from the hosts of its types alone, a drain from the drainer alone, and a
// departure from nobody.
func TestAReleaseImpliesTheNextOnlyWhenNothingWasTaken(t *testing.T) {
	x := func(id HostID, types ...ActorType) Member { return Member{ID: id, Types: types} }
	revs := map[HostID]memberRevs{"a": {1, 1}, "b": {2, 2}, "c": {3, 3}}
	var h handoff
	push(&h, NewTable(3, []Member{x("a", "p"), x("b", "p"), x("c", "q")}), revs)
	h.resetReleased(map[HostID]uint64{"a": 3, "b": 3, "c": 3})

	revs["d"] = memberRevs{4, 4} // d joins, serving p
	push(&h, NewTable(4, []Member{x("a", "p"), x("b", "p"), x("c", "q"), x("d", "p")}), revs)
	h.setReleased("d", 4, true) // a live join is its own release
	for id, want := range map[HostID]bool{"a": false, "b": false, "c": true, "d": true} {
		if got := h.isReleased(id); got != want {
			t.Errorf("after d joins p: %s released = %v, want %v", id, got, want)
		}
	}
	h.setReleased("a", 4, true)
	h.setReleased("b", 4, true)

	revs["b"] = memberRevs{2, 5} // b drains
	drained := x("b", "p")
	drained.Draining = true
	push(&h, NewTable(5, []Member{x("a", "p"), drained, x("c", "q"), x("d", "p")}), revs)
	for id, want := range map[HostID]bool{"a": true, "b": false, "c": true, "d": true} {
		if got := h.isReleased(id); got != want {
			t.Errorf("after b drains: %s released = %v, want %v", id, got, want)
		}
	}
	h.setReleased("b", 5, true)
	if !h.settled() {
		t.Fatal("not settled once the drainer released")
	}

	delete(revs, "b") // b leaves
	push(&h, NewTable(6, []Member{x("a", "p"), x("c", "q"), x("d", "p")}), revs)
	if !h.settled() {
		t.Fatal("a departure took something from a host that stayed")
	}
}

// revsOf is revs in the order of t.Members, as handoff.push takes them.
func revsOf(t *Table, revs map[HostID]memberRevs) []memberRevs {
	out := make([]memberRevs, len(t.Members()))
	for i, m := range t.Members() {
		out[i] = revs[m.ID]
	}
	return out
}

// push pushes t onto h with the members' revisions revs.
func push(h *handoff, t *Table, revs map[HostID]memberRevs) { h.push(t, revsOf(t, revs)) }

// isReleased reports whether id has released at the current generation.
func (s *snap) isReleased(id HostID) bool {
	if s.current() == nil {
		return false
	}
	released, _ := s.counts(s.releasedAt(id))
	return released
}
