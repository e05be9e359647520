// Package cluster_test runs troupe on a real 3-node NATS cluster with
// JetStream: replica defaults, and failover when the server leading the
// membership stream dies.
package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/cluster"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

const (
	numCounters = 50
	// callEvery paces each counter's caller.
	callEvery    = 20 * time.Millisecond
	callDeadline = 2 * time.Second
	// lateness is how far past its deadline a call may return before the
	// test calls it hung.
	lateness = 500 * time.Millisecond
)

// TestFailoverOfMembershipLeader kills the server that leads the membership
// stream (and, moved there first, the state stream: the worst case) while
// calls run, restarts it on the same store and ports, and checks that no
// acknowledged increment was lost and no call outlived its deadline. It logs
// the unavailability window.
func TestFailoverOfMembershipLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and waits for Raft elections")
	}
	c := cluster.Start(t, 3)
	logs := &warnings{}
	membership, state := protocol.KVStream(placement.DefaultBucket), protocol.KVStream(host.DefaultStateBucket)
	for i := range c.Nodes {
		// Each host on a different node, with the others as fallbacks.
		startHost(t, c.Connect(t, i), host.Config{ID: placement.HostID(fmt.Sprint("h", i+1)), Logger: slog.New(logs)})
		if i == 0 { // it made the buckets
			c.WaitStreamCurrent(t, 10*time.Second, membership)
			c.WaitStreamCurrent(t, 10*time.Second, state)
		}
	}
	routers := make([]*router.Router, len(c.Nodes))
	for i := range c.Nodes {
		routers[i] = newRouter(t, c.Connect(t, i))
	}
	waitMembers(t, routers, 3, 10*time.Second)
	checkReplicas(t, c.Connect(t, 0), 3)

	nc := c.Connect(t, 0)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	victim := streamLeader(t, c, js, membership)
	moveLeader(t, c, nc, js, state, victim)

	d := newDriver(routers)
	d.start()
	defer d.stop()
	d.waitAllSucceededSince(t, time.Now(), 15*time.Second, "warm-up")
	observe(time.Second)
	gen := routers[0].Table().Generation()

	t.Logf("killing %s, leader of %s and %s", victim.Name, membership, state)
	killed := time.Now()
	victim.Shutdown()
	c.WaitMetaLeader(t, 20*time.Second)
	t.Logf("new leaders: %s of %s, %s of %s, %v after the kill", streamLeader(t, c, js, membership).Name, membership,
		streamLeader(t, c, js, state).Name, state, time.Since(killed).Round(time.Millisecond))
	d.waitAllSucceededSince(t, killed, 30*time.Second, "every counter answers after the kill")
	// Keep calling past a lease TTL, so that leases that could not be
	// renewed while the streams elected leaders expire and rejoin now.
	observe(time.Until(killed.Add(placement.DefaultLeaseTTL + 2*time.Second)))
	waitMembers(t, routers, 3, 20*time.Second)

	restarted := time.Now()
	victim.Restart(t)
	c.WaitMetaLeader(t, 20*time.Second)
	victim.WaitNodeCurrent(t, 20*time.Second, membership, state)
	c.WaitStreamCurrent(t, 20*time.Second, membership)
	c.WaitStreamCurrent(t, 20*time.Second, state)
	rejoined := time.Now()
	t.Logf("%s restarted, rejoined and current in %v", victim.Name, rejoined.Sub(restarted).Round(time.Millisecond))
	observe(2 * time.Second)
	d.waitAllSucceededSince(t, rejoined, 15*time.Second, "every counter answers after the restart")
	waitMembers(t, routers, 3, 20*time.Second)
	d.stop()

	t.Logf("table generation %d before the kill, %d at the end", gen, routers[0].Table().Generation())
	for _, w := range logs.list() {
		t.Logf("host log %v after the kill: %s", w.at.Sub(killed).Round(time.Millisecond), w.text)
	}
	d.report(t, killed, rejoined)
	d.checkTotals(t, routers[0])
}

// observe lets the driver run for d: a stretch of load to measure, not a
// wait for a condition.
func observe(d time.Duration) {
	if d > 0 {
		time.Sleep(d)
	}
}

// moveLeader makes nd the stream's leader, with a leader step-down that
// prefers it.
func moveLeader(t *testing.T, c *cluster.Cluster, nc *nats.Conn, js jetstream.JetStream, stream string, nd *cluster.Node) {
	t.Helper()
	cluster.Eventually(t, 20*time.Second, stream+" led by "+nd.Name, func() bool {
		if streamLeader(t, c, js, stream) == nd {
			return true
		}
		req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, nd.Name)
		_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, []byte(req), time.Second)
		return false
	})
}

