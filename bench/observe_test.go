package bench

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// obsVariant is one way of running the same no-op actor: with or without
// metrics and tracing, on a host and router of its own.
type obsVariant struct {
	name    string
	metrics bool
	tracer  func(b *testing.B) trace.TracerProvider // nil: no tracing
	typ     placement.ActorType
	r       *router.Router
	side    abSide
}

// sampledTracer and unsampledTracer are real SDK providers: spans of the
// first are all recorded and batched to an exporter that drops them; the
// second samples none (the trace context still travels).
func sampledTracer(b *testing.B) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

func unsampledTracer(b *testing.B) trace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// BenchmarkObserveAB measures what metrics and tracing cost a call: it runs
// one host and one router per variant on one server (off, metrics,
// tracing with every call sampled, tracing with none sampled, and metrics
// with sampled tracing) and alternates short phases of calls over them, in
// a new random order every round and each after a garbage collection, so the
// machine's drift hits all alike and no phase pays for the garbage of the
// one before.
// It reports each variant's p50 and throughput relative to "off".
// Run it once: go test -run '^$' -bench ObserveAB -benchtime=1x ./bench/
func BenchmarkObserveAB(b *testing.B) {
	srv := natstest.Server(b)
	cliNC := natstest.Connect(b, srv)
	variants := []*obsVariant{
		{name: "off"},
		{name: "metrics", metrics: true},
		{name: "trace-sampled", tracer: sampledTracer},
		{name: "trace-unsampled", tracer: unsampledTracer},
		{name: "metrics+trace", metrics: true, tracer: sampledTracer},
	}
	for i, v := range variants {
		v.typ = placement.ActorType(fmt.Sprintf("obs%d", i))
		v.start(b, srv, cliNC)
	}
	for _, mode := range []struct {
		name    string
		callers int
	}{{"seq", 1}, {"par64", callers}} {
		b.Run(mode.name, func(b *testing.B) {
			for _, v := range variants {
				v.side = abSide{}
			}
			order := rand.New(rand.NewPCG(1, 2))
			for range *abRounds {
				for _, k := range order.Perm(len(variants)) {
					v := variants[k]
					runtime.GC() // no phase pays for the garbage of the one before
					v.side.phase(b, mode.callers, func(g int) error { return v.call(actorID("par", g)) })
				}
			}
			off := variants[0].side
			offP50 := off.p50()
			b.ReportMetric(micros(offP50), "off-p50-µs")
			b.ReportMetric(off.rate(), "off-calls/s")
			for _, v := range variants[1:] {
				b.ReportMetric(float64(v.side.p50())/float64(offP50), v.name+"-p50-ratio")
				b.ReportMetric(v.side.rate()/off.rate(), v.name+"-throughput-ratio")
			}
		})
	}
}

// start runs the variant's host on a connection of its own and its router
// on cliNC, and activates the actors the phases call.
func (v *obsVariant) start(b *testing.B, srv interface{ ClientURL() string }, cliNC *nats.Conn) {
	b.Helper()
	hcfg := host.Config{Logger: discardLogger}
	var rcfg router.Config
	rcfg.DefaultTimeout = callTimeout
	if v.metrics {
		reg := prometheus.NewRegistry()
		hcfg.Metrics, rcfg.Metrics = reg, reg
	}
	if v.tracer != nil {
		tp := v.tracer(b)
		hcfg.TracerProvider, rcfg.TracerProvider = tp, tp
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	h := startHost(b, nc, hcfg, func(h *host.Host) error {
		return h.Register(v.typ, host.Func(echo), host.NoState())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if v.r, err = router.New(ctx, cliNC, rcfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.r.Close)
	for !v.r.Table().Serves(v.typ) || !slices.ContainsFunc(v.r.Table().Members(), func(m placement.Member) bool { return m.ID == h.ID() }) {
		select {
		case <-v.r.Watcher().Changed():
		case <-ctx.Done():
			b.Fatal("router never saw the host")
		}
	}
	for g := range callers {
		if err := v.call(actorID("par", g)); err != nil {
			b.Fatal(err)
		}
	}
}

func (v *obsVariant) call(id placement.ActorID) error {
	reply, err := v.r.Call(context.Background(), v.typ, id, method, payload)
	if err == nil && len(reply) != len(payload) {
		err = fmt.Errorf("reply of %d bytes, want %d", len(reply), len(payload))
	}
	return err
}

var scrapeActors = flag.Int("scrape-actors", 100_000, "BenchmarkScrape: active actors on the host")

// BenchmarkScrape measures one scrape of a host's metrics with
// -scrape-actors active actors: the gauges are read at scrape time, and the
// mailbox gauges walk every activation.
// Run it: go test -run '^$' -bench Scrape -benchtime=20x ./bench/
func BenchmarkScrape(b *testing.B) {
	const idle = 24 * time.Hour
	reg := prometheus.NewRegistry()
	f := newFixture(b, host.Config{IdleTimeout: idle, Metrics: reg}, host.IdleTimeout(idle))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < *scrapeActors; i = int(next.Add(1)) - 1 {
				if err := f.call(actorID("s", i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for range b.N {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/scrape")
	b.ReportMetric(float64(*scrapeActors), "actors")
}
