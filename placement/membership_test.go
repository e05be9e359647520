package placement_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

const testTTL = time.Second

func bucket(t *testing.T) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	s := natstest.Server(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := placement.EnsureBucket(context.Background(), js, placement.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

func join(t *testing.T, js jetstream.JetStream, kv jetstream.KeyValue, id string, onLost func(error)) *placement.Lease {
	t.Helper()
	rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}}
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, onLost)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

func watch(t *testing.T, kv jetstream.KeyValue) *placement.Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w, err := placement.Watch(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// waitTable waits until w's table satisfies cond.
func waitTable(t *testing.T, w *placement.Watcher, what string, cond func(*placement.Table) bool) *placement.Table {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := w.Changed()
		if tab := w.Table(); cond(tab) {
			return tab
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; table has %d members", what, len(w.Table().Members()))
		}
	}
}

func members(n int) func(*placement.Table) bool {
	return func(tab *placement.Table) bool { return len(tab.Members()) == n }
}

func TestRenewalsLeaveTheGenerationAlone(t *testing.T) {
	js, kv := bucket(t)
	early := watch(t, kv)
	l := join(t, js, kv, "a", nil)
	joined := l.Revision()
	tab := waitTable(t, early, "the join", members(1))
	if tab.Generation() != joined {
		t.Fatalf("generation %d, want the join revision %d", tab.Generation(), joined)
	}
	// Renewals go to the liveness key, which watchers do not follow: three
	// renewal periods on, the watcher has applied nothing new.
	first := l.Renewed()
	time.Sleep(3 * testTTL / placement.DefaultRenewals)
	if !l.Renewed().After(first) {
		t.Fatal("the lease was not renewed")
	}
	if l.Revision() != joined || early.Applied() != joined {
		t.Fatalf("after renewals: record revision %d, watcher applied %d, want both at the join %d", l.Revision(), early.Applied(), joined)
	}
	if got := early.Table(); got != tab {
		t.Fatalf("renewals rebuilt the table (generation %d -> %d)", tab.Generation(), got.Generation())
	}
	// A watcher that starts now sees only the latest renewal, and must agree.
	if late := watch(t, kv); late.Table().Generation() != joined {
		t.Fatalf("late watcher generation %d, want %d", late.Table().Generation(), joined)
	}
}

func waitRevision(t *testing.T, w *placement.Watcher, rev uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.WaitApplied(ctx, rev); err != nil {
		t.Fatalf("revision %d not applied: %v (at %d)", rev, err, w.Applied())
	}
}

func TestExpiredAndDepartedHostsLeaveTheTable(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	a := join(t, js, kv, "a", nil)
	b := join(t, js, kv, "b", nil)
	before := waitTable(t, w, "two hosts", members(2))
	// a monitors b (the only other host): it removes b's record once b's
	// liveness key expires.
	mon := placement.StartMonitor(kv, w, "a", placement.MonitorConfig{})
	t.Cleanup(mon.Stop)

	b.Stop() // b stops renewing, as if it crashed
	stopped := time.Now()
	after := waitTable(t, w, "b's expiry", members(1))
	if gone := time.Since(stopped); gone > testTTL+time.Second {
		t.Errorf("b left %v after its last renewal, want within the TTL %v", gone, testTTL)
	}
	if _, ok := after.Member("b"); ok || after.Generation() <= before.Generation() {
		t.Fatalf("after expiry: b present=%v, generation %d -> %d", ok, before.Generation(), after.Generation())
	}
	if late := watch(t, kv); late.Table().Generation() != after.Generation() {
		t.Fatalf("late watcher generation %d, live watcher %d", late.Table().Generation(), after.Generation())
	}

	if err := a.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	final := waitTable(t, w, "a's departure", members(0))
	if late := watch(t, kv); late.Table().Generation() != final.Generation() || final.Generation() <= after.Generation() {
		t.Fatalf("after leave: generations live %d, late %d, before %d", final.Generation(), late.Table().Generation(), after.Generation())
	}
}

