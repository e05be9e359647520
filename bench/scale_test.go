package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// BenchmarkScale measures what membership costs as the number of hosts
// grows (docs/SCALE.md has the numbers and the model fitted to them):
//
//	go test -run '^$' -bench Scale -benchtime=1x ./bench/ -scale.hosts=10,25,50,100,150
//
// For each N it starts N real hosts in this process (host.New and Start,
// each on its own NATS connection, each with the router a host has), against
// one nats-server in a separate process configured as `troupe dev`
// configures its own (see serveNATS), with the default lease (4 s, renewed
// every 2 s). Once every host has joined and released, it measures at
// rest over -scale.rest: the server's messages out and in per second (deltas
// of /varz), the server's CPU (/proc/<pid>/stat) and this process's
// (getrusage), in % of one core.
//
// Then, -scale.reps times: a host joins (twice), leaves gracefully
// (Shutdown) and is killed. A kill closes the host's NATS connection at once
// and stops the host without leaving (host.Close): to the server that is a
// process dying (its socket closes, its subscriptions go, its record stays
// until its lease runs out), while the hosts stay in one process. For each
// change it reports the median over the repetitions of:
//
//   - applied-ms: from the change until every other host's watcher has
//     applied it (for a join, from the send time of the new host's first
//     lease write; for a leave, from the call to Shutdown until every table
//     shows the host draining, which is when its actors move; for a kill,
//     from the moment the connection closed until every table dropped it);
//   - call-ms: from the same moment until the first successful call to an
//     actor that moved because of the change, answered by its new host. The
//     actor is active on its old host beforehand; the caller (another host's
//     router) calls it as soon as its own table shows the change, which is
//     the earliest a call can be routed to the new host;
//   - deliveries: the server's messages out during the change (until every
//     host has applied it and every watcher has seen every host release),
//     less those of the other hosts' lease renewals in that time (counted
//     through host.Config.OnLeaseValid; each is an ack and one delivery per
//     watcher, and at rest the server sends nothing else).
//
// join-start-ms is how long host.Start took for the joining host, startup-s
// how long starting all N hosts took. -scale.routers adds standalone routers
// (each with its own watcher, as a client routing directly has), to
// measure the cost of watchers apart from that of hosts.
var (
	scaleHosts         = flag.String("scale.hosts", "10,25,50,100,150", "comma-separated host counts BenchmarkScale measures")
	scaleReps          = flag.Int("scale.reps", 3, "repetitions of join, leave and kill per host count")
	scaleRest          = flag.Duration("scale.rest", 10*time.Second, "window over which BenchmarkScale measures rates at rest")
	scaleQuiet         = flag.Duration("scale.quiet", time.Second, "pause after the hosts start and after each change")
	scaleParallel      = flag.Int("scale.parallel", 8, "hosts BenchmarkScale starts at once")
	scaleServerProfile = flag.String("scale.serverprofile", "", "file the nats-server process writes its CPU profile at rest to (of the last host count measured)")
	scaleSync          = flag.Duration("scale.sync", devSync, "fsync interval of the harness's nats-server (troupe dev's by default; 0: the server's own default of two minutes)")
	scaleRouters       = flag.Int("scale.routers", 0, "standalone routers (each its own connection and watcher) BenchmarkScale adds to the N hosts")
)

const scaleType = placement.ActorType("scale")

// scaleConfig is one run of the harness.
type scaleConfig struct {
	hosts    int
	reps     int
	rest     time.Duration
	quiet    time.Duration
	parallel int
	routers  int           // standalone routers, each with its own watcher
	ttl      time.Duration // the lease TTL; 0 means the default
}

func (c scaleConfig) leaseTTL() time.Duration {
	if c.ttl == 0 {
		return placement.DefaultLeaseTTL
	}
	return c.ttl
}

// scaleResult is what one run measured.
type scaleResult struct {
	hosts   int
	routers int
	startup time.Duration
	rest    rates
	join    changes
	leave   changes
	kill    changes
}

// change is one measured table change.
type change struct {
	applied    time.Duration
	call       time.Duration
	deliveries float64
	start      time.Duration // a join: how long the new host's Start took
	late       time.Duration // a kill: applied after the last renewal plus the TTL
}

type changes []change

