package bench

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/troupe-dev/troupe/internal/natstest"
)

// BenchmarkMicroAB measures what routing calls through a nats.go/micro
// endpoint would cost on the hot path: it alternates phases of request/reply
// to a plain subscription handler and to a micro endpoint handler (same
// server, same connections, same echo), as BenchmarkCallAB does, and reports
// each side's p50 and throughput and the micro/plain ratios.
// Run it once: go test -run '^$' -bench MicroAB -benchtime=1x ./bench/
func BenchmarkMicroAB(b *testing.B) {
	s := natstest.Server(b)
	srvNC, cliNC := natstest.Connect(b, s), natstest.Connect(b, s)
	const plainSubject, microSubject = "bench.plain", "bench.micro"
	sub, err := srvNC.Subscribe(plainSubject, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	svc, err := micro.AddService(srvNC, micro.Config{Name: "bench", Version: "0.0.1"})
	if err != nil {
		b.Fatal(err)
	}
	err = svc.AddEndpoint("echo", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond(r.Data()) }),
		micro.WithEndpointSubject(microSubject), micro.WithEndpointQueueGroupDisabled(),
		micro.WithEndpointPendingLimits(-1, -1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Stop() })
	req := func(subject string) error {
		msg, err := cliNC.Request(subject, payload, callTimeout)
		if err != nil {
			return err
		}
		if len(msg.Data) != len(payload) {
			return fmt.Errorf("reply of %d bytes, want %d", len(msg.Data), len(payload))
		}
		return nil
	}
	for _, mode := range abModes {
		b.Run(mode.name, func(b *testing.B) {
			sides := alternate(b, mode.callers,
				func(int) error { return req(plainSubject) },
				func(int) error { return req(microSubject) })
			reportAB(b, "plain", sides[0], "micro", sides[1])
		})
	}
}
