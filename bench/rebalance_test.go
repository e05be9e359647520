package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// The rebalance benchmarks measure table changes on loopback, with several
// hosts in one process, each on its own connection:
//
//	go test -run '^$' -bench Rebalance -benchtime=1x ./bench/
//
// BenchmarkRebalance/spread: a host joins or leaves gracefully while
// rebalanceHosts others serve counters under load; for each membership write
// it reports the time from the write (the server's timestamp) until every
// host has applied the new generation (applied-p50/p99-ms) and until every
// host has also handed off what it lost and released (settled-p50/p99-ms).
//
// BenchmarkRebalance/leave and /kill: under the same load, a host leaves
// gracefully (Shutdown) or crashes (Close: no leave, its lease runs out).
// leave reports the calls that failed and the latency added to the calls
// made during the leave (their worst latency minus the p99 before it); kill
// reports how long each of the crashed host's actors was unavailable (from
// the crash until its first successful call), against the lease TTL.

const (
	rebalanceHosts  = 4
	rebalanceActors = 300
	rebalanceTTL    = time.Second
)

type cluster struct {
	b      *testing.B
	srv    *server.Server
	router *router.Router
	kv     jetstream.KeyValue
	hosts  []*host.Host
	next   int

	mu      sync.Mutex
	written map[uint64]time.Time // membership revision → the server's timestamp
}

func newCluster(b *testing.B) *cluster {
	c := &cluster{b: b, srv: natstest.Server(b)}
	for range rebalanceHosts {
		c.add()
	}
	nc := natstest.Connect(b, c.srv)
	c.router = natstest.Router(b, nc)
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), placement.DefaultBucket)
	if err != nil {
		b.Fatal(err)
	}
	c.kv = kv
	c.written = make(map[uint64]time.Time)
	kw, err := kv.Watch(context.Background(), protocol.HostKeys, jetstream.UpdatesOnly())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = kw.Stop() })
	go func() {
		for e := range kw.Updates() {
			if e != nil {
				c.mu.Lock()
				c.written[e.Revision()] = e.Created()
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// writtenAt is the server's timestamp of the membership write at rev.
func (c *cluster) writtenAt(rev uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.written[rev]
	return t, ok
}

// add starts one more host.
func (c *cluster) add() *host.Host {
	c.next++
	cfg := host.Config{
		ID:     placement.HostID(fmt.Sprintf("r%d", c.next)),
		Logger: discardLogger,
		Lease:  placement.LeaseConfig{TTL: rebalanceTTL},
	}
	h := startHost(c.b, natstest.Connect(c.b, c.srv), cfg, counter.Register)
	c.hosts = append(c.hosts, h)
	return h
}

func (c *cluster) remove(h *host.Host) {
	c.hosts = slices.DeleteFunc(c.hosts, func(x *host.Host) bool { return x == h })
}

// waitSettled waits until every host has released at the router's
// generation and the router's table lists every host.
func (c *cluster) waitSettled() {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		t := c.router.Table()
		ok := len(t.Hosts(counter.Type)) == len(c.hosts)
		for _, h := range c.hosts {
			w := h.Router().Watcher()
			ok = ok && w.Table().Generation() == t.Generation() && w.Settled() >= t.Generation()
		}
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	c.b.Fatal("hosts did not settle")
}

// loadGen calls add 1 on random counters until stopped.
type loadGen struct {
	quit chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	obs  []callObs
}

type callObs struct {
	start, end time.Time
	err        error
}

func (c *cluster) startLoad(callers int) *loadGen {
	g := &loadGen{quit: make(chan struct{})}
	for w := range callers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for i := w; ; i += callers {
				select {
				case <-g.quit:
					return
				default:
				}
				id := placement.ActorID(fmt.Sprintf("c%d", i%rebalanceActors))
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := c.router.Call(ctx, counter.Type, id, "add", []byte("1"))
				cancel()
				g.mu.Lock()
				g.obs = append(g.obs, callObs{start, time.Now(), err})
				g.mu.Unlock()
			}
		}()
	}
	return g
}

func (g *loadGen) stop() {
	close(g.quit)
	g.wg.Wait()
}

// between returns the calls that started in [from, to).
func (g *loadGen) between(from, to time.Time) []callObs {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []callObs
	for _, o := range g.obs {
		if !o.start.Before(from) && o.start.Before(to) {
			out = append(out, o)
		}
	}
	return out
}

func latencies(obs []callObs) (lat []time.Duration, failed int) {
	for _, o := range obs {
		if o.err != nil {
			failed++
			continue
		}
		lat = append(lat, o.end.Sub(o.start))
	}
	slices.Sort(lat)
	return lat, failed
}

func BenchmarkRebalance(b *testing.B) {
	b.Run("spread", benchSpread)
	b.Run("leave", benchLeave)
	b.Run("kill", benchKill)
}

// observer records, for each host, when it applied and settled each
// generation.
type observer struct {
	mu      sync.Mutex
	applied map[string]map[uint64]time.Time // host → generation → first seen
	settled map[string]map[uint64]time.Time
	quit    chan struct{}
	wg      sync.WaitGroup
}

func observe(hosts []*host.Host) *observer {
	o := &observer{applied: map[string]map[uint64]time.Time{}, settled: map[string]map[uint64]time.Time{}, quit: make(chan struct{})}
	for _, h := range hosts {
		id := string(h.ID())
		o.applied[id], o.settled[id] = map[uint64]time.Time{}, map[uint64]time.Time{}
		w := h.Router().Watcher()
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			for {
				ch := w.Changed()
				now := time.Now()
				g, s := w.Table().Generation(), w.Settled()
				o.mu.Lock()
				if _, ok := o.applied[id][g]; !ok {
					o.applied[id][g] = now
				}
				if _, ok := o.settled[id][s]; !ok {
					o.settled[id][s] = now
				}
				o.mu.Unlock()
				select {
				case <-ch:
				case <-o.quit:
					return
				}
			}
		}()
	}
	return o
}

