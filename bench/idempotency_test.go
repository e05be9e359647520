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
// full window, as a busy actor has. seq is one caller on one counter;
// par64 is 64 callers, each on its own counter.
//
//	go test -run '^$' -bench IdempotencyAB -benchtime=1x ./bench/
func BenchmarkIdempotencyAB(b *testing.B) {
	srv := natstest.Server(b)
	srvNC, cliNC := natstest.Connect(b, srv), natstest.Connect(b, srv)
	startHost(b, srvNC, host.Config{Logger: discardLogger}, counter.Register)
	r := natstest.Router(b, cliNC)
	ctx := context.Background()
	add := func(id placement.ActorID, opts ...router.CallOption) error {
		_, err := r.Call(ctx, counter.Type, id, "add", []byte("1"), opts...)
		return err
	}
	for g := range callers {
		if err := add(actorID("plain", g), router.WithoutCallID()); err != nil {
			b.Fatal(err)
		}
		for range host.DefaultCallWindowCalls {
			if err := add(actorID("ids", g)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, mode := range abModes {
		b.Run(mode.name, func(b *testing.B) {
			sides := alternate(b, mode.callers,
				func(g int) error { return add(actorID("plain", g), router.WithoutCallID()) },
				func(g int) error { return add(actorID("ids", g)) })
			reportAB(b, "plain", sides[0], "ids", sides[1])
		})
	}
}
