package bench

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
)

// Subjects of the partition-mapping experiment: the server itself maps a
// gateway-style subject onto one of partitions partition subjects, by a
// hash of the type and id tokens, so a client reaches the partition's
// subscriber in one hop with no client logic.
const (
	partitions      = 64
	mappedSubject   = "bench.pcall.*.*.*"
	mappedTarget    = "bench.part.{{partition(64,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"
	partitionFilter = "bench.part.*.>"
)

// BenchmarkGatewayAB measures the gateway's extra hop, and the alternative
// of letting the NATS server route gateway calls with a subject mapping. It
// alternates phases (as BenchmarkCallAB does) of:
//
//	raw       plain request/reply to an echo subscriber
//	mapped    the same through the server's partition() subject mapping
//	troupe    router.Call to the owner's subject (one hop)
//	gateway   a plain request to troupe.call.<type>.<id>.<method>, taken by
//	          a gateway-only host that forwards it to the owner with the
//	          caller's reply subject; the owner answers the caller (three
//	          messages: client, gateway host, owner, client)
//
// Run it once: go test -run '^$' -bench GatewayAB -benchtime=1x ./bench/
func BenchmarkGatewayAB(b *testing.B) {
	f := newFixture(b, host.Config{DisableGateway: true})
	warm := f.warm(b)
	if err := f.srv.GlobalAccount().AddMapping(mappedSubject, mappedTarget); err != nil {
		b.Fatal(err)
	}
	sub, err := f.srvNC.Subscribe(partitionFilter, func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	startGatewayHost(b, f)

	sides := []struct {
		name string
		do   func(g int) error
	}{
		{"raw", func(int) error { return f.raw() }},
		{"mapped", func(g int) error { return f.request(fmt.Sprintf("bench.pcall.%s.%s.%s", actorType, warm[1+g], method)) }},
		{"troupe", func(g int) error { return f.call(warm[1+g]) }},
		{"gateway", func(g int) error {
			return f.request(protocol.GatewaySubject("troupe", actorType, warm[1+g], method))
		}},
	}
	for _, mode := range []struct {
		name    string
		callers int
	}{{"seq", 1}, {"par64", callers}} {
		b.Run(mode.name, func(b *testing.B) {
			results := make([]*abSide, len(sides))
			for i := range results {
				results[i] = &abSide{}
			}
			for round := range *abRounds {
				order := []int{0, 1, 2, 3}
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, i := range order {
					results[i].phase(b, mode.callers, sides[i].do)
				}
			}
			raw := results[0]
			for i, s := range sides {
				b.ReportMetric(micros(results[i].p50()), s.name+"-p50-µs")
				if i > 0 {
					b.ReportMetric(float64(results[i].p50())/float64(raw.p50()), s.name+"/raw-p50")
					b.ReportMetric(results[i].rate()/raw.rate(), s.name+"/raw-calls")
				}
			}
		})
	}
}

// startGatewayHost starts a host that serves no actor type: every gateway
// call it takes is forwarded to the owner.
func startGatewayHost(b *testing.B, f *fixture) {
	startHost(b, natstest.Connect(b, f.srv), host.Config{Logger: discardLogger}, func(*host.Host) error { return nil })
}

// request makes a plain NATS request and checks that the echo came back.
func (f *fixture) request(subject string) error {
	msg, err := f.cliNC.Request(subject, payload, callTimeout)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if len(msg.Data) != len(payload) {
		return fmt.Errorf("%s: reply %q", subject, msg.Data)
	}
	return nil
}
