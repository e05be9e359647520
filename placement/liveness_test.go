package placement_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// liveness creates the liveness bucket that goes with the default
// membership bucket.
func liveness(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	live, err := placement.EnsureLivenessBucket(context.Background(), js, placement.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return live
}

// lossTTL is the lease TTL of the tests that lose the liveness bucket: a
// monitor gives a key lost with it the TTL before it looks again, and a
// live host writes its key again within a few retry intervals (TTL/8 each),
// which must stay well inside that on a loaded machine.
const lossTTL = 2 * time.Second

// ensureLiveness is a LeaseConfig.EnsureLiveness for the default buckets.
func ensureLiveness(js jetstream.JetStream) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := placement.EnsureLivenessBucket(ctx, js, placement.BucketConfig{})
		return err
	}
}

// joinLive joins id with a lease of ttl and its liveness key in the
// liveness bucket, as hosts do, creating the bucket again whenever it finds
// it gone.
func joinLive(t *testing.T, js jetstream.JetStream, kv, live jetstream.KeyValue, id string, ttl time.Duration, onLost func(error)) *placement.Lease {
	t.Helper()
	rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}, Incarnation: "inc-" + id}
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: ttl, Liveness: live, EnsureLiveness: ensureLiveness(js)}, onLost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

func lastSeq(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), protocol.KVStream(bucket))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// A host renews its lease in the liveness bucket, in memory, and writes
// nothing to the membership bucket between its join and its leave; there it
// keeps its incarnation under alive.<id> without a TTL, which tells monitors
// that look for liveness keys in the membership bucket that it lives.
func TestRenewalsStayOutOfTheMembershipBucket(t *testing.T) {
	js, kv := bucket(t)
	live := liveness(t, js)
	s, err := js.Stream(context.Background(), protocol.KVStream(live.Bucket()))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().Config.Storage; st != jetstream.MemoryStorage || live.Bucket() != "troupe_placement_alive" {
		t.Fatalf("liveness bucket %s stored in %v, want troupe_placement_alive in memory", live.Bucket(), st)
	}
	renewed, onValid := renewals()
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL, Liveness: live, OnValid: onValid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	e, err := kv.Get(context.Background(), placement.HostKey("a"))
	if err != nil {
		t.Fatal(err)
	}
	stored := new(pb.HostRecord)
	if err := proto.Unmarshal(e.Value(), stored); err != nil {
		t.Fatal(err)
	}
	if stored.GetLivenessBucket() != live.Bucket() || stored.GetLeaseTtlMs() != uint64(testTTL.Milliseconds()) {
		t.Fatalf("record names liveness bucket %q and TTL %d ms, want %q and %d", stored.GetLivenessBucket(), stored.GetLeaseTtlMs(), live.Bucket(), testTTL.Milliseconds())
	}
	stub, err := kv.Get(context.Background(), placement.AliveKey("a"))
	if err != nil || string(stub.Value()) != "i1" {
		t.Fatalf("alive.a in the membership bucket: %v %v, want i1", stub, err)
	}
	members, alive := lastSeq(t, js, kv.Bucket()), lastSeq(t, js, live.Bucket())
	<-renewed // the join
	for range 3 {
		<-renewed
	}
	if got := lastSeq(t, js, kv.Bucket()); got != members {
		t.Fatalf("the membership bucket's stream moved from %d to %d over three renewals", members, got)
	}
	if got := lastSeq(t, js, live.Bucket()); got < alive+3 {
		t.Fatalf("the liveness bucket's stream moved from %d to %d over three renewals", alive, got)
	}
	if err := l.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, b := range []jetstream.KeyValue{kv, live} {
		if e, err := b.Get(context.Background(), placement.AliveKey("a")); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("alive.a in %s after the leave: %v %v", b.Bucket(), e, err)
		}
	}
}