// generations lists the table generations the hosts applied in (after, upto].
func (o *observer) generations(after, upto uint64) []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var gens []uint64
	for _, m := range o.applied {
		for g := range m {
			if g > after && g <= upto && !slices.Contains(gens, g) {
				gens = append(gens, g)
			}
		}
	}
	return gens
}

func (o *observer) stop() {
	close(o.quit)
	o.wg.Wait()
}

// lastAt returns when the last host reached generation gen in m.
func lastAt(m map[string]map[uint64]time.Time, gen uint64) (time.Time, bool) {
	var last time.Time
	for _, gens := range m {
		first := time.Time{}
		for g, at := range gens {
			if g >= gen && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		if first.IsZero() {
			return time.Time{}, false
		}
		if first.After(last) {
			last = first
		}
	}
	return last, true
}

var spreadCallers = flag.Int("spread-callers", 8, "callers loading the hosts while BenchmarkRebalance/spread measures")

func benchSpread(b *testing.B) {
	c := newCluster(b)
	load := c.startLoad(*spreadCallers)
	defer load.stop()
	var applied, settled []time.Duration
	for range b.N {
		for round := 0; round < 20; round++ {
			obs := observe(c.hosts)
			before := c.router.Table().Generation()
			h := c.add()
			c.waitSettled()
			if err := h.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			c.remove(h)
			c.waitSettled()
			left := c.router.Table().Generation()
			obs.stop()
			for _, gen := range obs.generations(before, left) {
				written, ok := c.writtenAt(gen)
				if !ok {
					continue
				}
				if a, ok := lastAt(obs.applied, gen); ok {
					applied = append(applied, a.Sub(written))
				}
				if s, ok := lastAt(obs.settled, gen); ok {
					settled = append(settled, s.Sub(written))
				}
			}
		}
	}
	slices.Sort(applied)
	slices.Sort(settled)
	b.ReportMetric(ms(percentile(applied, 0.5)), "applied-p50-ms")
	b.ReportMetric(ms(percentile(applied, 0.99)), "applied-p99-ms")
	b.ReportMetric(ms(percentile(settled, 0.5)), "settled-p50-ms")
	b.ReportMetric(ms(percentile(settled, 0.99)), "settled-p99-ms")
	b.ReportMetric(float64(len(applied)), "changes")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func benchLeave(b *testing.B) {
	c := newCluster(b)
	load := c.startLoad(16)
	defer load.stop()
	failed, calls := 0, 0
	var added []time.Duration
	for range b.N {
		for round := 0; round < 10; round++ {
			h := c.add()
			c.waitSettled()
			time.Sleep(300 * time.Millisecond)
			t0 := time.Now()
			if err := h.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			c.remove(h)
			t1 := time.Now()
			time.Sleep(300 * time.Millisecond)
			base, _ := latencies(load.between(t0.Add(-300*time.Millisecond), t0))
			during, f := latencies(load.between(t0, t1.Add(100*time.Millisecond)))
			failed += f
			calls += len(during) + f
			if len(base) > 0 && len(during) > 0 {
				added = append(added, max(0, during[len(during)-1]-percentile(base, 0.99)))
			}
		}
	}
	slices.Sort(added)
	b.ReportMetric(float64(failed), "failed-calls")
	b.ReportMetric(float64(calls), "calls-during-leave")
	b.ReportMetric(ms(percentile(added, 0.5)), "added-p50-ms")
	b.ReportMetric(ms(added[len(added)-1]), "added-max-ms")
}

func benchKill(b *testing.B) {
	c := newCluster(b)
	load := c.startLoad(8)
	defer load.stop()
	var outage []time.Duration
	for range b.N {
		for round := 0; round < 5; round++ {
			h := c.add()
			c.waitSettled()
			var victims []placement.ActorID
			t := c.router.Table()
			for i := 0; i < rebalanceActors && len(victims) < 20; i++ {
				id := placement.ActorID(fmt.Sprintf("c%d", i))
				if o, _ := t.Owner(counter.Type, id); o.ID == h.ID() {
					victims = append(victims, id)
				}
			}
			t0 := time.Now()
			h.Close()
			c.remove(h)
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, id := range victims {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
						_, err := c.router.Call(ctx, counter.Type, id, "get", nil)
						cancel()
						if err == nil {
							mu.Lock()
							outage = append(outage, time.Since(t0))
							mu.Unlock()
							return
						}
					}
				}()
			}
			wg.Wait()
			c.waitSettled()
		}
	}
	slices.Sort(outage)
	b.ReportMetric(ms(percentile(outage, 0.5)), "unavailable-p50-ms")
	b.ReportMetric(ms(outage[len(outage)-1]), "unavailable-max-ms")
	b.ReportMetric(ms(rebalanceTTL), "lease-ttl-ms")
}
