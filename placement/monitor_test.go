package placement_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Every protocol-2 host is watched by exactly MonitorPeers others, and
// protocol-1 hosts (which renew their own records) by none.
func TestWatchedFormsARing(t *testing.T) {
	var ms []placement.Member
	for i := range 50 {
		ms = append(ms, placement.Member{ID: placement.HostID(fmt.Sprintf("h%d", i)), Protocol: 2})
	}
	ms = append(ms, placement.Member{ID: "old", Protocol: 1})
	tab := placement.NewTable(1, ms)
	watchers := map[placement.HostID]int{}
	for _, m := range ms {
		got := placement.Watched(tab, m.ID, placement.MonitorPeers)
		if len(got) != placement.MonitorPeers {
			t.Fatalf("%s watches %v, want %d hosts", m.ID, got, placement.MonitorPeers)
		}
		for _, id := range got {
			if id == m.ID || id == "old" {
				t.Fatalf("%s watches %s", m.ID, id)
			}
			if m.Protocol >= 2 {
				watchers[id]++
			}
		}
	}
	for _, m := range ms[:50] {
		if watchers[m.ID] != placement.MonitorPeers {
			t.Fatalf("%s has %d monitors, want %d", m.ID, watchers[m.ID], placement.MonitorPeers)
		}
	}
	if got := placement.Watched(placement.NewTable(1, ms[:1]), "h0", 2); len(got) != 0 {
		t.Fatalf("a lone host watches %v", got)
	}
	if got := placement.Watched(placement.NewTable(1, ms[:2]), "h0", 2); len(got) != 1 || got[0] != "h1" {
		t.Fatalf("with one other host, h0 watches %v", got)
	}
}