// Hosts that keep their liveness keys in the liveness bucket and hosts
// that keep them in the membership bucket (before the liveness bucket)
// share a bucket through a rolling upgrade: each kind keeps the other from
// taking its id, and monitors remove crashed hosts of either kind, with the
// new kind's alive.<id> in the membership bucket.
func TestBothLivenessLayoutsWorkSideBySide(t *testing.T) {
	js, kv := bucket(t)
	live := liveness(t, js)
	w := watch(t, kv)
	ctx := context.Background()

	oldRec := &pb.HostRecord{HostId: "old", Subject: "troupe.host.old", ActorTypes: []string{"counter"}, Incarnation: "o1"}
	old, err := placement.Join(ctx, js, kv, oldRec, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Stop()
	newRec := &pb.HostRecord{HostId: "new", Subject: "troupe.host.new", ActorTypes: []string{"counter"}, Incarnation: "n1"}
	nw, err := placement.Join(ctx, js, kv, newRec, placement.LeaseConfig{TTL: testTTL, Liveness: live}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Stop()
	// Each id is held against a host of the other layout.
	other := &pb.HostRecord{HostId: "old", Subject: "x", Incarnation: "o2"}
	if _, err := placement.Join(ctx, js, kv, other, placement.LeaseConfig{TTL: testTTL, Liveness: live}, nil); !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("a join of the new layout over a live host of the old: %v, want ErrHostIDInUse", err)
	}
	other = &pb.HostRecord{HostId: "new", Subject: "x", Incarnation: "n2"}
	if _, err := placement.Join(ctx, js, kv, other, placement.LeaseConfig{TTL: testTTL}, nil); !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("a join of the old layout over a live host of the new: %v, want ErrHostIDInUse", err)
	}

	// Four monitoring hosts of the new layout, then both crash.
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		joinLive(t, js, kv, live, id, testTTL, nil)
	}
	waitTable(t, w, "six hosts", members(6))
	for _, id := range []placement.HostID{"m1", "m2", "m3", "m4"} {
		m := placement.StartMonitor(kv, w, id, placement.MonitorConfig{Liveness: live})
		t.Cleanup(m.Stop)
	}
	time.Sleep(2 * testTTL) // renewals of both kinds keep both
	if n := len(w.Table().Members()); n != 6 {
		t.Fatalf("%d members while all renew, want 6", n)
	}
	old.Stop()
	nw.Stop()
	tab := waitTable(t, w, "the crashed hosts' removal", members(4))
	for _, id := range []placement.HostID{"old", "new"} {
		if _, ok := tab.Member(id); ok {
			t.Fatalf("%s is still a member", id)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := kv.Get(ctx, placement.AliveKey("new"))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alive.new in the membership bucket after its host's removal: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A liveness key that vanished with its bucket, without an expiry marker,
// may belong to a host still acting on its lease: its monitor removes the
// host only once the host's lease TTL has passed since, and a live host
// writes its key again (creating the bucket) before that.
func TestAKeyLostWithItsBucketGetsItsHostsTTL(t *testing.T) {
	js, kv := bucket(t)
	live := liveness(t, js)
	w := watch(t, kv)
	leases := map[placement.HostID]*placement.Lease{}
	monitors := map[placement.HostID]chan *placement.Monitor{}
	for _, id := range []placement.HostID{"a", "b", "c"} {
		monitors[id] = make(chan *placement.Monitor, 1)
		leases[id] = joinLive(t, js, kv, live, string(id), lossTTL, rewatchOnLost(monitors[id]))
	}
	tab := waitTable(t, w, "three hosts", members(3))
	purged := make(chan placement.HostID, 3)
	for _, id := range []placement.HostID{"a", "b", "c"} {
		m := placement.StartMonitor(kv, w, id, placement.MonitorConfig{Liveness: live, OnPurge: func(id placement.HostID) { purged <- id }})
		t.Cleanup(m.Stop)
		monitors[id] <- m
	}
	// The host whose monitor survives crashes as its bucket is lost.
	var victim placement.HostID
	for _, id := range []placement.HostID{"a", "b", "c"} {
		if placement.Watched(tab, id, placement.MonitorPeers)[0] == "c" {
			victim = "c"
		}
	}
	if victim == "" {
		t.Fatal("nobody monitors c")
	}
	leases[victim].Stop()
	lost := time.Now()
	if err := js.DeleteKeyValue(context.Background(), live.Bucket()); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-purged:
		if id != victim {
			t.Fatalf("a monitor removed %s, a live host", id)
		}
		if since := time.Since(lost); since < lossTTL {
			t.Fatalf("%s removed %v after its key was lost, before its lease TTL %v", id, since, lossTTL)
		}
		t.Logf("%s removed %v after its key was lost", id, time.Since(lost))
	case <-time.After(15 * time.Second):
		t.Fatalf("%s was not removed", victim)
	}
	time.Sleep(lossTTL)
	after := w.Table()
	for _, id := range []placement.HostID{"a", "b"} {
		if _, ok := after.Member(id); !ok {
			t.Fatalf("%s left the table after its liveness bucket was lost", id)
		}
		if !leases[id].Valid() {
			t.Fatalf("%s's lease is not valid again", id)
		}
	}
	select {
	case id := <-purged:
		t.Fatalf("a monitor removed %s too", id)
	default:
	}
}

// A single server keeps no memory stream across a restart: the liveness
// bucket and its keys are gone when it comes back. The hosts find their
// keys gone, create the bucket and their keys again, and stay in the table;
// no monitor removes them.
func TestLeasesOutliveARestartOfTheServer(t *testing.T) {
	dir, addr := t.TempDir(), natstest.FreeAddr(t)
	s := natstest.ServerAt(t, dir, addr)
	nc := natstest.Connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := placement.EnsureBucket(context.Background(), js, placement.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	live := liveness(t, js)
	w := watch(t, kv)
	w.FollowReconnects(nc)
	leases := map[placement.HostID]*placement.Lease{}
	monitors := map[placement.HostID]chan *placement.Monitor{}
	purged := make(chan placement.HostID, 2)
	for _, id := range []placement.HostID{"a", "b"} {
		monitors[id] = make(chan *placement.Monitor, 1)
		leases[id] = joinLive(t, js, kv, live, string(id), lossTTL, rewatchOnLost(monitors[id]))
	}
	before := waitTable(t, w, "two hosts", members(2))
	for _, id := range []placement.HostID{"a", "b"} {
		m := placement.StartMonitor(kv, w, id, placement.MonitorConfig{Liveness: live, OnPurge: func(id placement.HostID) { purged <- id }})
		t.Cleanup(m.Stop)
		monitors[id] <- m
	}

	s.Shutdown()
	s.WaitForShutdown()
	s = natstest.ServerAt(t, dir, addr)
	deadline := time.Now().Add(15 * time.Second)
	for !leases["a"].Valid() || !leases["b"].Valid() || !exists(js, live.Bucket()) {
		if time.Now().After(deadline) {
			t.Fatal("the leases were not taken again after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(lossTTL + time.Second) // past the monitors' grace
	select {
	case id := <-purged:
		t.Fatalf("a monitor removed %s after the restart", id)
	default:
	}
	if after := w.Table(); len(after.Members()) != 2 || after.Generation() != before.Generation() {
		t.Fatalf("after the restart: %d members at generation %d, want 2 at %d", len(after.Members()), after.Generation(), before.Generation())
	}
}

// rewatchOnLost is an onLost that makes the host's monitor, once sent on
// m, watch again, as a host does.
func rewatchOnLost(m chan *placement.Monitor) func(error) {
	var mon *placement.Monitor
	return func(error) {
		if mon == nil {
			select {
			case mon = <-m:
			default:
				return
			}
		}
		mon.Rewatch()
	}
}

// exists reports whether bucket's stream exists.
func exists(js jetstream.JetStream, bucket string) bool {
	_, err := js.Stream(context.Background(), protocol.KVStream(bucket))
	return err == nil
}

// lose deletes the liveness bucket and creates it again, empty: what a
// single server's restart does to it.
func lose(t *testing.T, js jetstream.JetStream, live jetstream.KeyValue) {
	t.Helper()
	if err := js.DeleteKeyValue(context.Background(), live.Bucket()); err != nil {
		t.Fatal(err)
	}
	liveness(t, js)
}

// A process that joins under an id whose liveness key was lost with its
// bucket, while the record of the incarnation that held it stands, cannot
// tell that incarnation from a live one: it writes that incarnation's key
// again with its lease TTL and is refused until the server expires it.
func TestAJoinWaitsOutAnIncarnationWhoseKeyWasLost(t *testing.T) {
	js, kv := bucket(t)
	live := liveness(t, js)
	first := joinLive(t, js, kv, live, "a", lossTTL, nil)
	first.Stop() // as if cut off: it may act until its lease runs out
	lose(t, js, live)

	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "second"}
	cfg := placement.LeaseConfig{TTL: testTTL, Liveness: live}
	_, err := placement.Join(context.Background(), js, kv, rec, cfg, nil)
	if !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("join over a lost key: %v, want ErrHostIDInUse", err)
	}
	refused := time.Now()
	if e, err := live.Get(context.Background(), placement.AliveKey("a")); err != nil || string(e.Value()) != "inc-a" {
		t.Fatalf("alive.a after the refused join: %v %v, want the first incarnation's", e, err)
	}
	for {
		l, err := placement.Join(context.Background(), js, kv, rec, cfg, nil)
		if err == nil {
			t.Cleanup(l.Stop)
			break
		}
		if !errors.Is(err, placement.ErrHostIDInUse) || time.Since(refused) > 15*time.Second {
			t.Fatalf("join after the first incarnation's key expired: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if since := time.Since(refused); since < lossTTL-200*time.Millisecond {
		t.Fatalf("joined %v after the refusal, before the first incarnation's TTL %v ran out", since, lossTTL)
	}
}

// A lease that lost its key with the bucket and was given a new
// incarnation (Replace, as a host does) joins again at once: the
// incarnation it gave up is its own and no longer acts.
func TestALeaseDoesNotWaitForTheIncarnationItGaveUp(t *testing.T) {
	js, kv := bucket(t)
	live := liveness(t, js)
	const ttl = 10 * time.Second // what a wait would cost; renewals every 0.5 s find the loss at once
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "first"}
	var l *placement.Lease
	ready := make(chan struct{})
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: ttl, Renew: 500 * time.Millisecond, Liveness: live,
		EnsureLiveness: ensureLiveness(js)}, func(error) {
		<-ready
		next := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "second"}
		l.Replace(next)
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	t.Cleanup(l.Stop)
	lost := time.Now()
	if err := js.DeleteKeyValue(context.Background(), live.Bucket()); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := kv.Get(context.Background(), placement.HostKey("a"))
		if err == nil && l.Valid() {
			stored := new(pb.HostRecord)
			if err := proto.Unmarshal(e.Value(), stored); err != nil {
				t.Fatal(err)
			}
			if stored.GetIncarnation() == "second" {
				break
			}
		}
		if time.Since(lost) > ttl {
			t.Fatalf("not joined again as the second incarnation %v after the loss (a wait for the first takes %v)", time.Since(lost), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("joined again as the second incarnation %v after the loss", time.Since(lost))
}
