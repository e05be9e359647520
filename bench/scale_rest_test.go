package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

var (
	scaleRestMembers = flag.String("scale.members", "1000,2500,5000", "comma-separated member counts BenchmarkMembersAtRest measures")
	scaleRestTTL     = flag.Duration("scale.ttl", 0, "lease TTL of BenchmarkMembersAtRest's members (0: the default lease)")
)

// BenchmarkMembersAtRest measures what membership at rest costs the server with
// more hosts than one machine can run as real hosts (BenchmarkScale holds
// about 200 on two cores; docs/SCALE.md has the numbers):
//
//	go test -run '^$' -bench MembersAtRest -benchtime=1x -timeout 60m ./bench/ -scale.members=1000,2500,5000
//
// For each N it starts N members against one nats-server in its own process
// (as BenchmarkScale does), each on its own NATS connection and doing, on
// the server, what a host does at rest:
//
//   - it holds its lease with placement.Join and the default lease config,
//     its liveness key in the liveness bucket as a host's: the real renewal
//     loop, one write of its liveness key every 2 s with the 4 s TTL;
//   - it watches the liveness key of the next member, as its monitor does
//     (a KV watch of one key in the liveness bucket, placement.MonitorPeers
//     = 1);
//   - it has one more KV watch open, as its membership watcher does. A
//     host's watches hosts.* and settled; here it watches settled alone,
//     because N watches of N records each would cost N² deliveries to start
//     (the harness's, not the subject of the measurement). At rest the two
//     cost the server the same: an idle ordered consumer's heartbeats,
//     since no renewal matches either filter.
//
// What a member does not have — the table, a router, actors — costs its own
// process, not the server. Once every member has joined and both its watches
// have delivered their initial entries, it waits -scale.quiet and measures
// over -scale.rest the server's messages in and out per second, its CPU and
// this process's, and the renewals (through LeaseConfig.OnRenew: how many,
// how many failed, their round trip's median and 99th percentile).
//
// -scale.ttl gives the members another lease TTL, renewed DefaultRenewals
// times per TTL as by default: a longer one means fewer renewals a second,
// for an N whose renewals at the default this machine cannot carry.
//
// Each member holds three or four file descriptors' worth of sockets across
// the two processes: raise `ulimit -n` above the largest N.
func BenchmarkMembersAtRest(b *testing.B) {
	var results []restResult
	for _, n := range restMemberCounts(b) {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			var res restResult
			for range b.N {
				res = runScaleRest(b, restConfig{members: n, rest: *scaleRest, quiet: *scaleQuiet, parallel: *scaleParallel, ttl: *scaleRestTTL})
			}
			b.ReportMetric(res.rest.outPerSec, "out-msgs/s")
			b.ReportMetric(res.rest.inPerSec, "in-msgs/s")
			b.ReportMetric(100*res.rest.serverCore, "server-cpu-%")
			b.ReportMetric(100*res.rest.selfCore, "harness-cpu-%")
			b.ReportMetric(res.serverPerRenewal(), "server-µs/renewal")
			b.ReportMetric(float64(res.failed), "renewals-failed")
			results = append(results, res)
		})
	}
	printRestTable(os.Stdout, results)
}

type restConfig struct {
	members  int
	rest     time.Duration
	quiet    time.Duration
	parallel int
	ttl      time.Duration // 0: the default lease
}

type restResult struct {
	members          int
	startup          time.Duration
	rest             rates
	renewals, failed int64
	p50, p99         time.Duration // a renewal's round trip, at rest
}

// serverPerRenewal is the server's CPU per renewal at rest, in µs: all of
// its CPU, so an upper bound (the watches' idle heartbeats are in it).
func (r restResult) serverPerRenewal() float64 {
	if r.renewals == 0 {
		return 0
	}
	return 1e6 * r.rest.serverCore * r.rest.window.Seconds() / float64(r.renewals)
}

// restMember is one simulated host: its connection and lease (its watches
// end with the connection).
type restMember struct {
	nc    *nats.Conn
	lease *placement.Lease
}

// close stops renewing and closes the connection, which ends the watches'
// subscriptions; the server removes their consumers itself.
func (m *restMember) close() {
	if m.lease != nil {
		m.lease.Stop()
	}
	m.nc.Close()
}

