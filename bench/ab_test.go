package bench

import (
	"github.com/troupe-dev/troupe/host"

	"flag"
	"slices"
	"sync"
	"testing"
	"time"
)

var (
	abRounds = flag.Int("ab-rounds", 10, "BenchmarkCallAB: rounds of one raw and one troupe phase")
	abPhase  = flag.Duration("ab-phase", 300*time.Millisecond, "BenchmarkCallAB: length of one phase")
)

// BenchmarkCallAB measures the troupe/raw ratios directly: it alternates
// short phases of raw request/reply and of troupe calls (swapping which goes
// first every round) with the same callers, so that drift in what the
// machine gives the process (shared CI hosts, neighbours) hits both sides
// alike. It reports each side's p50 latency and throughput and their ratios.
// Run it once: go test -run '^$' -bench CallAB -benchtime=1x ./bench/
func BenchmarkCallAB(b *testing.B) {
	f := newFixture(b, host.Config{})
	warm := f.warm(b)
	for _, mode := range []struct {
		name    string
		callers int
	}{{"seq", 1}, {"par64", callers}} {
		b.Run(mode.name, func(b *testing.B) {
			raw, troupe := &abSide{}, &abSide{}
			for round := range *abRounds {
				sides := []func(){
					func() { raw.phase(b, mode.callers, func(int) error { return f.raw() }) },
					func() { troupe.phase(b, mode.callers, func(g int) error { return f.call(warm[1+g]) }) },
				}
				if round%2 == 1 {
					slices.Reverse(sides)
				}
				for _, run := range sides {
					run()
				}
			}
			rawP50, troupeP50 := raw.p50(), troupe.p50()
			b.ReportMetric(micros(rawP50), "raw-p50-µs")
			b.ReportMetric(micros(troupeP50), "troupe-p50-µs")
			b.ReportMetric(raw.rate(), "raw-calls/s")
			b.ReportMetric(troupe.rate(), "troupe-calls/s")
			b.ReportMetric(float64(troupeP50)/float64(rawP50), "p50-ratio")
			b.ReportMetric(troupe.rate()/raw.rate(), "throughput-ratio")
		})
	}
}

// abSide accumulates one side's phases.
type abSide struct {
	lat     []time.Duration
	calls   int
	elapsed time.Duration
}

// phase runs do from n goroutines for one phase.
func (s *abSide) phase(b *testing.B, n int, do func(g int) error) {
	lats := make([][]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(*abPhase)
	for g := range n {
		wg.Go(func() {
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := do(g); err != nil {
					b.Error(err)
					return
				}
				lats[g] = append(lats[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	s.elapsed += time.Since(start)
	for _, l := range lats {
		s.lat = append(s.lat, l...)
		s.calls += len(l)
	}
}

func (s *abSide) p50() time.Duration {
	slices.Sort(s.lat)
	return percentile(s.lat, 0.5)
}

func (s *abSide) rate() float64 { return float64(s.calls) / s.elapsed.Seconds() }
