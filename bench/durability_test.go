package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/embedded"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// BenchmarkDurabilityAB measures what fsync costs a stateful call: the
// counter's add (one compare-and-set state save per call) on servers with
// JetStream's default fsync interval (2 minutes), a 100 ms interval, and
// SyncAlways (fsync before every acknowledgement), in rotating phases, one
// caller at a time (seq) and 64 callers on 64 counters (par64):
//
//	go test -run '^$' -bench DurabilityAB -benchtime=1x ./bench/
func BenchmarkDurabilityAB(b *testing.B) {
	routers := []*router.Router{
		durableRouter(b, embedded.Config{}),
		durableRouter(b, embedded.Config{SyncInterval: 100 * time.Millisecond}),
		durableRouter(b, embedded.Config{SyncAlways: true}),
	}
	for _, mode := range []struct {
		name    string
		callers int
	}{{"seq", 1}, {"par64", callers}} {
		b.Run(mode.name, func(b *testing.B) {
			sides := []*abSide{{}, {}, {}}
			for round := range *abRounds {
				for k := range sides {
					i := (round + k) % len(sides)
					r := routers[i]
					sides[i].phase(b, mode.callers, func(g int) error {
						_, err := r.Call(context.Background(), counter.Type, placement.ActorID(fmt.Sprint("d", g)), "add", []byte("1"))
						return err
					})
				}
			}
			for i, name := range []string{"default", "100ms", "always"} {
				b.ReportMetric(micros(sides[i].p50()), name+"-p50-µs")
				b.ReportMetric(sides[i].rate(), name+"-calls/s")
			}
		})
	}
}

// durableRouter starts a server with cfg's fsync settings, a counter host on
// it, and returns a router to it.
func durableRouter(b *testing.B, cfg embedded.Config) *router.Router {
	cfg.StoreDir = b.TempDir()
	s, err := embedded.Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	startHost(b, natstest.Connect(b, s), host.Config{Logger: discardLogger}, counter.Register)
	return natstest.Router(b, natstest.Connect(b, s))
}