// renewals records the renewals of all members while on is set.
type renewals struct {
	on     atomic.Bool
	mu     sync.Mutex
	done   []renewal
	failed int64
}

// renewal is one successful renewal: when its write was sent and its ack
// received.
type renewal struct{ sent, acked time.Time }

func (r *renewals) record(took time.Duration, err error) {
	if !r.on.Load() {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed++
		return
	}
	r.done = append(r.done, renewal{sent: now.Add(-took), acked: now})
}

// within returns the round trips of the renewals sent and acked between
// from and to: those whose write and ack the server counted between two
// samples taken before from and after to.
func (r *renewals) within(from, to time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var took []time.Duration
	for _, d := range r.done {
		if !d.sent.Before(from) && !d.acked.After(to) {
			took = append(took, d.acked.Sub(d.sent))
		}
	}
	return took
}

func runScaleRest(tb testing.TB, cfg restConfig) restResult {
	srv := startNATSProc(tb)
	nc, err := nats.Connect(srv.url)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	kv, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{})
	if err == nil {
		_, err = placement.EnsureLivenessBucket(ctx, js, placement.BucketConfig{})
	}
	cancel()
	if err != nil {
		tb.Fatal(err)
	}
	var rn renewals
	members := make([]*restMember, cfg.members)
	tb.Cleanup(func() {
		for _, m := range members {
			if m != nil {
				m.close()
			}
		}
	})
	id := func(i int) placement.HostID { return placement.HostID(fmt.Sprintf("m%05d", i%cfg.members)) }
	t0 := time.Now()
	var firstErr atomic.Pointer[error] // the first member's failure to start
	sem := make(chan struct{}, max(1, cfg.parallel))
	var wg sync.WaitGroup
	for i := range cfg.members {
		sem <- struct{}{}
		if firstErr.Load() != nil {
			break // stop at the first failure: its cause is what the run shows
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m, err := startRestMember(srv.url, kv.Bucket(), id(i), id(i+1), cfg.ttl, rn.record)
			members[i] = m
			if err != nil {
				err = fmt.Errorf("member %d of %d, %v into the start: %w", i, cfg.members, time.Since(t0).Round(time.Millisecond), err)
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		tb.Fatal(*err)
	}
	res := restResult{members: cfg.members, startup: time.Since(t0)}
	time.Sleep(cfg.quiet)
	rn.on.Store(true)
	srv.toggleProfile()
	defer srv.toggleProfile()
	a, err := srv.sample()
	if err != nil {
		tb.Fatal(err)
	}
	from := time.Now()
	time.Sleep(cfg.rest)
	to := time.Now()
	z, err := srv.sample()
	rn.on.Store(false)
	if err != nil {
		tb.Fatal(err)
	}
	res.rest = ratesBetween(a, z)
	// Only the renewals wholly inside the window: one in flight when a
	// sample was taken would count in the server's messages on one side and
	// in the renewals on the other.
	took := rn.within(from, to)
	res.renewals, res.failed = int64(len(took)), rn.failed
	if len(took) > 0 {
		slices.Sort(took)
		res.p50 = took[len(took)/2]
		res.p99 = took[len(took)*99/100]
	}
	return res
}

// startRestMember connects, joins as id with a lease of ttl (0: the
// default) and opens the two watches a host has at rest: its monitor's, of
// next's liveness key, and its watcher's (of settled; see
// BenchmarkMembersAtRest). It returns once both watches have delivered their
// initial entries.
func startRestMember(url, bucket string, id, next placement.HostID, ttl time.Duration, onRenew func(time.Duration, error)) (*restMember, error) {
	nc, err := nats.Connect(url, nats.Name(string(id)))
	if err != nil {
		return nil, err
	}
	m := &restMember{nc: nc}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = func() error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		kv, err := placement.OpenBucket(ctx, js, bucket)
		if err != nil {
			return err
		}
		live, err := js.KeyValue(ctx, protocol.LivenessBucket(bucket))
		if err != nil {
			return err
		}
		rec := &pb.HostRecord{HostId: string(id), Subject: "troupe.host." + string(id), ActorTypes: []string{"t"}, Protocol: protocol.Version}
		if m.lease, err = placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: ttl, OnRenew: onRenew, Liveness: live}, nil); err != nil {
			return err
		}
		for _, watched := range []struct {
			kv  jetstream.KeyValue
			key string
		}{{live, placement.AliveKey(next)}, {kv, protocol.SettledKey}} {
			key := watched.key
			w, err := watched.kv.WatchFiltered(context.Background(), []string{key})
			if err != nil {
				return err
			}
			if err := initialEntries(ctx, w); err != nil {
				return fmt.Errorf("watch of %s: %w", key, err)
			}
			go func() {
				for range w.Updates() {
				}
			}()
		}
		return nil
	}()
	if err != nil {
		m.close()
		return nil, fmt.Errorf("member %s: %w", id, err)
	}
	return m, nil
}

