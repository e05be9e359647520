// Package bench measures troupe's hot path against the NATS it runs on.
//
// The benchmarks need a real embedded nats-server (started with natstest),
// so they are benchmarks only: `go test ./bench/` runs nothing timed.
//
//	go test -run '^$' -bench Call -benchtime=2s ./bench/
//	go test -run '^$' -bench Activation -benchtime=1x ./bench/ [-actors=100000]
//
// BenchmarkCall compares, over the same connections and payload, a raw NATS
// request/reply to an echo subscriber with a troupe call (router → host →
// no-op actor), one caller at a time (seq) and 64 concurrent callers on 64
// distinct actors (par64). rawhdr is raw plus the headers a troupe request
// carries, which splits troupe's cost into wire format and runtime. Each
// sub-benchmark reports the p50 and p99 latency of one call (p50-µs,
// p99-µs), the throughput (calls/s), and what the whole process (client,
// server and host) spent per call: CPU time (cpu-µs/call), write system
// calls (writes/call, Linux) and allocations. The troupe/raw ratios are
// computed from the output.
//
// BenchmarkActivation activates -actors no-op actors per iteration on one
// host through the router (64 concurrent callers) and reports the heap held
// per idle active actor and the activation rate.
//
// BenchmarkScale (scale_test.go) measures what membership costs as the
// number of hosts grows, against a nats-server in its own process;
// docs/SCALE.md has the numbers and the model fitted to them. Under plain
// `go test`, TestScaleHarness runs it at five hosts.
//
// BenchmarkNodeActorAB (node_test.go) compares a call to the JavaScript
// counter, served by a worker process (docs/workers.md), with a call to the
// Go counter; it needs Node.js and npm, as test/nodeclients does.
package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

var actorsFlag = flag.Int("actors", 1_000_000, "actors BenchmarkActivation activates per iteration (use -benchtime=1x for exactly this many)")

const (
	actorType   = placement.ActorType("bench")
	method      = "echo"
	echoSubject = "bench.echo"
	callers     = 64 // concurrent callers of the par64 sub-benchmarks
	callTimeout = 10 * time.Second
)

// discardLogger keeps the host's info lines out of the benchmark output.
var discardLogger = slog.New(slog.DiscardHandler)

// payload is what every call sends, and every reply echoes.
var payload = []byte("0123456789abcdef")

// echo is the no-op actor: it replies with the payload.
func echo(_ context.Context, c host.Call) ([]byte, error) { return c.Payload, nil }

// fixture is one embedded server with a server-side connection (the host and
// the raw echo subscriber) and a client-side connection (the router and the
// raw requests), both TCP loopback.
type fixture struct {
	srv    *server.Server
	srvNC  *nats.Conn
	cliNC  *nats.Conn
	host   *host.Host
	router *router.Router
}