func TestAHostIDIsHeldByOneLiveHost(t *testing.T) {
	js, kv := bucket(t)
	first := join(t, js, kv, "a", nil)
	rec := &pb.HostRecord{HostId: "a", Subject: "x"}
	if _, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil); !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("second join: %v, want ErrHostIDInUse", err)
	}
	if err := first.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	join(t, js, kv, "a", nil) // free again after the leave
}

func TestALostLeaseIsTakenAgain(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	var lost atomic.Int32
	l := join(t, js, kv, "a", func(error) { lost.Add(1) })
	waitTable(t, w, "the join", members(1))
	// The liveness key goes, and the record with it (as a monitor removes
	// it): the next renewal finds the key gone.
	for _, key := range []string{placement.AliveKey("a"), placement.HostKey("a")} {
		if err := kv.Purge(context.Background(), key); err != nil {
			t.Fatal(err)
		}
	}
	purged := waitTable(t, w, "the purge", members(0)).Generation()
	tab := waitTable(t, w, "the rejoin", members(1))
	if lost.Load() == 0 {
		t.Fatal("onLost was not called")
	}
	if tab.Generation() <= purged || l.Revision() < tab.Generation() {
		t.Fatalf("rejoin generation %d, purge %d, lease revision %d", tab.Generation(), purged, l.Revision())
	}
}

func TestRecordsThatAreNotHostsAreIgnored(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	ctx := context.Background()
	for key, val := range map[string][]byte{
		"hosts.junk":     []byte("not a protobuf \xff\xff"),
		"hosts.mismatch": mustMarshal(t, &pb.HostRecord{HostId: "other"}),
		"hosts.bad$id":   mustMarshal(t, &pb.HostRecord{HostId: "bad$id"}),
	} {
		_, _ = kv.Put(ctx, key, val) // keys the bucket refuses are fine too
	}
	join(t, js, kv, "a", nil)
	tab := waitTable(t, w, "the join", members(1))
	if _, ok := tab.Member("a"); !ok {
		t.Fatal("the real host is missing")
	}
}

func mustMarshal(t *testing.T, rec *pb.HostRecord) []byte {
	t.Helper()
	b, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestABucketForAnotherHashIsRefused(t *testing.T) {
	js, kv := bucket(t)
	ctx := context.Background()
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md := st.(*jetstream.KeyValueBucketStatus).Metadata(); md[placement.HashVersionKey] != placement.HashVersion {
		t.Fatalf("bucket metadata %v does not name %s", md, placement.HashVersion)
	}
	// A future troupe relabels the bucket with another placement function.
	if _, err := js.UpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: placement.DefaultBucket, History: 1, LimitMarkerTTL: placement.DefaultMarkerTTL,
		Metadata: map[string]string{placement.HashVersionKey: "troupe-hrw-99"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := placement.Watch(ctx, kv); !errors.Is(err, placement.ErrHashVersion) {
		t.Fatalf("Watch: %v, want ErrHashVersion", err)
	}
	if _, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{}); !errors.Is(err, placement.ErrHashVersion) {
		t.Fatalf("EnsureBucket: %v, want ErrHashVersion", err)
	}
}

// nats-server 2.15 limits a stream that sets no consumer limit to 1,000
// consumers; each host has two on the membership bucket, so the bucket sets
// its own limit, and a host starting (EnsureBucket again) neither resets it
// nor overrides an operator's.
func TestTheBucketAllowsAConsumerPerWatchOfTenThousandHosts(t *testing.T) {
	js, _ := bucket(t)
	ctx := context.Background()
	limit := func() int {
		t.Helper()
		s, err := js.Stream(ctx, protocol.KVStream(placement.DefaultBucket))
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.MaxConsumers
	}
	if got := limit(); got != placement.DefaultMaxConsumers {
		t.Fatalf("a new bucket allows %d consumers, want %d", got, placement.DefaultMaxConsumers)
	}
	// Another host starts, with another marker TTL: the TTL changes, the
	// limit stays.
	if _, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{MarkerTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, protocol.KVStream(placement.DefaultBucket))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.MaxConsumers != placement.DefaultMaxConsumers || cfg.SubjectDeleteMarkerTTL != time.Hour {
		t.Fatalf("after a second EnsureBucket: %d consumers, marker TTL %v; want %d, 1h", cfg.MaxConsumers, cfg.SubjectDeleteMarkerTTL, placement.DefaultMaxConsumers)
	}
	// An operator's limit is kept by default, replaced when asked for.
	cfg := s.CachedInfo().Config
	cfg.MaxConsumers = 5000
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := limit(); got != 5000 {
		t.Fatalf("EnsureBucket changed the operator's limit of 5000 to %d", got)
	}
	if _, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{MaxConsumers: 20_000}); err != nil {
		t.Fatal(err)
	}
	if got := limit(); got != 20_000 {
		t.Fatalf("EnsureBucket with MaxConsumers 20000 left the limit at %d", got)
	}
}