// initialEntries reads w's initial entries, up to the nil marker that ends
// them, until ctx ends.
func initialEntries(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch ended")
			}
			if e == nil {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("initial entries: %w", ctx.Err())
		}
	}
}

// restMemberCounts parses -scale.members.
func restMemberCounts(tb testing.TB) []int {
	return parseCounts(tb, "-scale.members", *scaleRestMembers, "member")
}

// printRestTable writes the results as the table in docs/SCALE.md.
func printRestTable(w io.Writer, results []restResult) {
	if len(results) == 0 {
		return
	}
	t := table[restResult]{w, results}
	row, num := t.row, numOf[restResult]
	t.header("members N", num("%.0f", func(r restResult) float64 { return float64(r.members) }))
	row("server in msgs/s at rest", num("%.0f", func(r restResult) float64 { return r.rest.inPerSec }))
	row("server out msgs/s at rest", num("%.0f", func(r restResult) float64 { return r.rest.outPerSec }))
	row("server out msgs per member per second", num("%.2f", func(r restResult) float64 { return r.rest.outPerSec / float64(r.members) }))
	row("server CPU, % of a core", num("%.1f", func(r restResult) float64 { return 100 * r.rest.serverCore }))
	row("server CPU per renewal, µs", num("%.0f", restResult.serverPerRenewal))
	row("harness CPU (the N members), % of a core", num("%.1f", func(r restResult) float64 { return 100 * r.rest.selfCore }))
	row("renewals per second", num("%.0f", func(r restResult) float64 { return float64(r.renewals) / r.rest.window.Seconds() }))
	row("renewals failed", num("%.0f", func(r restResult) float64 { return float64(r.failed) }))
	row("renewal round trip p50, ms", num("%.2f", func(r restResult) float64 { return ms(r.p50) }))
	row("renewal round trip p99, ms", num("%.2f", func(r restResult) float64 { return ms(r.p99) }))
	row("starting all N members, s", num("%.1f", func(r restResult) float64 { return r.startup.Seconds() }))
}

// TestMembersAtRestHarness runs BenchmarkMembersAtRest's code path at a small size,
// so that it cannot rot: 20 members, a 1 s window.
func TestMembersAtRestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process and members")
	}
	ttl := 2 * time.Second
	res := runScaleRest(t, restConfig{members: 20, rest: 2 * time.Second, quiet: 300 * time.Millisecond, parallel: 5, ttl: ttl})
	// Every member renews DefaultRenewals times per ttl: 2 s · 20 · 2 / 2 s.
	want := int64(res.rest.window.Seconds() / (ttl / placement.DefaultRenewals).Seconds() * float64(res.members))
	if res.renewals < want*3/4 || res.failed != 0 {
		t.Errorf("%d renewals, %d failed, in %v among %d members; want about %d, none failed", res.renewals, res.failed, res.rest.window, res.members, want)
	}
	// Each renewal in the window is one message in and its ack out, both
	// counted in the window; and its delivery to the next member's monitor
	// watch, which the server sends after the ack: at the window's end, up
	// to one per member may still be on its way.
	if in := res.rest.inPerSec * res.rest.window.Seconds(); in < float64(res.renewals) {
		t.Errorf("the server received %.0f messages for %d renewals", in, res.renewals)
	}
	if out := res.rest.outPerSec * res.rest.window.Seconds(); out < float64(2*res.renewals-int64(res.members)) {
		t.Errorf("the server sent %.0f messages for %d renewals among %d members, want at least 2 each but one per member", out, res.renewals, res.members)
	}
	var table strings.Builder
	printRestTable(&table, []restResult{res})
	if got := strings.Count(table.String(), "\n"); got != 13 {
		t.Errorf("the table has %d lines, want 13:\n%s", got, table.String())
	}
	t.Logf("\n%s", table.String())
}