// startHost starts a host on nc with the types register adds; it is closed
// when b ends.
func startHost(b *testing.B, nc *nats.Conn, cfg host.Config, register func(*host.Host) error) *host.Host {
	b.Helper()
	h, err := host.New(nc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := register(h); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	return h
}

// newFixture starts a server, a host serving the echo actor type with cfg
// and opts, and a router on a separate connection that sees the host.
func newFixture(b *testing.B, cfg host.Config, opts ...host.TypeOption) *fixture {
	b.Helper()
	f := &fixture{srv: natstest.Server(b)}
	f.srvNC = natstest.Connect(b, f.srv)
	f.cliNC = natstest.Connect(b, f.srv)
	if cfg.Logger == nil {
		cfg.Logger = discardLogger
	}
	f.host = startHost(b, f.srvNC, cfg, func(h *host.Host) error {
		return h.Register(actorType, host.Func(echo), append([]host.TypeOption{host.NoState()}, opts...)...)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := router.New(ctx, f.cliNC, router.Config{DefaultTimeout: callTimeout})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	f.router = r
	for {
		changed := r.Watcher().Changed()
		if _, ok := r.Table().Member(f.host.ID()); ok && r.Table().Serves(actorType) {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			b.Fatal("router never saw the host")
		}
	}
	return f
}

// call makes one troupe call to actor id and checks the echo.
func (f *fixture) call(id placement.ActorID) error {
	reply, err := f.router.Call(context.Background(), actorType, id, method, payload)
	if err != nil {
		return err
	}
	if len(reply) != len(payload) {
		return fmt.Errorf("troupe reply of %d bytes, want %d", len(reply), len(payload))
	}
	return nil
}

// raw makes one plain NATS request to the echo subscriber.
func (f *fixture) raw() error {
	msg, err := f.cliNC.Request(echoSubject, payload, callTimeout)
	if err != nil {
		return err
	}
	if len(msg.Data) != len(payload) {
		return fmt.Errorf("raw reply of %d bytes, want %d", len(msg.Data), len(payload))
	}
	return nil
}

// rawHeader is what a troupe request carries besides the payload, for the
// rawhdr sub-benchmarks: a raw request/reply paying troupe's wire format
// (headers encoded, sent, parsed) but none of its routing and runtime.
var rawHeader = nats.Header{router.HeaderCall: {string(actorType) + " seq " + method + " 3 10000"}}

// rawHdr makes one plain NATS request with troupe's request headers.
func (f *fixture) rawHdr() error {
	msg, err := f.cliNC.RequestMsg(&nats.Msg{Subject: echoSubject, Header: rawHeader, Data: payload}, callTimeout)
	if err != nil {
		return err
	}
	if len(msg.Data) != len(payload) {
		return fmt.Errorf("raw reply of %d bytes, want %d", len(msg.Data), len(payload))
	}
	return nil
}

func actorID(prefix string, i int) placement.ActorID {
	return placement.ActorID(prefix + strconv.Itoa(i))
}

func BenchmarkCall(b *testing.B) {
	f := newFixture(b, host.Config{})
	warm := f.warm(b)

	b.Run("raw/seq", func(b *testing.B) { runSeq(b, func(int) error { return f.raw() }) })
	b.Run("rawhdr/seq", func(b *testing.B) { runSeq(b, func(int) error { return f.rawHdr() }) })
	b.Run("troupe/seq", func(b *testing.B) { runSeq(b, func(int) error { return f.call("seq") }) })
	// One caller cycling over many active actors: directory lookups miss the
	// cache as they would on a busy host.
	b.Run("troupe/seq-many", func(b *testing.B) {
		runSeq(b, func(i int) error { return f.call(warm[1+callers+i%manyActors]) })
	})
	b.Run("raw/par64", func(b *testing.B) { runPar(b, func(int) error { return f.raw() }) })
	b.Run("rawhdr/par64", func(b *testing.B) { runPar(b, func(int) error { return f.rawHdr() }) })
	b.Run("troupe/par64", func(b *testing.B) {
		runPar(b, func(g int) error { return f.call(warm[1+g]) })
	})
}

// manyActors is how many actors the seq-many sub-benchmark cycles over.
const manyActors = 1024

// warm starts the echo subscriber and activates every actor the call
// benchmarks use, so they measure calls to active actors only. It returns
// the actor ids: "seq", then the par64 callers' actors, then manyActors more.
func (f *fixture) warm(b *testing.B) []placement.ActorID {
	// The echo replies with the payload only, as the host does on success.
	sub, err := f.srvNC.Subscribe(echoSubject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1) // as the host's subscription
	if err := f.srvNC.Flush(); err != nil {
		b.Fatal(err)
	}
	warm := []placement.ActorID{"seq"}
	for i := range callers {
		warm = append(warm, actorID("par", i))
	}
	for i := range manyActors {
		warm = append(warm, actorID("many", i))
	}
	for _, id := range warm {
		if err := f.call(id); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.raw(); err != nil {
		b.Fatal(err)
	}
	return warm
}

// runSeq makes b.N calls one after another; do gets the call's index.
func runSeq(b *testing.B, do func(i int) error) {
	b.ReportAllocs()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := sample()
	for i := range b.N {
		t0 := time.Now()
		if err := do(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	end := sample()
	b.StopTimer()
	report(b, lat, start, end)
}

// runPar makes b.N calls from exactly `callers` goroutines; do gets the
// goroutine's index, so each goroutine can call its own actor.
func runPar(b *testing.B, do func(g int) error) {
	var (
		left  atomic.Int64
		wg    sync.WaitGroup
		lats  = make([][]time.Duration, callers)
		errMu sync.Mutex
		first error
	)
	b.ReportAllocs()
	left.Store(int64(b.N))
	for g := range lats {
		lats[g] = make([]time.Duration, 0, b.N/callers+1)
	}
	b.ResetTimer()
	start := sample()
	for g := range callers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				t0 := time.Now()
				if err := do(g); err != nil {
					errMu.Lock()
					first = cmpOr(first, err)
					errMu.Unlock()
					return
				}
				lats[g] = append(lats[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	end := sample()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	report(b, slices.Concat(lats...), start, end)
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// report adds the latency percentiles and the throughput of one run, and
// what the whole process (client, NATS server and host alike) spent per
// call: CPU time and write system calls.
func report(b *testing.B, lat []time.Duration, start, end usage) {
	if len(lat) == 0 {
		return
	}
	n := float64(len(lat))
	slices.Sort(lat)
	b.ReportMetric(micros(percentile(lat, 0.50)), "p50-µs")
	b.ReportMetric(micros(percentile(lat, 0.99)), "p99-µs")
	b.ReportMetric(n/end.wall.Sub(start.wall).Seconds(), "calls/s")
	b.ReportMetric(micros(end.cpu-start.cpu)/n, "cpu-µs/call")
	if start.writes >= 0 && end.writes >= 0 {
		b.ReportMetric(float64(end.writes-start.writes)/n, "writes/call")
	}
}

// usage is a sample of the clock and of the process's resource counters.
type usage struct {
	wall   time.Time
	cpu    time.Duration // user + system CPU time of the process
	writes int64         // write system calls of the process; -1 if unknown
}

func sample() usage {
	u := usage{wall: time.Now(), writes: writeSyscalls()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u
}

// writeSyscalls reads the process's count of write system calls from
// /proc/self/io (Linux), or returns -1.
func writeSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscw:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkActivation activates -actors × b.N no-op actors on one host and
// measures the heap they hold once idle. Run it with -benchtime=1x to
// activate exactly -actors actors; with a time-based -benchtime and a small
// -actors the framework raises b.N and the per-actor figures cover every
// actor activated in the final run.
func BenchmarkActivation(b *testing.B) {
	if *actorsFlag < 1 {
		b.Fatalf("-actors=%d: want at least 1", *actorsFlag)
	}
	const idle = 24 * time.Hour // nothing deactivates during the run
	f := newFixture(b, host.Config{IdleTimeout: idle}, host.IdleTimeout(idle))
	if err := f.call("warm"); err != nil { // connections, inboxes and pools warm
		b.Fatal(err)
	}
	total := *actorsFlag * b.N
	before := heapAfterGC()
	goroutinesBefore := runtime.NumGoroutine()

	b.ResetTimer()
	start := time.Now()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range callers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				if err := f.call(actorID("a", i)); err != nil {
					errMu.Lock()
					first = cmpOr(first, fmt.Errorf("activating actor %d: %w", i, err))
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}

	after := heapAfterGC()
	active := f.host.ActiveActors()[actorType]
	if want := total + 1; active != want {
		b.Fatalf("host has %d active actors, want %d", active, want)
	}
	b.ReportMetric((float64(after)-float64(before))/float64(total), "B/actor")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "activations/s")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutinesBefore), "goroutines-added")
	b.ReportMetric(float64(total), "actors")
}

// heapAfterGC returns the live heap after two full collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