func TestARenewalThatLandedUnansweredIsNotALoss(t *testing.T) {
	js, kv := bucket(t)
	var lost atomic.Int32
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	renewed, onValid := renewals()
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL, OnValid: onValid}, func(error) { lost.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	// Write what a renewal of ours would: the lease never saw its answer.
	alive := protocol.KVSubject(kv.Bucket(), placement.AliveKey("a"))
	ack, err := js.Publish(context.Background(), alive, []byte(rec.GetIncarnation()), jetstream.WithMsgTTL(testTTL))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case <-renewed:
		case <-deadline:
			t.Fatalf("the lease never renewed past the unanswered renewal at %d", ack.Sequence)
		}
		if m, err := js.Stream(context.Background(), "KV_"+kv.Bucket()); err == nil {
			if last, err := m.GetLastMsgForSubject(context.Background(), alive); err == nil && last.Sequence > ack.Sequence {
				break
			}
		}
	}
	if n := lost.Load(); n != 0 {
		t.Fatalf("the lease was declared lost %d times", n)
	}
}

// A try that does not extend the lease is followed by another a retry
// interval (LeaseConfig.Renew) after it started, not a whole period: here
// the try finds that an earlier one of its own landed unanswered, which
// leaves Valid counting from the last answered renewal.
func TestARenewalThatDidNotExtendTheLeaseIsRetriedSoon(t *testing.T) {
	js, kv := bucket(t)
	// A 3 s period and a 1.5 s margin: a retry after (6 − 1.5 − 3)/2 s.
	const ttl, retry = 6 * time.Second, 750 * time.Millisecond
	type try struct {
		start time.Time
		err   error
	}
	tries := make(chan try, 16)
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	cfg := placement.LeaseConfig{TTL: ttl, OnRenew: func(took time.Duration, err error) {
		tries <- try{time.Now().Add(-took), err}
	}}
	l, err := placement.Join(context.Background(), js, kv, rec, cfg, func(err error) { t.Errorf("lease lost: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	alive := protocol.KVSubject(kv.Bucket(), placement.AliveKey("a"))
	if _, err := js.Publish(context.Background(), alive, []byte(rec.GetIncarnation()), jetstream.WithMsgTTL(ttl)); err != nil {
		t.Fatal(err)
	}
	next := func() try {
		select {
		case tr := <-tries:
			return tr
		case <-time.After(2 * ttl):
			t.Fatal("no renewal try")
			return try{}
		}
	}
	first := next()
	if !jsutil.IsConflict(first.err) {
		t.Fatalf("the first renewal after an unanswered one: %v, want a conflict", first.err)
	}
	second := next()
	if second.err != nil {
		t.Fatalf("the retry: %v", second.err)
	}
	// A retry interval after the failed try began, which is a little before
	// its send time: more than half of it (it does not spin), well short of
	// the period (it does not wait for the next renewal).
	if gap := second.start.Sub(first.start); gap < retry/2 || gap >= retry*3/2 {
		t.Fatalf("the retry started %v after the try that did not extend the lease, want %v", gap, retry)
	}
}

// A lease is overdue (and its host not ready, host.Ready) once a renewal and
// the retry after it have failed, before the lease stops being valid, and no
// longer once a renewal gets through.
func TestALeaseIsOverdueOnceARenewalAndItsRetryFailed(t *testing.T) {
	s := natstest.Server(t)
	ctx := context.Background()
	setup, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := placement.EnsureBucket(ctx, setup, placement.BucketConfig{}); err != nil {
		t.Fatal(err)
	}
	proxy, nc := natstest.ConnectProxied(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv := natstest.Members(t, nc)
	// A 2 s period and a retry after (4 − 1 − 2)/2 s.
	const ttl, overdue = 4 * time.Second, 2500 * time.Millisecond
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: ttl}, func(err error) { t.Errorf("lease lost: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	if l.Overdue() {
		t.Fatal("overdue right after the join")
	}
	proxy.Cut()
	sent := l.Renewed()
	for !l.Overdue() {
		if time.Since(sent) > ttl {
			t.Fatal("renewals failed for a whole TTL and the lease was never overdue")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if age := time.Since(sent); age < overdue {
		t.Fatalf("overdue %v after the last renewal was sent, want %v", age, overdue)
	}
	proxy.Restore()
	for l.Overdue() {
		if time.Since(sent) > ttl {
			t.Fatal("still overdue a TTL after the last renewal")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAJoinThatLandedUnansweredIsTakenOver(t *testing.T) {
	js, kv := bucket(t)
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1"}
	var l *placement.Lease
	lost := make(chan struct{}, 1)
	renewed, onValid := renewals()
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL, OnValid: onValid}, func(error) {
		next := proto.Clone(rec).(*pb.HostRecord)
		next.Incarnation = "i2"
		l.Replace(next)
		// The lease's first try to join again lands, but its answer is lost.
		if _, err := kv.Create(context.Background(), placement.AliveKey("a"), []byte(next.GetIncarnation()), jetstream.KeyTTL(testTTL)); err != nil {
			t.Error(err)
		}
		lost <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	if err := kv.Purge(context.Background(), placement.AliveKey("a")); err != nil {
		t.Fatal(err)
	}
	<-lost
	deadline := time.After(5 * time.Second)
	for !l.Valid() {
		select {
		case <-renewed:
		case <-deadline:
			t.Fatal("the lease never took over the record its own join had stored")
		}
	}
}

// renewals returns a LeaseConfig.OnValid and a channel that receives each
// time it is called (dropping calls while one is pending).
func renewals() (<-chan struct{}, func(string, time.Time)) {
	ch := make(chan struct{}, 1)
	return ch, func(string, time.Time) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// A first join whose create landed but whose answer was lost (a link cut
// while joining) is tried again by the host with the same record: the retry
// takes the record over instead of waiting for it to expire, and the
// renewal that takes it over leaves the generation alone.
func TestAJoinRetriedAfterALostAnswerTakesItsRecord(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", ActorTypes: []string{"counter"}, Incarnation: "i1", Protocol: protocol.Version}
	if _, err := kv.Create(context.Background(), placement.AliveKey("a"), []byte("i1"), jetstream.KeyTTL(testTTL)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(context.Background(), placement.HostKey("a"), mustMarshal(t, rec)); err != nil {
		t.Fatal(err)
	}
	before := waitTable(t, w, "the unanswered join", members(1))

	other := proto.Clone(rec).(*pb.HostRecord)
	other.Incarnation = "i0" // a previous process of the same host id
	if _, err := placement.Join(context.Background(), js, kv, other, placement.LeaseConfig{TTL: testTTL}, nil); !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("join of another incarnation: %v, want ErrHostIDInUse", err)
	}

	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatalf("join retried with the same record: %v", err)
	}
	t.Cleanup(l.Stop)
	if !l.Valid() {
		t.Fatal("the lease is not valid after taking its record over")
	}
	waitRevision(t, w, l.Revision())
	if g := w.Table().Generation(); g != before.Generation() {
		t.Fatalf("generation %d after the takeover, want %d", g, before.Generation())
	}
}

func TestWithdrawRemovesOnlyItsOwnIncarnation(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	rec := &pb.HostRecord{HostId: "a", Subject: "troupe.host.a", Incarnation: "i1"}
	l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	waitTable(t, w, "the join", members(1))
	other := proto.Clone(rec).(*pb.HostRecord)
	other.Incarnation = "i2"
	if err := placement.Withdraw(context.Background(), kv, nil, other, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), placement.HostKey("a")); err != nil {
		t.Fatalf("another incarnation's withdraw removed the record: %v", err)
	}
	if err := placement.Withdraw(context.Background(), kv, nil, rec, 0); err != nil {
		t.Fatal(err)
	}
	waitTable(t, w, "the withdrawal", members(0))
}

// TestAppliedEntriesAreInTheTable: whatever revision Applied reports, the
// table already reflects it. A host relies on this at start: it serves calls
// as soon as WaitApplied returns for its own join.
func TestAppliedEntriesAreInTheTable(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	var (
		mu     sync.Mutex
		joined = map[placement.HostID]uint64{} // id -> join revision
		bad    atomic.Value
		stop   = make(chan struct{})
		done   = make(chan struct{})
	)
	go func() { // checks the rule while the joins land
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			applied := w.Applied()
			tab := w.Table()
			mu.Lock()
			for id, rev := range joined {
				if _, ok := tab.Member(id); rev <= applied && !ok {
					bad.CompareAndSwap(nil, fmt.Sprintf("%s joined at %d, applied %d, table generation %d lacks it", id, rev, applied, tab.Generation()))
				}
			}
			mu.Unlock()
			runtime.Gosched()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 100 {
		id := placement.HostID(fmt.Sprintf("h%d", i))
		l := join(t, js, kv, string(id), nil)
		mu.Lock()
		joined[id] = l.Revision()
		mu.Unlock()
		if err := w.WaitApplied(ctx, l.Revision()); err != nil {
			t.Fatal(err)
		}
		if _, ok := w.Table().Member(id); !ok {
			t.Fatalf("WaitApplied returned for %s's join at %d, but the table (generation %d) lacks it", id, l.Revision(), w.Table().Generation())
		}
	}
	close(stop)
	<-done
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
}

// TestWatchersFollowTheirShareOfTheReleases: a collector's watcher
// (WatchReleases) settles on the release records; a host's watcher (Watch)
// ignores them and settles on the settled record alone, once its table has
// reached that generation, and only for the members whose records are
// unchanged since; a router's watcher (WatchMembers) builds the same table
// and never counts a release.
func TestWatchersFollowTheirShareOfTheReleases(t *testing.T) {
	js, kv := bucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec := &pb.HostRecord{HostId: "h1", Subject: "troupe.host.h1", ActorTypes: []string{"counter"}, Incarnation: "i1", Protocol: 2}
	l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	full, err := placement.WatchReleases(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(full.Stop)
	members, err := placement.WatchMembers(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(members.Stop)
	gen := waitTable(t, full, "h1", func(tab *placement.Table) bool { return len(tab.Members()) == 1 }).Generation()
	if err := placement.Release(ctx, js, kv, "h1", "i1", gen, time.Hour); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); full.Settled() < gen; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the collector's watcher never settled at %d", gen)
		}
	}
	// A later host entry shows the other watchers are past the release.
	join(t, js, kv, "h2", nil)
	two := func(tab *placement.Table) bool { return len(tab.Members()) == 2 }
	tab := waitTable(t, members, "h2", two)
	if got := waitTable(t, full, "h2", two).Generation(); got != tab.Generation() {
		t.Fatalf("generations differ: members-only %d, full %d", tab.Generation(), got)
	}
	// A host's watcher that starts now reads h2's record rather than seeing
	// it join, so it cannot count the join as h2's release.
	host := watch(t, kv)
	htab := waitTable(t, host, "h2", two)
	if members.Settled() != 0 || members.MayActivate("h1", tab, "counter", "a") {
		t.Fatalf("the members-only watcher counts releases: settled %d", members.Settled())
	}
	if host.Settled() != 0 {
		t.Fatalf("the host's watcher settled at %d on the release records", host.Settled())
	}

	// The settled record of h1's table, read once the table has two
	// members, counts h1 (unchanged since) but not h2, which joined after.
	settle := func(gen uint64) {
		t.Helper()
		if err := placement.WriteSettled(ctx, kv, "h1", gen); err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx, protocol.SettledKey)
		if err != nil {
			t.Fatal(err)
		}
		waitRevision(t, host, e.Revision())
	}
	settle(gen)
	settle(gen - 1)
	owned := func(id placement.HostID) placement.ActorID {
		for i := 0; ; i++ {
			a := placement.ActorID(fmt.Sprintf("a%d", i))
			if o, _ := tab.Owner("counter", a); o.ID == id {
				return a
			}
		}
	}
	if host.Settled() != 0 {
		t.Fatalf("settled %d at generation %d: a member that joined after the settled table counts as released", host.Settled(), tab.Generation())
	}
	if host.MayActivate("h1", htab, "counter", owned("h1")) {
		t.Fatal("h1 may activate while h2, which joined after the settled table, has not released")
	}
	settle(tab.Generation())
	if host.Settled() != tab.Generation() {
		t.Fatalf("the host's watcher settled at %d after the settled record of %d", host.Settled(), tab.Generation())
	}
	if !host.MayActivate("h1", htab, "counter", owned("h1")) {
		t.Fatal("h1 may not activate its own actor in a settled table")
	}
	e, err := kv.Get(ctx, protocol.SettledKey)
	if err != nil {
		t.Fatal(err)
	}
	got := new(pb.SettledRecord)
	if err := proto.Unmarshal(e.Value(), got); err != nil || got.GetGeneration() != tab.Generation() {
		t.Fatalf("settled record %v (%v), want generation %d: a writer lowered it", got, err, tab.Generation())
	}
}

// TestAJoinCountsAsARelease: an incarnation that joins while a watcher
// looks has released at its join, since it holds nothing yet, so a join
// does not stop the other hosts' activations until the settled record
// comes. A watcher that read the record at its start cannot tell a join
// from a drain, and does not count it.
func TestAJoinCountsAsARelease(t *testing.T) {
	js, kv := bucket(t)
	join2 := func(id string) {
		t.Helper()
		rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}, Incarnation: "i" + id, Protocol: 2}
		l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
	}
	join2("x")
	w := watch(t, kv) // its oldest table has x: a member that never released may hold anything
	join2("g")
	two := waitTable(t, w, "x and g", members(2))
	w.NoteRelease("x", "ix", two.Generation())
	join2("j")
	three := waitTable(t, w, "j's join", members(3))

	// stays: an actor g owns in both tables, and x owned in the first.
	var stays placement.ActorID
	for i := 0; stays == ""; i++ {
		id := placement.ActorID(fmt.Sprintf("a%d", i))
		o2, _ := two.Owner("counter", id)
		o3, _ := three.Owner("counter", id)
		if o2.ID == "g" && o3.ID == "g" {
			stays = id
		}
	}
	if !w.MayActivate("g", three, "counter", stays) {
		t.Fatal("j's join stopped g from activating an actor nobody else can hold")
	}
	late := watch(t, kv)
	tab := waitTable(t, late, "three hosts", members(3))
	if late.MayActivate("g", tab, "counter", stays) {
		t.Fatal("a watcher that read j's record at its start counts it as released")
	}
}

// TestCollectorsInferTheReleasesOfHostsThatLostNothing: once h1 and h2 have
// recorded a release, a collector settles a later table without another
// record from them as long as no change took actors from them — a join of
// another type, a drain, a departure — but not after a join of their type;
// a collector that starts late settles from the records and the settled
// record; and a release record that expired still counts.
func TestCollectorsInferTheReleasesOfHostsThatLostNothing(t *testing.T) {
	js, kv := bucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full, err := placement.WatchReleases(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(full.Stop)
	leases := map[string]*placement.Lease{}
	joinAs := func(id string, types ...string) {
		t.Helper()
		rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: types, Incarnation: "i" + id, Protocol: 2}
		l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
		leases[id] = l
		waitRevision(t, full, l.Revision())
	}
	release := func(id string, ttl time.Duration) {
		t.Helper()
		if err := placement.Release(ctx, js, kv, placement.HostID(id), "i"+id, full.Table().Generation(), ttl); err != nil {
			t.Fatal(err)
		}
	}
	settles := func(w *placement.Watcher, what string) {
		t.Helper()
		gen := w.Table().Generation()
		for deadline := time.Now().Add(10 * time.Second); w.Settled() < gen; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not settled at %d (settled %d)", what, gen, w.Settled())
			}
		}
	}
	implied := func(id string) bool {
		return full.ReleaseImplied(placement.HostID(id), full.Table(), 0) // nothing recorded: never
	}

	joinAs("h1", "counter")
	joinAs("h2", "counter")
	release("h1", time.Hour)
	release("h2", time.Hour)
	settles(full, "both released")
	if implied("h1") {
		t.Fatal("ReleaseImplied without a recorded release")
	}
	recorded := full.Table().Generation()

	joinAs("h3", "other")
	settles(full, "a join of another type")
	if !full.ReleaseImplied("h1", full.Table(), recorded) {
		t.Fatal("h1 must write a release after a join that took nothing from it")
	}

	joinAs("h4", "counter")
	if got := full.Settled(); got >= full.Table().Generation() {
		t.Fatalf("settled at %d after a join of h1's and h2's type, which took actors from both", got)
	}
	if full.ReleaseImplied("h1", full.Table(), recorded) {
		t.Fatal("h1 may skip its release after a join took actors from it")
	}
	release("h1", time.Second) // expires while the test runs
	release("h2", time.Hour)
	settles(full, "h1 and h2 released after h4's join")

	h4 := leases["h4"]
	drained := &pb.HostRecord{HostId: "h4", Subject: "troupe.host.h4", ActorTypes: []string{"counter"}, Incarnation: "ih4", Protocol: 2, State: pb.HostState_HOST_STATE_DRAINING}
	rev, err := h4.Update(ctx, drained)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, full, rev)
	release("h4", time.Hour)
	settles(full, "a drain, released by the drainer alone")
	if err := h4.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitTable(t, full, "h4's departure", members(3))
	settles(full, "a departure")

	// h1's record expires; what it said still holds, for the collector
	// that saw it and, through the settled record, for one that starts
	// after it is gone.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := kv.Get(ctx, placement.ReleaseKey("h1")); errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("h1's release record did not expire")
		}
	}
	joinAs("h5", "other")
	release("h3", time.Hour) // h5 took actors of its type from h3
	settles(full, "a join of another type after h1's record expired")
	late, err := placement.WatchReleases(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(late.Stop)
	if err := placement.WriteSettled(ctx, kv, "h1", full.Settled()); err != nil {
		t.Fatal(err)
	}
	settles(late, "a collector that started late")
	if err := leases["h3"].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitTable(t, late, "h3's departure", members(3))
	settles(late, "a departure, for a collector that started late")
}

// TestADepartureNeedsNoSettledRecord: once the settled record has reached a
// host's drain, its departure takes nothing from anyone, so the collectors
// leave the record where it is and every host's watcher, the one that
// starts afterwards included, counts the departure's table as settled on
// its own. A join of the hosts' type needs the record again.
func TestADepartureNeedsNoSettledRecord(t *testing.T) {
	js, kv := bucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every generation the settled record is raised to, in order.
	sw, err := kv.Watch(ctx, protocol.SettledKey, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sw.Stop() })
	raised := make(chan uint64, 100)
	go func() {
		for e := range sw.Updates() {
			rec := new(pb.SettledRecord)
			if e != nil && proto.Unmarshal(e.Value(), rec) == nil {
				raised <- rec.GetGeneration()
			}
		}
	}()
	var gens []uint64
	raisedTo := func(gen uint64) {
		t.Helper()
		for !slices.Contains(gens, gen) {
			select {
			case g := <-raised:
				gens = append(gens, g)
			case <-ctx.Done():
				t.Fatalf("the settled record was raised to %v, never to %d", gens, gen)
			}
		}
	}

	host := watch(t, kv)
	leases := map[string]*placement.Lease{}
	joinAs := func(id string) uint64 {
		t.Helper()
		rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}, Incarnation: "i" + id, Protocol: 2}
		l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
		leases[id] = l
		c := placement.StartCollector(kv, host, placement.HostID(id), nil) // collects if the table names it
		t.Cleanup(c.Stop)
		waitRevision(t, host, l.Revision())
		return l.Revision()
	}
	release := func(gen uint64, ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := placement.Release(ctx, js, kv, placement.HostID(id), "i"+id, gen, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}

	joinAs("h1")
	joinAs("h2")
	g := joinAs("h3")
	release(g, "h1", "h2", "h3")
	raisedTo(g)
	drained := &pb.HostRecord{HostId: "h3", Subject: "troupe.host.h3", ActorTypes: []string{"counter"}, Incarnation: "ih3", Protocol: 2, State: pb.HostState_HOST_STATE_DRAINING}
	d, err := leases["h3"].Update(ctx, drained)
	if err != nil {
		t.Fatal(err)
	}
	release(d, "h3")
	raisedTo(d) // the drainer's release is news to every host but its gainers

	if err := leases["h3"].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	p := waitTable(t, host, "h3's departure", members(2)).Generation()
	late := watch(t, kv)
	for _, w := range []*placement.Watcher{host, late} {
		for deadline := time.Now().Add(10 * time.Second); w.Settled() < p; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a host's watcher did not settle at the departure's generation %d (settled %d)", p, w.Settled())
			}
		}
	}

	j := joinAs("h4")
	release(j, "h1", "h2")
	raisedTo(j) // h4 took actors from h1 and h2
	if slices.Contains(gens, p) {
		t.Fatalf("the settled record was raised to %v: to the departure's generation %d too", gens, p)
	}
}

