package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Stream ingestion: how fast orders published to a stream are applied.
const (
	ingestMsgs    = 20000
	ingestActors  = 1000
	plainWorkers  = 64
	plainConsumer = "plain"
	// ingestHosts is the hosts (or plain readers) of the sides that spread
	// the stream, and ingestPartitions its partitions when partitioned.
	ingestHosts      = 3
	ingestPartitions = 4
)

// BenchmarkStreamIngest publishes ingestMsgs orders over ingestActors
// customers to the ORDERS stream and measures, from the first publish until
// every consumer has every message acknowledged, the orders applied per
// second (msgs/s):
//
//   - plain: a JetStream consumer (MaxAckPending 1,024) whose handler does
//     what a customer's turn stores — one compare-and-set KV update of the
//     customer's key per message — in order per customer (64 workers, each
//     customer always on the same one), then acks: the floor troupe's
//     delivery is measured against;
//
//   - plain-3readers: per-host filtered consumers, played by plain
//     consumers: three, each on its own connection, each reading the whole
//     stream, applying the customers it owns (a hash of the customer, a
//     third each) and acknowledging the others unapplied;
//
//   - plain-4partitions: the stream partitioned by customer with a subject
//     transform (orders.PartitionTransform), one plain consumer per
//     partition, each on its own connection;
//
//   - troupe-1host, troupe-3hosts: the orders example's customer actors fed
//     by their subscription, on one host or three (in this process, each on
//     its own connection);
//
//   - troupe-3hosts-4partitions: the same stream partitioned as in
//     plain-4partitions, one subscription per partition
//     (orders.RegisterPartitioned), on three hosts; the table spreads the
//     four pullers over the hosts (the spread is logged).
//
//     go test -run '^$' -bench StreamIngest -benchtime=1x ./bench/
func BenchmarkStreamIngest(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			s, js := ingestServer(b, 0)
			startPlain(b, s, plainConsumer, orders.Subjects, 1, func(string) bool { return true })
			ingest(b, js, plainConsumer)
		}
	})
	b.Run(fmt.Sprintf("plain-%dreaders", ingestHosts), func(b *testing.B) {
		for range b.N {
			s, js := ingestServer(b, 0)
			names := make([]string, ingestHosts)
			for r := range names {
				names[r] = fmt.Sprintf("%s-%d", plainConsumer, r)
				startPlain(b, s, names[r], orders.Subjects, 1, func(key string) bool { return hashOf(key)%ingestHosts == uint32(r) })
			}
			ingest(b, js, names...)
		}
	})
	b.Run(fmt.Sprintf("plain-%dpartitions", ingestPartitions), func(b *testing.B) {
		for range b.N {
			s, js := ingestServer(b, ingestPartitions)
			names := make([]string, ingestPartitions)
			for p := range names {
				names[p] = fmt.Sprintf("%s-%d", plainConsumer, p)
				startPlain(b, s, names[p], fmt.Sprintf("orders.%d.*.*", p), 2, func(string) bool { return true })
			}
			ingest(b, js, names...)
		}
	})
	for _, hosts := range []int{1, ingestHosts} {
		b.Run(fmt.Sprintf("troupe-%dhost", hosts), func(b *testing.B) {
			for range b.N {
				s, js := ingestServer(b, 0)
				startIngestHosts(b, s, hosts, func(h *host.Host) error { return orders.Register(h) })
				ingest(b, js, protocol.SubscriptionConsumer(orders.Type, orders.Subscription))
			}
		})
	}
	b.Run(fmt.Sprintf("troupe-%dhosts-%dpartitions", ingestHosts, ingestPartitions), func(b *testing.B) {
		for range b.N {
			s, js := ingestServer(b, ingestPartitions)
			h := startIngestHosts(b, s, ingestHosts, func(h *host.Host) error { return orders.RegisterPartitioned(h, ingestPartitions) })
			names := make([]string, ingestPartitions)
			pullers := map[placement.HostID]int{}
			for p := range names {
				sub := orders.PartitionSubscription(p)
				names[p] = protocol.SubscriptionConsumer(orders.Type, sub)
				if m, ok := h.Router().Table().Owner(orders.Type, placement.ActorID(protocol.SubscriptionPrefix+sub)); ok {
					pullers[m.ID]++
				}
			}
			b.Logf("partitions per pulling host: %v", slices.Sorted(maps.Values(pullers)))
			ingest(b, js, names...)
		}
	})
}

