package bench

import (
	"context"
	"testing"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// BenchmarkIdempotencyAB measures what call ids cost a stateful call: the
// counter's add without a call id (router.WithoutCallID: the state entry
// is the total's bytes alone) against the same call with the router's
// default new id per call (the state entry then carries the saved call
// window, up to 128 records, written with every save, and the activation
// remembers the call in memory), in alternating phases (as BenchmarkCallAB).
// Each side has its own counters, and the counters with ids start with a
// full window, as a busy actor has. A third side, ids-w16, is the same
// counter registered with host.CallWindow(16, 0, 0): what a smaller saved
// window buys. seq is one caller on one counter; par64 is 64 callers, each
// on its own counter.
//
//	go test -run '^$' -bench IdempotencyAB -benchtime=1x ./bench/
func BenchmarkIdempotencyAB(b *testing.B) {
	const small placement.ActorType = "counter16"
	srv := natstest.Server(b)
	srvNC, cliNC := natstest.Connect(b, srv), natstest.Connect(b, srv)
	startHost(b, srvNC, host.Config{Logger: discardLogger}, func(h *host.Host) error {
		if err := counter.Register(h); err != nil {
			return err
		}
		return h.Register(small, counter.New, host.CallWindow(16, 0, 0))
	})
	r := natstest.Router(b, cliNC)
	ctx := context.Background()
	addTo := func(typ placement.ActorType, id placement.ActorID, opts ...router.CallOption) error {
		_, err := r.Call(ctx, typ, id, "add", []byte("1"), opts...)
		return err
	}
	add := func(id placement.ActorID, opts ...router.CallOption) error { return addTo(counter.Type, id, opts...) }
	for g := range callers {
		if err := add(actorID("plain", g), router.WithoutCallID()); err != nil {
			b.Fatal(err)
		}
		for range host.DefaultCallWindowCalls {
			if err := add(actorID("ids", g)); err != nil {
				b.Fatal(err)
			}
			if err := addTo(small, actorID("ids", g)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, mode := range abModes {
		b.Run(mode.name, func(b *testing.B) {
			sides := alternate(b, mode.callers,
				func(g int) error { return add(actorID("plain", g), router.WithoutCallID()) },
				func(g int) error { return add(actorID("ids", g)) },
				func(g int) error { return addTo(small, actorID("ids", g)) })
			reportAB(b, "plain", sides[0], "ids", sides[1])
			b.ReportMetric(micros(sides[2].p50()), "ids-w16-p50-µs")
			b.ReportMetric(sides[2].rate(), "ids-w16-calls/s")
			b.ReportMetric(float64(sides[2].p50())/float64(sides[0].p50()), "w16-p50-ratio")
			b.ReportMetric(sides[2].rate()/sides[0].rate(), "w16-throughput-ratio")
		})
	}
}
