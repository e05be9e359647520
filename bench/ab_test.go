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
	for _, mode := range abModes {
		b.Run(mode.name, func(b *testing.B) {
			sides := alternate(b, mode.callers,
				func(int) error { return f.raw() },
				func(g int) error { return f.call(warm[1+g]) })
			reportAB(b, "raw", sides[0], "troupe", sides[1])
		})
	}
}

// abModes are the sub-benchmarks of the A/B benchmarks: one caller, and
// many.
var abModes = []struct {
	name    string
	callers int
}{{"seq", 1}, {"par64", callers}}

// alternate runs -ab-rounds rounds of one phase of each side with callers
// goroutines, reversing the order every other round, and returns each
// side's results.
func alternate(b *testing.B, callers int, sides ...func(g int) error) []*abSide {
	results := make([]*abSide, len(sides))
	order := make([]int, len(sides))
	for i := range results {
		results[i], order[i] = &abSide{}, i
	}
	for range *abRounds {
		for _, i := range order {
			results[i].phase(b, callers, sides[i])
		}
		slices.Reverse(order)
	}
	return results
}

// reportAB reports the p50 latency and throughput of a base side and
// another, and their ratios (other over base).
func reportAB(b *testing.B, baseName string, base *abSide, name string, other *abSide) {
	baseP50, p50 := base.p50(), other.p50()
	b.ReportMetric(micros(baseP50), baseName+"-p50-µs")
	b.ReportMetric(micros(p50), name+"-p50-µs")
	b.ReportMetric(base.rate(), baseName+"-calls/s")
	b.ReportMetric(other.rate(), name+"-calls/s")
	b.ReportMetric(float64(p50)/float64(baseP50), "p50-ratio")
	b.ReportMetric(other.rate()/base.rate(), "throughput-ratio")
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