func (cs changes) median(f func(change) float64) float64 {
	v := make([]float64, len(cs))
	for i, c := range cs {
		v[i] = f(c)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (cs changes) appliedMs() float64 {
	return cs.median(func(c change) float64 { return ms(c.applied) })
}
func (cs changes) callMs() float64 { return cs.median(func(c change) float64 { return ms(c.call) }) }
func (cs changes) deliveries() float64 {
	return cs.median(func(c change) float64 { return c.deliveries })
}

// scaleHost is one host of the harness, on its own connection.
type scaleHost struct {
	id     placement.HostID
	h      *host.Host
	nc     *nats.Conn
	joined chan time.Time // the send time of the lease's first write

	writes atomic.Int64 // successful lease writes

	mu      sync.Mutex
	renewed time.Time // the send time of the lease's last write
}

// leaseWritten records a successful lease write sent at sent.
func (s *scaleHost) leaseWritten(sent time.Time) {
	s.writes.Add(1)
	s.mu.Lock()
	s.renewed = sent
	s.mu.Unlock()
	select {
	case s.joined <- sent:
	default:
	}
}

func (s *scaleHost) lastRenewal() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renewed
}

func (s *scaleHost) watcher() *placement.Watcher { return s.h.Router().Watcher() }

func (s *scaleHost) close() {
	s.h.Close()
	s.nc.Close()
}

// scaleRun drives the hosts of one run.
type scaleRun struct {
	tb    testing.TB
	cfg   scaleConfig
	srv   *natsProc
	hosts []*scaleHost // the live hosts
	next  int          // the number of the next joining host
	moved int          // the number of the next moved actor
}

func runScale(tb testing.TB, cfg scaleConfig) scaleResult {
	r := &scaleRun{tb: tb, cfg: cfg, srv: startNATSProc(tb)}
	tb.Cleanup(func() {
		for _, s := range r.hosts {
			s.close()
		}
	})
	res := scaleResult{hosts: cfg.hosts, routers: cfg.routers}
	t0 := time.Now()
	r.startHosts(cfg.hosts)
	r.startRouters(cfg.routers)
	r.waitSettled()
	res.startup = time.Since(t0)
	time.Sleep(cfg.quiet) // let the last releases and acks pass
	res.rest = r.rate(cfg.rest)
	for range cfg.reps {
		res.join = append(res.join, r.join())
		res.leave = append(res.leave, r.leave())
		res.join = append(res.join, r.join())
		res.kill = append(res.kill, r.kill())
	}
	return res
}

// startHosts starts n hosts, cfg.parallel at a time.
func (r *scaleRun) startHosts(n int) {
	hosts := make([]*scaleHost, n)
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, r.cfg.parallel))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hosts[i], errs[i] = r.newHost(placement.HostID(fmt.Sprintf("s%04d", i)))
		}()
	}
	wg.Wait()
	for i, s := range hosts {
		if s != nil {
			r.hosts = append(r.hosts, s)
		}
		if errs[i] != nil {
			r.tb.Fatal(errs[i])
		}
	}
}

// startRouters starts n routers, each on its own connection and with its
// own watcher: more watchers of the membership bucket, as clients that route
// directly would be, and closed when the run ends.
func (r *scaleRun) startRouters(n int) {
	for i := range n {
		nc, err := nats.Connect(r.srv.url, nats.Name(fmt.Sprintf("router-%d", i)))
		if err != nil {
			r.tb.Fatal(err)
		}
		r.tb.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rt, err := router.New(ctx, nc, router.Config{})
		cancel()
		if err != nil {
			r.tb.Fatal(err)
		}
		r.tb.Cleanup(rt.Close)
	}
}

// watchers is W, the number of membership watchers: one per host (its
// router shares it) and one per standalone router.
func (res scaleResult) watchers() int { return res.hosts + res.routers }

// newHost starts a host serving the scale actor, which answers every call
// with the id of the host it runs on.
func (r *scaleRun) newHost(id placement.HostID) (*scaleHost, error) {
	nc, err := nats.Connect(r.srv.url, nats.Name(string(id)), nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, err
	}
	s := &scaleHost{id: id, nc: nc, joined: make(chan time.Time, 1)}
	ttl := r.cfg.leaseTTL()
	held := ttl - ttl/4 // ValidUntil is the send time plus TTL less the default margin
	cfg := host.Config{
		ID:           id,
		Logger:       discardLogger,
		Lease:        placement.LeaseConfig{TTL: r.cfg.ttl},
		OnLeaseValid: func(l host.LeaseRecord) { s.leaseWritten(l.ValidUntil.Add(-held)) },
	}
	if s.h, err = host.New(nc, cfg); err == nil {
		err = s.h.Register(scaleType, host.Func(func(context.Context, host.Call) ([]byte, error) {
			return []byte(id), nil
		}), host.NoState())
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = s.h.Start(ctx)
		cancel()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("host %s: %w", id, err)
	}
	return s, nil
}