// TestAWaitingCallWakesForItsOwnActor: a call waiting to activate an actor
// is woken by the release of the host that may still hold it, and not by
// another host's release.
func TestAWaitingCallWakesForItsOwnActor(t *testing.T) {
	js, kv := bucket(t)
	w := watch(t, kv)
	joined := map[string]uint64{}
	for _, id := range []string{"a", "b", "c"} {
		rec := &pb.HostRecord{HostId: id, Subject: "troupe.host." + id, ActorTypes: []string{"counter"}, Incarnation: "i" + id, Protocol: 2}
		l, err := placement.Join(context.Background(), js, kv, rec, placement.LeaseConfig{TTL: testTTL}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Stop)
		waitRevision(t, w, l.Revision())
		joined[id] = l.Revision()
	}
	three := w.Table()
	// a released at b's join, so only what a owned then can be a's.
	w.NoteRelease("a", "ia", joined["b"])
	// fromA moved from a to c when c joined; fromB from b to c.
	var fromA, fromB placement.ActorID
	two := placement.NewTable(three.Generation()-1, []placement.Member{three.Members()[0], three.Members()[1]})
	for i := 0; fromA == "" || fromB == ""; i++ {
		id := placement.ActorID(fmt.Sprintf("a%d", i))
		o2, _ := two.Owner("counter", id)
		o3, _ := three.Owner("counter", id)
		switch {
		case o3.ID != "c":
		case o2.ID == "a" && fromA == "":
			fromA = id
		case o2.ID == "b" && fromB == "":
			fromB = id
		}
	}
	ok, wakeA := w.ActivationWait("c", three, "counter", fromA)
	if ok {
		t.Fatal("c may activate an actor a has not released")
	}
	w.NoteRelease("b", "ib", three.Generation())
	if ok, _ := w.ActivationWait("c", three, "counter", fromB); !ok {
		t.Fatal("c may not activate an actor b released")
	}
	select {
	case <-wakeA:
		t.Fatal("b's release woke a call waiting for a's")
	default:
	}
	w.NoteRelease("a", "ia", three.Generation())
	select {
	case <-wakeA:
	case <-time.After(5 * time.Second):
		t.Fatal("a's release did not wake the call waiting for it")
	}
	if ok, _ := w.ActivationWait("c", three, "counter", fromA); !ok {
		t.Fatal("c may not activate an actor a released")
	}
}
