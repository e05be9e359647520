package placement_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/troupe-dev/troupe/placement"
)

func TestReminderPullersAreAFewActiveHostsThatDeliverReminders(t *testing.T) {
	var ms []placement.Member
	for i := range 40 {
		ms = append(ms, placement.Member{
			ID:        placement.HostID(fmt.Sprintf("h%d", i)),
			Protocol:  2,
			Reminders: i%2 == 0,
			Draining:  i%3 == 0,
		})
	}
	ms = append(ms, placement.Member{ID: "old", Protocol: 1, Reminders: true})
	eligible := func(id placement.HostID) bool {
		i := slices.IndexFunc(ms, func(m placement.Member) bool { return m.ID == id })
		return i >= 0 && ms[i].Protocol >= 2 && ms[i].Reminders && !ms[i].Draining
	}
	pullers := placement.ReminderPullers(placement.NewTable(1, ms))
	if len(pullers) != placement.ReminderHosts {
		t.Fatalf("pullers %v, want %d", pullers, placement.ReminderHosts)
	}
	for i, id := range pullers {
		if !eligible(id) || slices.Contains(pullers[:i], id) {
			t.Fatalf("pullers %v: %s is not an active host of version 2 delivering reminders, or repeated", pullers, id)
		}
	}
	// A change of other hosts leaves the pullers alone; the loss of a
	// puller replaces it alone.
	var without []placement.Member
	for _, m := range ms {
		if m.ID != "h1" && m.ID != "h2" && m.ID != pullers[0] {
			without = append(without, m)
		}
	}
	if slices.Contains(pullers, "h1") || slices.Contains(pullers, "h2") {
		t.Fatalf("pullers %v include an ineligible host", pullers)
	}
	after := placement.ReminderPullers(placement.NewTable(2, without))
	if len(after) != placement.ReminderHosts || slices.Contains(after, pullers[0]) ||
		!slices.Contains(after, pullers[1]) || !slices.Contains(after, pullers[2]) {
		t.Fatalf("after %s left, pullers %v; before %v", pullers[0], after, pullers)
	}
	// Fewer eligible hosts, fewer pullers; none, none.
	if got := placement.ReminderPullers(placement.NewTable(3, ms[:3])); !slices.Equal(got, []placement.HostID{"h2"}) {
		t.Fatalf("pullers of h0 (draining), h1 (no reminders), h2: %v, want [h2]", got)
	}
	if got := placement.ReminderPullers(placement.NewTable(4, ms[:2])); len(got) != 0 {
		t.Fatalf("pullers of hosts none of which may pull: %v", got)
	}
	if got := placement.ReminderPullers(nil); len(got) != 0 {
		t.Fatalf("pullers of the empty table: %v", got)
	}
}