// A monitor started after a host crashed removes its record from the
// liveness key's expiry marker, and leaves the record of a live host, and
// records that renew themselves, alone.
func TestAMonitorRemovesOnlyDeadHosts(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	join(t, js, kv, "a", nil)
	join(t, js, kv, "b", nil)
	dead := join(t, js, kv, "c", nil)
	old := &pb.HostRecord{HostId: "old", Subject: "troupe.host.old", ActorTypes: []string{"counter"}}
	if _, err := kv.Create(context.Background(), placement.HostKey("old"), mustMarshal(t, old), jetstream.KeyTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A host that announces protocol 2 but renews its record itself, as
	// builds before liveness keys did: changed_revision is set.
	renewing := &pb.HostRecord{HostId: "renewing", Subject: "troupe.host.renewing", ActorTypes: []string{"counter"}, Protocol: protocol.Version, ChangedRevision: 1}
	if _, err := kv.Create(context.Background(), placement.HostKey("renewing"), mustMarshal(t, renewing), jetstream.KeyTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitTable(t, w, "five hosts", members(5))
	dead.Stop()
	time.Sleep(testTTL + 500*time.Millisecond) // c's liveness key expires unseen

	purged := make(chan placement.HostID, 4)
	for _, id := range []placement.HostID{"a", "b"} {
		m := placement.StartMonitor(kv, w, id, placement.MonitorConfig{OnPurge: func(id placement.HostID) { purged <- id }})
		t.Cleanup(m.Stop)
	}
	tab := waitTable(t, w, "c's removal", members(4))
	if _, ok := tab.Member("c"); ok {
		t.Fatalf("c is still a member: %v", tab.Members())
	}
	if id := <-purged; id != "c" {
		t.Fatalf("a monitor purged %s", id)
	}
	time.Sleep(2 * testTTL) // a and b keep renewing; old and renewing renew their own records
	if got := len(w.Table().Members()); got != 4 {
		t.Fatalf("%d members after the monitors ran, want a, b, old and renewing", got)
	}
	select {
	case id := <-purged:
		if id != "c" {
			t.Fatalf("a monitor purged %s", id)
		}
	default:
	}
}

// A host that restarts with the same id after a crash replaces its earlier
// incarnation's record at once when that incarnation's liveness key has
// expired, without waiting for a monitor: a change of meaning, so a new
// generation.
func TestARestartedHostReplacesItsDeadRecord(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	stale := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i0", Protocol: protocol.Version}
	if _, err := kv.Create(context.Background(), placement.HostKey("a"), mustMarshal(t, stale)); err != nil {
		t.Fatal(err)
	}
	before := waitTable(t, w, "the stale record", members(1))
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	waitRevision(t, w, l.Revision())
	if g := w.Table().Generation(); g <= before.Generation() || g != l.Revision() {
		t.Fatalf("generation %d after the restart, want the join's revision %d (stale record at %d)", g, l.Revision(), before.Generation())
	}
	if recs := w.Records(); len(recs) != 1 || recs[0].GetIncarnation() != "i1" {
		t.Fatalf("records after the restart: %v", recs)
	}
}

// When a host crashes together with both hosts that monitor it, the ring
// closes over them: their own monitors remove them, and the host after them
// on the ring takes over the watch and removes it too.
func TestTheRingClosesOverCrashedMonitors(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	leases := map[placement.HostID]*placement.Lease{}
	var ids []placement.HostID
	for i := range 5 {
		id := placement.HostID(fmt.Sprintf("r%d", i))
		ids = append(ids, id)
		leases[id] = join(t, js, kv, string(id), nil)
	}
	tab := waitTable(t, w, "five hosts", members(5))
	// victim, the hosts that watch it, and the hosts that watch those:
	// the ring has to close over two layers of dead monitors.
	victim := ids[0]
	crashed := map[placement.HostID]bool{victim: true}
	layer := []placement.HostID{victim}
	for range 2 {
		var next []placement.HostID
		for _, id := range ids {
			for _, watched := range placement.Watched(tab, id, placement.MonitorPeers) {
				if slices.Contains(layer, watched) && !crashed[id] {
					crashed[id] = true
					next = append(next, id)
				}
			}
		}
		layer = next
	}
	if want := 1 + 2*placement.MonitorPeers; len(crashed) != want {
		t.Fatalf("crashing %s and two layers of its monitors crashes %d hosts, want %d", victim, len(crashed), want)
	}
	for _, id := range ids {
		if crashed[id] {
			leases[id].Stop()
			continue
		}
		m := placement.StartMonitor(kv, w, id, placement.MonitorConfig{})
		t.Cleanup(m.Stop)
	}
	start := time.Now()
	after := waitTable(t, w, "the crashed hosts' removal", members(2))
	for id := range crashed {
		if _, ok := after.Member(id); ok {
			t.Fatalf("%s is still a member", id)
		}
	}
	t.Logf("%d crashed hosts removed %v after the crash", len(crashed), time.Since(start))
}

// A release notice can reach a host before the table it was sent for: the
// sender applied that table first. The notice then waits for the table and
// counts from it, so the gainer does not wait for the settled record.
func TestAReleaseNoticeAheadOfTheTableCountsOnceTheTableArrives(t *testing.T) {
	ctx := context.Background()
	_, kv := bucket(t)
	w := watch(t, kv)
	// Records written by hand, without leases: nothing else writes to the
	// bucket, so the next write's revision is known before it is made.
	put := func(id, inc string) uint64 {
		t.Helper()
		rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}, Incarnation: inc, Protocol: protocol.Version}
		rev, err := kv.Create(ctx, placement.HostKey(placement.HostID(id)), mustMarshal(t, rec))
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put("x", "ix")
	before := waitTable(t, w, "x's record", members(1))
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := status.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq + 1

	w.NoteRelease("x", "ix", next) // x applied g's join and released
	if rev := put("g", "ig"); rev != next {
		t.Fatalf("g's record written at revision %d, want %d", rev, next)
	}
	tab := waitTable(t, w, "g's record", members(2))
	var moved placement.ActorID
	for i := 0; moved == ""; i++ {
		id := placement.ActorID(fmt.Sprintf("a%d", i))
		if o, _ := before.Owner("counter", id); o.ID == "x" {
			if o, _ := tab.Owner("counter", id); o.ID == "g" {
				moved = id
			}
		}
	}
	if !w.MayActivate("g", tab, "counter", moved) {
		t.Fatal("x's notice, sent ahead of the table, did not let g activate the actor it gained")
	}
}

// A release notice lets a host activate an actor it gained before the
// release record reaches its watch; a notice of another incarnation, or of
// a generation past the watcher's table (until the table reaches it),
// changes nothing.
func TestAReleaseNoticeCountsAsTheRecord(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	x := &pb.HostRecord{HostId: "x", Subject: "troupe.host.x", ActorTypes: []string{"counter"}, Incarnation: "ix"}
	lx, err := placement.Join(context.Background(), js, kv, x, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lx.Stop)
	before := waitTable(t, w, "x's join", members(1))
	if err := placement.Release(context.Background(), js, kv, "x", "ix", before.Generation(), time.Minute); err != nil {
		t.Fatal(err)
	}
	join(t, js, kv, "g", nil)
	tab := waitTable(t, w, "g's join", members(2))
	var moved placement.ActorID
	for i := 0; moved == ""; i++ {
		id := placement.ActorID(fmt.Sprintf("a%d", i))
		if o, _ := tab.Owner("counter", id); o.ID == "g" {
			moved = id
		}
	}
	may := func() bool { return w.MayActivate("g", tab, "counter", moved) }
	if may() {
		t.Fatal("g may activate an actor x has not released")
	}
	w.NoteRelease("x", "other", tab.Generation())
	w.NoteRelease("x", "ix", tab.Generation()+1)
	if may() {
		t.Fatal("a notice of another incarnation, or of a generation past the table, let g activate")
	}
	changed := w.Changed()
	w.NoteRelease("x", "ix", tab.Generation())
	select {
	case <-changed:
	default:
		t.Fatal("the notice woke no waiter")
	}
	if !may() {
		t.Fatal("x's release notice did not let g activate the actor it gained")
	}
}