// waitSettled waits until every host's table lists exactly the live hosts
// at one generation, and every host's watcher has seen every host release
// at it.
func (r *scaleRun) waitSettled() {
	r.tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !r.settled() {
		if time.Now().After(deadline) {
			r.tb.Fatalf("%d hosts did not settle within 2 minutes", len(r.hosts))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *scaleRun) settled() bool {
	gen := r.hosts[0].watcher().Table().Generation()
	for _, s := range r.hosts {
		w := s.watcher()
		t := w.Table()
		if t.Generation() != gen || w.Settled() < gen || len(t.Members()) != len(r.hosts) {
			return false
		}
	}
	return true
}

func (r *scaleRun) sample() counters {
	r.tb.Helper()
	c, err := r.srv.sample()
	if err != nil {
		r.tb.Fatal(err)
	}
	return c
}

// rate measures the rates over the next d.
func (r *scaleRun) rate(d time.Duration) rates {
	r.srv.toggleProfile()
	a := r.sample()
	time.Sleep(d)
	b := r.sample()
	r.srv.toggleProfile()
	return ratesBetween(a, b)
}

// mark is the server's counters and the lease writes of some hosts, at one
// moment.
type mark struct {
	counters
	writes int64
}

func (r *scaleRun) mark(hosts []*scaleHost) mark {
	var n int64
	for _, s := range hosts {
		n += s.writes.Load()
	}
	return mark{r.sample(), n}
}

// deliveries is the server's messages out between a and b less those of the
// lease renewals counted in them, among n hosts: each renewal of a liveness
// key is acknowledged and delivered to the host's monitors (MonitorPeers,
// or fewer among fewer hosts). At rest the server sends little else (the
// idle heartbeats of the hosts' watches), so what remains is the change's.
func deliveries(a, b mark, n int) float64 {
	return float64(b.outMsgs-a.outMsgs) - float64((b.writes-a.writes)*int64(renewalMsgs(n)))
}

// renewalMsgs is the server's messages out per lease renewal among n hosts:
// the acknowledgement and one delivery to each monitor.
func renewalMsgs(n int) int { return 1 + min(placement.MonitorPeers, n-1) }

// join starts one more host.
func (r *scaleRun) join() change {
	r.next++
	id := placement.HostID(fmt.Sprintf("j%04d", r.next))
	t := r.hosts[0].watcher().Table()
	actor := r.actorGainedBy(t, id)
	from, _ := t.Owner(scaleType, actor)
	caller := r.callerBesides(from.ID)
	r.activate(caller, actor, from.ID)

	others := slices.Clone(r.hosts)
	has := func(t *placement.Table) bool { m, ok := t.Member(id); return ok && !m.Draining }
	applied := watchApplied(others, has)
	called := r.callMoved(caller, actor, from.ID, has)
	a := r.mark(others)
	startAt := time.Now()
	s, err := r.newHost(id)
	if err != nil {
		r.tb.Fatal(err)
	}
	c := change{start: time.Since(startAt)}
	r.hosts = append(r.hosts, s)
	t0 := <-s.joined
	c.applied = applied.wait(r.tb).Sub(t0)
	c.call = called.wait(r.tb).Sub(t0)
	r.waitSettled()
	c.deliveries = deliveries(a, r.mark(others), len(others)+1)
	time.Sleep(r.cfg.quiet)
	return c
}

// leave shuts down the host that joined last.
func (r *scaleRun) leave() change {
	s, actor, caller := r.lastOut()
	gone := func(t *placement.Table) bool { m, ok := t.Member(s.id); return !ok || m.Draining }
	applied := watchApplied(r.hosts, gone)
	called := r.callMoved(caller, actor, s.id, gone)
	a := r.mark(r.hosts)
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := s.h.Shutdown(ctx)
	cancel()
	if err != nil {
		s.close()
		r.tb.Fatal(err)
	}
	c := change{applied: applied.wait(r.tb).Sub(t0), call: called.wait(r.tb).Sub(t0)}
	s.nc.Close()
	r.waitSettled()
	c.deliveries = deliveries(a, r.mark(r.hosts), len(r.hosts)+1)
	time.Sleep(r.cfg.quiet)
	return c
}

// kill closes the connection of the host that joined last and stops it
// without leaving; its lease runs out.
func (r *scaleRun) kill() change {
	s, actor, caller := r.lastOut()
	gone := func(t *placement.Table) bool { _, ok := t.Member(s.id); return !ok }
	applied := watchApplied(r.hosts, gone)
	called := r.callMoved(caller, actor, s.id, gone)
	// The host joined a whole number of renewal periods ago, give or take
	// the time to settle: kill it at a random point of its renewal period,
	// as a crash would.
	ttl := r.cfg.leaseTTL()
	time.Sleep(rand.N(ttl / placement.DefaultRenewals))
	t0 := time.Now()
	s.nc.Close()
	s.h.Close()
	// The record cannot expire before its last renewal's send time plus the
	// TTL: count the change's messages from shortly before that.
	last := s.lastRenewal()
	time.Sleep(time.Until(last.Add(ttl - 200*time.Millisecond)))
	a := r.mark(r.hosts)
	appliedAt := applied.wait(r.tb)
	c := change{applied: appliedAt.Sub(t0), call: called.wait(r.tb).Sub(t0), late: appliedAt.Sub(last.Add(ttl))}
	r.waitSettled()
	c.deliveries = deliveries(a, r.mark(r.hosts), len(r.hosts)+1)
	time.Sleep(r.cfg.quiet)
	return c
}

// lastOut takes the host that joined last out of the live hosts, and
// activates one of its actors from another host's router: what a leave or a
// kill then moves.
func (r *scaleRun) lastOut() (s *scaleHost, actor placement.ActorID, caller *router.Router) {
	s = r.hosts[len(r.hosts)-1]
	r.hosts = r.hosts[:len(r.hosts)-1]
	actor = r.actorOwnedBy(s.watcher().Table(), s.id)
	caller = r.callerBesides(s.id)
	r.activate(caller, actor, s.id)
	return s, actor, caller
}

// actorGainedBy returns an actor that t gives to another host and a table
// with id added gives to id.
func (r *scaleRun) actorGainedBy(t *placement.Table, id placement.HostID) placement.ActorID {
	ms := append(slices.Clone(t.Members()), placement.Member{ID: id, Types: []placement.ActorType{scaleType}})
	return r.actorOwnedBy(placement.NewTable(0, ms), id)
}

// actorOwnedBy returns an actor t gives to id, not used before in the run.
func (r *scaleRun) actorOwnedBy(t *placement.Table, id placement.HostID) placement.ActorID {
	for {
		r.moved++
		a := placement.ActorID("a" + strconv.Itoa(r.moved))
		if o, ok := t.Owner(scaleType, a); ok && o.ID == id {
			return a
		}
	}
}

// callerBesides returns the router of a live host other than id.
func (r *scaleRun) callerBesides(id placement.HostID) *router.Router {
	for _, s := range r.hosts {
		if s.id != id {
			return s.h.Router()
		}
	}
	r.tb.Fatal("no host to call from")
	return nil
}

// activate calls actor so that it is active on host on before the change.
func (r *scaleRun) activate(caller *router.Router, actor placement.ActorID, on placement.HostID) {
	r.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reply, err := caller.Call(ctx, scaleType, actor, "who", nil)
	if err != nil {
		r.tb.Fatal(err)
	}
	if placement.HostID(reply) != on {
		r.tb.Fatalf("actor %s answered from %s, want %s", actor, reply, on)
	}
}

// callMoved calls actor through caller, once caller's table satisfies
// changed, until a host other than from answers; it records when.
func (r *scaleRun) callMoved(caller *router.Router, actor placement.ActorID, from placement.HostID, changed func(*placement.Table) bool) *stamp {
	st := newStamp()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w := caller.Watcher()
		for {
			ch := w.Changed()
			if changed(w.Table()) {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				st.fail(fmt.Errorf("the caller's table never showed the change: %w", ctx.Err()))
				return
			}
		}
		for {
			reply, err := caller.Call(ctx, scaleType, actor, "who", nil)
			switch {
			case err == nil && placement.HostID(reply) != from:
				st.set(time.Now())
				return
			case ctx.Err() != nil:
				st.fail(fmt.Errorf("actor %s: no answer from its new host: %v", actor, err))
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return st
}

// stamp is a time recorded by another goroutine, or its failure.
type stamp struct {
	done chan struct{}
	at   time.Time
	err  error
}

func newStamp() *stamp { return &stamp{done: make(chan struct{})} }

func (s *stamp) set(at time.Time) { s.at = at; close(s.done) }
func (s *stamp) fail(err error)   { s.err = err; close(s.done) }

func (s *stamp) wait(tb testing.TB) time.Time {
	tb.Helper()
	<-s.done
	if s.err != nil {
		tb.Fatal(s.err)
	}
	return s.at
}

// watchApplied records when the last of hosts' watchers applied a table for
// which changed is true.
func watchApplied(hosts []*scaleHost, changed func(*placement.Table) bool) *stamp {
	st := newStamp()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	at := make([]time.Time, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, s := range hosts {
		w := s.watcher()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ch := w.Changed()
				if changed(w.Table()) {
					at[i] = time.Now()
					return
				}
				select {
				case <-ch:
				case <-ctx.Done():
					errs[i] = fmt.Errorf("host %s never applied the change: %w", s.id, ctx.Err())
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		if err := errors.Join(errs...); err != nil {
			st.fail(err)
			return
		}
		st.set(slices.MaxFunc(at, time.Time.Compare))
	}()
	return st
}

// scaleHostCounts parses -scale.hosts.
func scaleHostCounts(tb testing.TB) []int {
	return parseCounts(tb, "-scale.hosts", *scaleHosts, "host")
}

func BenchmarkScale(b *testing.B) {
	var results []scaleResult
	for _, n := range scaleHostCounts(b) {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			var res scaleResult
			for range b.N {
				res = runScale(b, scaleConfig{hosts: n, reps: *scaleReps, rest: *scaleRest, quiet: *scaleQuiet, parallel: *scaleParallel, routers: *scaleRouters})
			}
			reportScale(b, res)
			results = append(results, res)
		})
	}
	printScaleTable(os.Stdout, results)
}

func reportScale(b *testing.B, res scaleResult) {
	b.ReportMetric(res.rest.outPerSec, "out-msgs/s")
	b.ReportMetric(res.rest.inPerSec, "in-msgs/s")
	b.ReportMetric(res.rest.outBytesPerSec/1e3, "out-kB/s")
	b.ReportMetric(100*res.rest.serverCore, "server-cpu-%")
	b.ReportMetric(100*res.rest.selfCore, "harness-cpu-%")
	b.ReportMetric(res.startup.Seconds(), "startup-s")
	for _, c := range []struct {
		name string
		cs   changes
	}{{"join", res.join}, {"leave", res.leave}, {"kill", res.kill}} {
		b.ReportMetric(c.cs.appliedMs(), c.name+"-applied-ms")
		b.ReportMetric(c.cs.callMs(), c.name+"-call-ms")
		b.ReportMetric(c.cs.deliveries(), c.name+"-deliveries")
	}
	b.ReportMetric(res.join.median(func(c change) float64 { return ms(c.start) }), "join-start-ms")
	b.ReportMetric(res.kill.median(func(c change) float64 { return ms(c.late) }), "kill-late-ms")
}

// printScaleTable writes the results as the table in docs/SCALE.md.
func printScaleTable(w io.Writer, results []scaleResult) {
	if len(results) == 0 {
		return
	}
	t := table[scaleResult]{w, results}
	row, num := t.row, numOf[scaleResult]
	t.header("N", num("%.0f", func(r scaleResult) float64 { return float64(r.hosts) }))
	row("server out msgs/s at rest", num("%.0f", func(r scaleResult) float64 { return r.rest.outPerSec }))
	row("server out kB/s at rest", num("%.0f", func(r scaleResult) float64 { return r.rest.outBytesPerSec / 1e3 }))
	row("server in msgs/s at rest", num("%.0f", func(r scaleResult) float64 { return r.rest.inPerSec }))
	row("server CPU, % of a core", num("%.1f", func(r scaleResult) float64 { return 100 * r.rest.serverCore }))
	row("harness CPU (the N hosts), % of a core", num("%.1f", func(r scaleResult) float64 { return 100 * r.rest.selfCore }))
	kinds := []struct {
		name string
		cs   func(scaleResult) changes
	}{
		{"join", func(r scaleResult) changes { return r.join }},
		{"leave", func(r scaleResult) changes { return r.leave }},
		{"kill", func(r scaleResult) changes { return r.kill }},
	}
	for _, c := range kinds {
		row(c.name+" → all watchers applied, p50 ms", num("%.1f", func(r scaleResult) float64 { return c.cs(r).appliedMs() }))
		row(c.name+" → first OK call to a moved actor, p50 ms", num("%.1f", func(r scaleResult) float64 { return c.cs(r).callMs() }))
		row(c.name+" → server out msgs (deliveries), p50", num("%.0f", func(r scaleResult) float64 { return c.cs(r).deliveries() }))
	}
	row("kill: all applied, after last renewal + TTL, p50 ms", num("%.1f", func(r scaleResult) float64 {
		return r.kill.median(func(c change) float64 { return ms(c.late) })
	}))
	row("join: the new host's Start, p50 ms", num("%.0f", func(r scaleResult) float64 {
		return r.join.median(func(c change) float64 { return ms(c.start) })
	}))
	row("starting all N hosts, s", num("%.1f", func(r scaleResult) float64 { return r.startup.Seconds() }))
	row("W, watchers (hosts + standalone routers)", num("%.0f", func(r scaleResult) float64 { return float64(r.watchers()) }))
	// The model's constants, per N. At rest the messages in are the lease
	// renewals, each acknowledged and delivered to the host's monitors, plus
	// the idle heartbeats of the watches of hosts.*.
	row(fmt.Sprintf("model: out msgs per renewal (1 + k monitors, k = %d)", placement.MonitorPeers), num("%.2f", func(r scaleResult) float64 { return r.rest.outPerSec / r.rest.inPerSec }))
	row("model: out msgs per host per second at rest", num("%.2f", func(r scaleResult) float64 { return r.rest.outPerSec / float64(r.hosts) }))
	row("model: server CPU per msg out, µs", num("%.1f", func(r scaleResult) float64 { return 1e6 * r.rest.serverCore / r.rest.outPerSec }))
	row("model: server CPU per host per second at rest, µs", num("%.0f", func(r scaleResult) float64 { return 1e6 * r.rest.serverCore / float64(r.hosts) }))
	row("model: harness CPU per host per second at rest, µs", num("%.0f", func(r scaleResult) float64 { return 1e6 * r.rest.selfCore / float64(r.hosts) }))
	for _, c := range kinds {
		// Per host: a table change now costs O(N) deliveries (it cost
		// (1+N)·W while every host watched every release record).
		row("model: "+c.name+" deliveries / N", num("%.2f", func(r scaleResult) float64 {
			return c.cs(r).deliveries() / float64(r.hosts)
		}))
	}
}

// TestScaleHarness runs BenchmarkScale's code path end to end at a small
// size, so that it cannot rot: five hosts, one join, leave, join and kill,
// short windows and a 2 s lease.
func TestScaleHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process and hosts")
	}
	cfg := scaleConfig{hosts: 5, routers: 1, reps: 1, rest: time.Second, quiet: 300 * time.Millisecond, parallel: 5, ttl: 2 * time.Second}
	res := runScale(t, cfg)
	if res.rest.outPerSec <= 0 || res.rest.inPerSec <= 0 {
		t.Errorf("no messages at rest: %+v", res.rest)
	}
	// The server's CPU time counts in ticks of 10 ms, too coarse to be sure
	// of one in a second at this size.
	if res.rest.serverCore < 0 || res.rest.selfCore <= 0 {
		t.Errorf("CPU at rest: %+v", res.rest)
	}
	if len(res.join) != 2 || len(res.leave) != 1 || len(res.kill) != 1 {
		t.Fatalf("changes measured: %d joins, %d leaves, %d kills; want 2, 1, 1", len(res.join), len(res.leave), len(res.kill))
	}
	for _, c := range slices.Concat(res.join, res.leave, res.kill) {
		if c.applied <= 0 || c.call <= 0 {
			t.Errorf("change not timed: %+v", c)
		}
	}
	// A killed host's actors can move only once its lease has run out.
	renew := cfg.ttl / placement.DefaultRenewals
	if k := res.kill[0]; k.applied < cfg.ttl-renew || k.call < cfg.ttl-renew {
		t.Errorf("kill applied after %v and answered after %v; the lease is %v, renewed every %v", k.applied, k.call, cfg.ttl, renew)
	}
	if k := res.kill[0]; k.late < 0 {
		t.Errorf("the killed host's record was gone %v before its last renewal's TTL ran out", -k.late)
	}
	var table strings.Builder
	printScaleTable(&table, []scaleResult{res})
	if got := strings.Count(table.String(), "\n"); got != 28 {
		t.Errorf("the table has %d lines, want 28:\n%s", got, table.String())
	}
	t.Logf("\n%s", table.String())
}
