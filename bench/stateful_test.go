package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
)

// BenchmarkStatefulAB measures stateful calls against their floor, 64
// callers, in alternating phases (as BenchmarkCallAB):
//
//   - floor: a plain NATS request whose responder does what a stateful
//     call must at least do, one compare-and-set update of a key in a KV
//     bucket, before replying; each caller has its own key;
//   - spread: the counter's add through troupe, each caller on its own
//     counter (one save per call);
//   - hot: the same 64 callers on one counter, whose queued turns run in
//     groups that one save covers (host/group.go).
//
// It reports each side's p50 and calls/s, spread over floor and hot over
// spread:
//
//	go test -run '^$' -bench StatefulAB -benchtime=1x ./bench/
func BenchmarkStatefulAB(b *testing.B) {
	srv := natstest.Server(b)
	srvNC, cliNC := natstest.Connect(b, srv), natstest.Connect(b, srv)
	startHost(b, srvNC, host.Config{Logger: discardLogger}, counter.Register)
	r := natstest.Router(b, cliNC)
	casFloor(b, srvNC)
	ctx := context.Background()
	for g := range callers {
		if _, err := r.Call(ctx, counter.Type, actorID("s", g), "add", []byte("1")); err != nil {
			b.Fatal(err)
		}
	}
	add := func(id placement.ActorID) error {
		_, err := r.Call(ctx, counter.Type, id, "add", []byte("1"))
		return err
	}
	b.Run("par64", func(b *testing.B) {
		sides := alternate(b, callers,
			func(g int) error {
				m, err := cliNC.Request(casSubject, []byte(strconv.Itoa(g)), callTimeout)
				if err == nil && bytes.HasPrefix(m.Data, []byte("error")) {
					err = errors.New(string(m.Data))
				}
				return err
			},
			func(g int) error { return add(actorID("s", g)) },
			func(int) error { return add("hot") })
		for i, name := range []string{"floor", "spread", "hot"} {
			b.ReportMetric(micros(sides[i].p50()), name+"-p50-µs")
			b.ReportMetric(sides[i].rate(), name+"-calls/s")
		}
		b.ReportMetric(sides[1].rate()/sides[0].rate(), "spread/floor-calls")
		b.ReportMetric(float64(sides[1].p50())/float64(sides[0].p50()), "spread/floor-p50")
		b.ReportMetric(sides[2].rate()/sides[1].rate(), "hot/spread-calls")
		b.ReportMetric(float64(sides[2].p50())/float64(sides[1].p50()), "hot/spread-p50")
	})
}

const casSubject = "bench.cas"

// casFloor answers casSubject with one compare-and-set KV update of the
// key the request names, each on its own goroutine, as a host runs turns.
func casFloor(b *testing.B, nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "bench_cas", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	revs := make(map[string]uint64)
	counts := make(map[string]int)
	sub, err := nc.Subscribe(casSubject, func(m *nats.Msg) {
		go func() {
			key := "k" + string(m.Data)
			mu.Lock()
			rev, n := revs[key], counts[key]+1
			mu.Unlock()
			rev, err := kv.Update(context.Background(), key, []byte(strconv.Itoa(n)), rev)
			if err != nil {
				_ = m.Respond([]byte(fmt.Sprint("error: ", err)))
				return
			}
			mu.Lock()
			revs[key], counts[key] = rev, n
			mu.Unlock()
			_ = m.Respond([]byte(strconv.Itoa(n)))
		}()
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
}