// startIngestHosts starts n hosts, each on its own connection to s, and
// waits until the last one's table lists them all; it returns the last.
func startIngestHosts(b *testing.B, s *server.Server, n int, register func(*host.Host) error) *host.Host {
	b.Helper()
	var h *host.Host
	for range n {
		h = startHost(b, natstest.Connect(b, s), host.Config{Logger: discardLogger}, register)
	}
	for len(h.Router().Table().Hosts(orders.Type)) < n {
		time.Sleep(5 * time.Millisecond)
	}
	return h
}

// ingestServer starts a server with the ORDERS stream, partitioned by
// customer into partitions if that is not 0.
func ingestServer(b *testing.B, partitions int) (*server.Server, jetstream.JetStream) {
	b.Helper()
	s := natstest.Server(b)
	js, err := jetstream.New(natstest.Connect(b, s))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if partitions == 0 {
		err = orders.EnsureStream(ctx, js, 1)
	} else {
		err = orders.EnsurePartitionedStream(ctx, js, 1, partitions)
	}
	if err != nil {
		b.Fatal(err)
	}
	return s, js
}

// ingest waits for the consumers to exist, publishes the orders and waits
// until each consumer has nothing pending or unacknowledged; it reports
// msgs/s.
func ingest(b *testing.B, js jetstream.JetStream, consumers ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, name := range consumers {
		for {
			if _, err := js.Consumer(ctx, orders.Stream, name); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ResetTimer()
	start := time.Now()
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
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	// Every order is stored: a consumer with nothing pending has been
	// delivered all of its filter's. A troupe puller makes its consumer
	// again at a new session, so one not found is not done yet.
	for _, name := range consumers {
		for {
			c, err := js.Consumer(ctx, orders.Stream, name)
			if err == nil {
				if i := c.CachedInfo(); i.NumPending == 0 && i.NumAckPending == 0 {
					break
				}
			} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	took := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(ingestMsgs)/took.Seconds(), "msgs/s")
}

// hashOf is the plain consumers' hash of a customer or subject.
func hashOf(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// startPlain runs a plain consumer, named name and filtered by filter, on
// its own connection to s until b ends. The customer is the subject's token
// idToken; it applies the orders of the customers mine accepts and
// acknowledges the others unapplied.
func startPlain(b *testing.B, s *server.Server, name, filter string, idToken int, mine func(customer string) bool) {
	b.Helper()
	js, err := jetstream.New(natstest.Connect(b, s))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "plain_totals", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, orders.Stream, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 1024, MaxDeliver: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	type total struct {
		Total  int64 `json:"total"`
		Orders int64 `json:"orders"`
	}
	type order struct {
		key string
		m   jetstream.Msg
	}
	work := make([]chan order, plainWorkers)
	for w := range work {
		work[w] = make(chan order, 1024)
		go func(in <-chan order) {
			revs, totals := map[string]uint64{}, map[string]total{}
			for o := range in {
				key, m := o.key, o.m
				var ord orders.Order
				_ = json.Unmarshal(m.Data(), &ord)
				t := totals[key]
				t.Total, t.Orders = t.Total+ord.Amount, t.Orders+1
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
		key := strings.Split(m.Subject(), ".")[idToken]
		if !mine(key) {
			_ = m.Ack()
			return
		}
		work[hashOf(key)%plainWorkers] <- order{key, m}
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