// warnings is a slog.Handler that keeps the hosts' warnings and errors (lease
// lost and the like) for the report.
type warnings struct {
	mu    sync.Mutex
	lines []warning
	attrs []slog.Attr
	root  *warnings
}

type warning struct {
	at   time.Time
	text string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	text := r.Message
	for _, a := range w.attrs {
		text += " " + a.String()
	}
	r.Attrs(func(a slog.Attr) bool { text += " " + a.String(); return true })
	root := w.rootOf()
	root.mu.Lock()
	defer root.mu.Unlock()
	root.lines = append(root.lines, warning{at: r.Time, text: text})
	return nil
}

func (w *warnings) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnings{attrs: append(slices.Clone(w.attrs), as...), root: w.rootOf()}
}

func (w *warnings) WithGroup(string) slog.Handler { return w }

func (w *warnings) rootOf() *warnings {
	if w.root != nil {
		return w.root
	}
	return w
}

func (w *warnings) list() []warning {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lines)
}

// driver adds 1 to counters from several goroutines and keeps the books:
// acknowledged and failed increments per counter, and each call's outcome
// in time.
type driver struct {
	routers []*router.Router
	acked   [numCounters]atomic.Int64
	failed  [numCounters]atomic.Int64
	lastOK  [numCounters]atomic.Int64 // UnixNano of the last success's end

	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once

	mu    sync.Mutex
	calls []callRecord
	codes map[string]int
}

type callRecord struct {
	k          int
	start, end time.Time
	ok         bool
	router     int
	owner      placement.HostID
	err        error
}

func newDriver(routers []*router.Router) *driver {
	return &driver{routers: routers, quit: make(chan struct{}), codes: map[string]int{}}
}

func counterID(k int) placement.ActorID { return placement.ActorID(fmt.Sprint("c", k)) }

// start runs one caller per counter, each adding 1 every callEvery (or
// after its last call returned, when that took longer), through the routers
// in turn: a stuck actor holds up only its own caller, so the outage of each
// actor can be measured.
func (d *driver) start() {
	for k := range numCounters {
		d.wg.Go(func() {
			tick := time.NewTicker(callEvery)
			defer tick.Stop()
			for n := k; ; n++ {
				select {
				case <-d.quit:
					return
				case <-tick.C:
				}
				d.add(n%len(d.routers), k)
			}
		})
	}
}

func (d *driver) add(ri, k int) {
	ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
	defer cancel()
	start := time.Now()
	var owner placement.HostID
	if m, ok := d.routers[ri].Table().Owner(counter.Type, counterID(k)); ok {
		owner = m.ID
	}
	_, err := d.routers[ri].Call(ctx, counter.Type, counterID(k), "add", []byte("1"))
	end := time.Now()
	if err == nil {
		d.acked[k].Add(1)
		d.lastOK[k].Store(end.UnixNano())
	} else {
		d.failed[k].Add(1)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, callRecord{k: k, start: start, end: end, ok: err == nil, router: ri, owner: owner, err: err})
	if err != nil {
		code := "other"
		var e *router.Error
		if errors.As(err, &e) {
			code = e.Code.String()
		}
		d.codes[code]++
	}
}

func (d *driver) stop() {
	d.stopOnce.Do(func() { close(d.quit) })
	d.wg.Wait()
}

// waitAllSucceededSince waits until every counter has had a call succeed
// after since.
func (d *driver) waitAllSucceededSince(t *testing.T, since time.Time, timeout time.Duration, what string) {
	t.Helper()
	cluster.Eventually(t, timeout, what, func() bool {
		for k := range numCounters {
			if d.lastOK[k].Load() <= since.UnixNano() {
				return false
			}
		}
		return true
	})
}

