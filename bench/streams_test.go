package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
)

// Stream ingestion: how fast orders published to a stream are applied.
const (
	ingestMsgs    = 20000
	ingestActors  = 1000
	plainWorkers  = 64
	plainConsumer = "plain"
)

// BenchmarkStreamIngest publishes ingestMsgs orders over ingestActors
// customers to the ORDERS stream and measures, from the first publish until
// the consumer has every message acknowledged, the orders applied per
// second (msgs/s):
//
//   - plain: a JetStream consumer (MaxAckPending 1,024) whose handler does
//     what a customer's turn stores — one compare-and-set KV update of the
//     customer's key per message — in order per customer (64 workers, each
//     customer always on the same one), then acks: the floor troupe's
//     delivery is measured against;
//
//   - troupe-1host, troupe-3hosts: the orders example's customer actors fed
//     by their subscription, on one host or three (in this process, each on
//     its own connection).
//
//     go test -run '^$' -bench StreamIngest -benchtime=1x ./bench/
func BenchmarkStreamIngest(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			_, js := ingestServer(b)
			startPlain(b, js)
			ingest(b, js, plainConsumer)
		}
	})
	for _, hosts := range []int{1, 3} {
		b.Run(fmt.Sprintf("troupe-%dhost", hosts), func(b *testing.B) {
			for range b.N {
				s, js := ingestServer(b)
				var h *host.Host
				for range hosts {
					h = startHost(b, natstest.Connect(b, s), host.Config{Logger: discardLogger}, func(h *host.Host) error { return orders.Register(h) })
				}
				for len(h.Router().Table().Hosts(orders.Type)) < hosts {
					time.Sleep(5 * time.Millisecond)
				}
				ingest(b, js, protocol.SubscriptionConsumer(orders.Type, orders.Subscription))
			}
		})
	}
}

// ingestServer starts a server with the ORDERS stream.
func ingestServer(b *testing.B) (*server.Server, jetstream.JetStream) {
	b.Helper()
	s := natstest.Server(b)
	js, err := jetstream.New(natstest.Connect(b, s))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := orders.EnsureStream(ctx, js, 1); err != nil {
		b.Fatal(err)
	}
	return s, js
}

// ingest waits for consumer to exist, publishes the orders and waits until
// consumer has them all acknowledged; it reports msgs/s.
func ingest(b *testing.B, js jetstream.JetStream, consumer string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		if _, err := js.Consumer(ctx, orders.Stream, consumer); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ResetTimer()
	start := time.Now()
	var last uint64
	acks := make([]jetstream.PubAckFuture, 0, ingestMsgs)
	for i := range ingestMsgs {
		f, err := js.PublishAsync(fmt.Sprintf("orders.c%d.new", i%ingestActors), fmt.Appendf(nil, `{"amount":%d}`, i%7+1))
		if err != nil {
			b.Fatal(err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case ack := <-f.Ok():
			last = max(last, ack.Sequence)
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	for {
		c, err := js.Consumer(ctx, orders.Stream, consumer)
		if err != nil {
			b.Fatal(err)
		}
		if i := c.CachedInfo(); i.AckFloor.Stream >= last && i.NumAckPending == 0 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(ingestMsgs)/took.Seconds(), "msgs/s")
}

// startPlain runs the plain consumer until b ends.
func startPlain(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain_totals", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, orders.Stream, jetstream.ConsumerConfig{
		Durable: plainConsumer, FilterSubject: orders.Subjects, AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 1024, MaxDeliver: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	type total struct {
		Total  int64 `json:"total"`
		Orders int64 `json:"orders"`
	}
	work := make([]chan jetstream.Msg, plainWorkers)
	for w := range work {
		work[w] = make(chan jetstream.Msg, 1024)
		go func(in <-chan jetstream.Msg) {
			revs, totals := map[string]uint64{}, map[string]total{}
			for m := range in {
				key := m.Subject()[len("orders."):]
				key = key[:len(key)-len(".new")]
				var o orders.Order
				_ = json.Unmarshal(m.Data(), &o)
				t := totals[key]
				t.Total, t.Orders = t.Total+o.Amount, t.Orders+1
				v, _ := json.Marshal(t)
				rev, err := kv.Update(context.Background(), key, v, revs[key])
				if err != nil {
					_ = m.Nak()
					continue
				}
				revs[key], totals[key] = rev, t
				_ = m.Ack()
			}
		}(work[w])
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(m.Subject()))
		work[h.Sum32()%plainWorkers] <- m
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cc.Stop()
		for _, w := range work {
			close(w)
		}
	})
}
