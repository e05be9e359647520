package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// TestStreamExactlyOnce publishes orders to the ORDERS stream while the
// fault schedule runs against real `troupe host` processes (each kind of
// fault at least once), then checks that every order was applied exactly
// once and in stream order: each customer's total is the sum published for
// it, its last applied sequence is the last published for it and it never
// saw a sequence go back; and the consumer ends with nothing pending or
// unacknowledged.
//
// Every other fault hits the host that pulls the subscription at that
// moment, so the puller moves and its unacknowledged messages come again.
//
// The default run is 20,000 orders into 200 customers;
// TROUPE_CHAOS_STREAM_FULL=1 runs 100,000 into 1,000 with -chaos.faults
// faults.
func TestStreamExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	msgs, actors, faults := 20000, 200, len(faultKinds)
	if os.Getenv("TROUPE_CHAOS_STREAM_FULL") != "" {
		msgs, actors, faults = 100000, 1000, *flagFaults
	}
	h := newHarness(t)
	js, err := jetstream.New(natstest.Connect(t, h.srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := orders.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	h.startHosts(*flagHosts)
	h.waitHosts(h.liveNames())

	began := time.Now()
	pub := make(chan published, 1)
	go func() { pub <- publishOrders(js, msgs, actors, 40) }()
	h.injectPullerFaults(faults)
	p := <-pub
	if p.err != nil {
		t.Fatal(p.err)
	}
	h.heal()
	drained := waitStreamDrained(t, js, p.lastSeq)
	t.Logf("%d orders into %d customers under %d faults %v: all published after %v, all acknowledged after %v; the subscription was pulled %d times (by a host, from a start or a move)",
		msgs, actors, faults, h.faults, p.took.Round(time.Millisecond), drained.Sub(began).Round(time.Millisecond), h.countLog("stream subscription: pulling"))

	for i := range actors {
		id := fmt.Sprintf("c%d", i)
		var got orders.Totals
		var err error
		for try := 0; try < 5; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var reply []byte
			reply, err = h.router.Call(ctx, orders.Type, actorID(i), "total", nil)
			cancel()
			if err == nil {
				err = json.Unmarshal(reply, &got)
				break
			}
		}
		if err != nil {
			t.Fatalf("reading customer %s: %v", id, err)
		}
		if got.Total != p.sums[id] || got.Orders != p.counts[id] || got.LastSeq != p.last[id] || got.OutOfOrder != 0 {
			t.Errorf("customer %s: %+v; want total %d of %d orders, last_seq %d, none out of order",
				id, got, p.sums[id], p.counts[id], p.last[id])
		}
	}
	h.stopAll()
}

// published is what publishOrders sent, per customer.
type published struct {
	sums, counts map[string]int64
	last         map[string]uint64
	lastSeq      uint64
	took         time.Duration
	err          error
}

// publishOrders publishes n orders round-robin over customers c0…, in
// chunks spread over about chunks × 250 ms, each chunk acknowledged by the
// stream before the next.
func publishOrders(js jetstream.JetStream, n, actors, chunks int) published {
	start := time.Now()
	p := published{sums: map[string]int64{}, counts: map[string]int64{}, last: map[string]uint64{}}
	per := (n + chunks - 1) / chunks
	for from := 0; from < n; from += per {
		acks := make([]jetstream.PubAckFuture, 0, per)
		for i := from; i < min(from+per, n); i++ {
			f, err := js.PublishAsync(fmt.Sprintf("orders.c%d.new", i%actors), fmt.Appendf(nil, `{"amount":%d}`, i%7+1))
			if err != nil {
				p.err = err
				return p
			}
			acks = append(acks, f)
		}
		for k, f := range acks {
			i := from + k
			id := fmt.Sprintf("c%d", i%actors)
			select {
			case ack := <-f.Ok():
				p.sums[id] += int64(i%7 + 1)
				p.counts[id]++
				p.last[id] = ack.Sequence
				p.lastSeq = max(p.lastSeq, ack.Sequence)
			case err := <-f.Err():
				p.err = fmt.Errorf("publishing order %d: %w", i, err)
				return p
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.took = time.Since(start)
	return p
}

// waitStreamDrained waits until the subscription's consumer has delivered
// and had acknowledged everything up to last.
func waitStreamDrained(t *testing.T, js jetstream.JetStream, last uint64) time.Time {
	t.Helper()
	name := protocol.SubscriptionConsumer(orders.Type, orders.Subscription)
	deadline := time.Now().Add(120 * time.Second)
	var info *jetstream.ConsumerInfo
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := js.Consumer(ctx, orders.Stream, name)
		cancel()
		if err == nil {
			info = c.CachedInfo()
			if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last {
				return time.Now()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the consumer did not drain: %+v", info)
	return time.Time{}
}

// countLog counts the lines of every host process's log that contain s.
func (h *harness) countLog(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.runs {
		n += strings.Count(p.stderr.String(), s)
	}
	return n
}

// injectPullerFaults injects n faults like injectFaults, every kind at least
// once, the even ones into the host that pulls the orders subscription.
func (h *harness) injectPullerFaults(n int) {
	rng, kindOf := h.schedule(faultKinds)
	for i := range n {
		kind := kindOf(i)
		live := h.live()
		p, role := live[rng.IntN(len(live))], "any"
		if i%2 == 0 {
			if m, ok := h.router.Table().Owner(orders.Type, placement.ActorID(protocol.SubscriptionPrefix+orders.Subscription)); ok {
				h.mu.Lock()
				if q := h.hosts[string(m.ID)]; q != nil {
					p, role = q, "puller"
				}
				h.mu.Unlock()
			}
		}
		start := time.Now()
		h.inject(kind, p)
		h.faults[kind]++
		h.t.Logf("fault %2d at %s: %-16s %-4s (%s) %v", i+1, start.Format("15:04:05.000"), kind, p.name, role, time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
	}
}