// report logs how long calls failed after the kill, and fails the test for
// calls that returned well after their deadline.
//
// The window is from the first failed call after the kill to the first
// successful call after it. An actor's outage is the time from its last
// success before a failure to its first success after it.
func (d *driver) report(t *testing.T, killed, rejoined time.Time) {
	t.Helper()
	d.mu.Lock()
	calls := slices.Clone(d.calls)
	codes := maps.Clone(d.codes)
	d.mu.Unlock()
	slices.SortFunc(calls, func(a, b callRecord) int { return a.end.Compare(b.end) })
	var (
		failedAfterKill, failedAfterRejoin int
		firstFail, okAfterFail, lastFail   time.Time
		longestCall, maxGap                time.Duration
		lastOKEnd                          = killed
		lastOK                             [numCounters]time.Time
		downSince                          [numCounters]time.Time
		outages                            []time.Duration
		byOwner                            = map[placement.HostID]int{}
	)
	for _, r := range calls {
		dur := r.end.Sub(r.start)
		longestCall = max(longestCall, dur)
		if dur > callDeadline+lateness {
			t.Errorf("a call to %s returned %v after it started, past its %v deadline", counterID(r.k), dur.Round(time.Millisecond), callDeadline)
		}
		if r.ok {
			if !downSince[r.k].IsZero() {
				outages = append(outages, r.end.Sub(downSince[r.k]))
				downSince[r.k] = time.Time{}
			}
			lastOK[r.k] = r.end
		} else if downSince[r.k].IsZero() {
			downSince[r.k] = lastOK[r.k]
		}
		if r.end.Before(killed) {
			continue
		}
		if r.ok {
			maxGap = max(maxGap, r.end.Sub(lastOKEnd))
			lastOKEnd = r.end
			if !firstFail.IsZero() && okAfterFail.IsZero() {
				okAfterFail = r.end
			}
			continue
		}
		byOwner[r.owner]++
		if r.end.After(rejoined) {
			failedAfterRejoin++
		} else {
			failedAfterKill++
		}
		if firstFail.IsZero() {
			firstFail = r.end
		}
		lastFail = r.end
	}
	var acked, failed int64
	for k := range numCounters {
		acked += d.acked[k].Load()
		failed += d.failed[k].Load()
	}
	t.Logf("calls: %d acknowledged, %d failed (%d between kill and rejoin, %d after rejoin); failure codes %v; failures by owner host %v",
		acked, failed, failedAfterKill, failedAfterRejoin, codes, byOwner)
	if firstFail.IsZero() {
		t.Logf("no call failed after the kill")
	} else {
		t.Logf("window: first failure %v after the kill, first success after it %v later; last failure %v after the kill",
			firstFail.Sub(killed).Round(time.Millisecond), okAfterFail.Sub(firstFail).Round(time.Millisecond),
			lastFail.Sub(killed).Round(time.Millisecond))
	}
	if slices.Sort(outages); len(outages) > 0 {
		t.Logf("actor outages: %d, median %v, longest %v", len(outages),
			outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond))
	}
	t.Logf("longest gap between successful calls after the kill %v; slowest call %v",
		maxGap.Round(time.Millisecond), longestCall.Round(time.Millisecond))
}

// checkTotals reads every counter: it holds at least the acknowledged
// increments and at most those plus the failed ones, whose outcome is unknown.
func (d *driver) checkTotals(t *testing.T, r *router.Router) {
	t.Helper()
	for k := range numCounters {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		reply, err := r.Call(ctx, counter.Type, counterID(k), "get", nil)
		cancel()
		if err != nil {
			t.Errorf("get %s: %v", counterID(k), err)
			continue
		}
		got, err := strconv.ParseInt(string(reply), 10, 64)
		if err != nil {
			t.Fatalf("get %s: %q", counterID(k), reply)
		}
		acked, failed := d.acked[k].Load(), d.failed[k].Load()
		if got < acked || got > acked+failed {
			t.Errorf("counter %s = %d, want %d acknowledged increments plus at most %d failed ones", counterID(k), got, acked, failed)
		}
	}
}

// streamLeader asks JetStream which node leads the stream, as a client sees
// it in the stream info.
func streamLeader(t *testing.T, c *cluster.Cluster, js jetstream.JetStream, stream string) *cluster.Node {
	t.Helper()
	var leader *cluster.Node
	cluster.Eventually(t, 20*time.Second, "a leader of "+stream, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		for _, nd := range c.Nodes {
			if nd.Name == info.Cluster.Leader && nd.Server() != nil {
				leader = nd
				return true
			}
		}
		return false
	})
	return leader
}

func newRouter(t *testing.T, nc *nats.Conn) *router.Router { return natstest.Router(t, nc) }

// waitMembers waits until every router's table lists exactly n hosts.
func waitMembers(t *testing.T, routers []*router.Router, n int, timeout time.Duration) {
	t.Helper()
	cluster.Eventually(t, timeout, fmt.Sprintf("%d hosts in every router's table", n), func() bool {
		for _, r := range routers {
			if len(r.Table().Members()) != n {
				return false
			}
		}
		return true
	})
}
