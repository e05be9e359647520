package host_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/proctest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// newCounterHost returns a host serving counters on nc, not started, that
// logs to out; it is closed when the test ends.
func newCounterHost(t *testing.T, nc *nats.Conn, cfg host.Config, out *proctest.Buffer) *host.Host {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h, err := host.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := counter.Register(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// A link cut right after the join's create went out loses its answer, but
// not the record: the host reconnects, takes over the record its own try
// stored, and joins at once. With a 30 s lease, waiting for that record to
// expire instead would miss the 10 s deadline.
func TestStartRidesOutALinkCutDuringJoin(t *testing.T) {
	s := natstest.Server(t)
	proxy, nc := natstest.ConnectProxied(t, s)
	var out proctest.Buffer
	h := newCounterHost(t, nc, host.Config{ID: "cut", Lease: placement.LeaseConfig{TTL: 30 * time.Second}}, &out)
	cut := proxy.CutOn("PUB "+protocol.KVSubject(placement.DefaultBucket, placement.HostKey("cut"))+" ", 100*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, out.String())
	}
	select {
	case <-cut:
	default:
		t.Fatal("the link was never cut during the join")
	}
	r := newRouter(t, s)
	tab := waitMembers(t, r, 1)
	rec, e := natstest.HostRecord(t, natstest.Connect(t, s), "cut")
	if rec == nil || e.Revision() != tab.Generation() {
		t.Fatalf("record %v at revision %v; want the join's own record, written at generation %d", rec, e.Revision(), tab.Generation())
	}
	if !strings.Contains(out.String(), "waiting\" host=cut step=join") {
		t.Errorf("no line about waiting to join:\n%s", out.String())
	}
	call(t, r, "counter", "c1", "add", "1")
}

// A host restarted under the same id while its previous process's lease is
// still live waits for that lease to expire, logs that once, and joins.
func TestStartWaitsForThePreviousProcessLease(t *testing.T) {
	s := natstest.Server(t)
	var out proctest.Buffer
	cfg := host.Config{ID: "again", Lease: placement.LeaseConfig{TTL: time.Second}}
	old := newCounterHost(t, natstest.Connect(t, s), cfg, &out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := old.Start(ctx); err != nil {
		t.Fatal(err)
	}
	old.Close() // as if killed: the record stays until its lease expires
	nc := natstest.Connect(t, s)
	oldRec, _ := natstest.HostRecord(t, nc, "again")

	var out2 proctest.Buffer
	h := newCounterHost(t, natstest.Connect(t, s), cfg, &out2)
	if err := h.Start(ctx); err != nil {
		t.Fatalf("start: %v\n%s", err, out2.String())
	}
	rec, _ := natstest.HostRecord(t, nc, "again")
	if rec.GetIncarnation() == oldRec.GetIncarnation() {
		t.Fatal("the new process holds the old incarnation's record")
	}
	if n := strings.Count(out2.String(), "host id is held by a live host"); n != 1 {
		t.Errorf("%d lines about the held id, want 1:\n%s", n, out2.String())
	}
	call(t, newRouter(t, s), "counter", "c1", "add", "1")
}

// A start given up because its context ended says what it waited for and
// leaves the bucket as it found it.
func TestStartGivenUpLeavesNothingBehind(t *testing.T) {
	s := natstest.Server(t)
	var out proctest.Buffer
	live := newCounterHost(t, natstest.Connect(t, s), host.Config{ID: "taken"}, &out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	nc := natstest.Connect(t, s)
	before, _ := natstest.HostRecord(t, nc, "taken")

	h := newCounterHost(t, natstest.Connect(t, s), host.Config{ID: "taken"}, &out)
	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	err := h.Start(short)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, placement.ErrHostIDInUse) {
		t.Fatalf("start: %v; want the deadline and what it waited for (ErrHostIDInUse)", err)
	}
	after, _ := natstest.HostRecord(t, nc, "taken")
	if after.GetIncarnation() != before.GetIncarnation() {
		t.Fatalf("the record changed from incarnation %s to %s", before.GetIncarnation(), after.GetIncarnation())
	}
}

// What waiting cannot cure fails at once, even with a long deadline.
func TestStartFailsAtOnceOnABucketForAnotherHash(t *testing.T) {
	s := natstest.Server(t)
	nc := natstest.Connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: placement.DefaultBucket, Metadata: map[string]string{placement.HashVersionKey: "another"},
	}); err != nil {
		t.Fatal(err)
	}
	var out proctest.Buffer
	h := newCounterHost(t, nc, host.Config{ID: "foreign"}, &out)
	start := time.Now()
	if err := h.Start(ctx); !errors.Is(err, placement.ErrHashVersion) {
		t.Fatalf("start: %v, want ErrHashVersion", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("start took %v to fail; a permanent error should fail at once", took)
	}
	if strings.Contains(out.String(), "waiting") {
		t.Errorf("the host waited on a permanent error:\n%s", out.String())
	}
}

// TestStartReturnsWithItsSubscriptionsInPlace: when Start returns, the
// server already routes to every subscription the host made (the last
// ones, the reminder gateway and the admin subjects, come after the join),
// also for a start without a deadline, as `troupe host` runs it by default.
func TestStartReturnsWithItsSubscriptionsInPlace(t *testing.T) {
	for i := range 10 {
		s := natstest.Server(t)
		h, err := host.New(natstest.Connect(t, s), host.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if err := counter.Register(h); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, subject := range []string{
			protocol.ReminderSetSubject("troupe", counter.Type, "c1", "r"),
			protocol.AdminActorsSubject("troupe"),
		} {
			sz, err := s.Subsz(&server.SubszOptions{Subscriptions: true, Test: subject})
			if err != nil {
				t.Fatal(err)
			}
			if sz.Total == 0 {
				t.Fatalf("start %d: Start returned before the server had a subscription for %s", i, subject)
			}
		}
		h.Close()
	}
}
