package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// streamJS is a JetStream handle on its own connection to s.
func streamJS(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publishOrders publishes n orders over customers c0…c<ids-1> and returns
// the sum published for each and its last stream sequence.
func publishOrders(t *testing.T, js jetstream.JetStream, n, ids int) (sums map[string]int64, last map[string]uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sums, last = map[string]int64{}, map[string]uint64{}
	acks := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		id := fmt.Sprintf("c%d", i%ids)
		amount := int64(i%7 + 1)
		sums[id] += amount
		f, err := js.PublishAsync(fmt.Sprintf("orders.%s.new", id), fmt.Appendf(nil, `{"amount":%d}`, amount))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case ack := <-f.Ok():
			last[fmt.Sprintf("c%d", i%ids)] = ack.Sequence
		case err := <-f.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	return sums, last
}

// waitConsumed waits until the subscription's consumer has nothing pending
// or unacknowledged, and every message up to the stream's last was
// delivered.
func waitConsumed(t *testing.T, js jetstream.JetStream, stream, consumer string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		last := st.CachedInfo().State.LastSeq
		c, err := st.Consumer(ctx, consumer)
		if err == nil {
			i := c.CachedInfo()
			if i.NumPending == 0 && i.NumAckPending == 0 && i.AckFloor.Stream >= last {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer %s not done: %v", consumer, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkTotals checks that each customer's total is the sum published for
// it, taken in stream order, its last message last.
func checkOrderTotals(t *testing.T, r *router.Router, sums map[string]int64, last map[string]uint64) {
	t.Helper()
	for id, sum := range sums {
		var got orders.Totals
		if err := json.Unmarshal([]byte(call(t, r, orders.Type, placement.ActorID(id), "total", "")), &got); err != nil {
			t.Fatal(err)
		}
		if got.Total != sum || got.OutOfOrder != 0 || got.LastSeq != last[id] {
			t.Errorf("customer %s: %+v; want total %d, last_seq %d, none out of order", id, got, sum, last[id])
		}
	}
}

func ensureOrders(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := orders.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
}

var ordersConsumer = protocol.SubscriptionConsumer(orders.Type, orders.Subscription)

// TestStreamDeliversEachMessageOnceInOrderPerActor: orders published before
// and while two hosts run reach their customers exactly once, in stream
// order per customer, and the consumer ends with nothing pending.
func TestStreamDeliversEachMessageOnceInOrderPerActor(t *testing.T) {
	s := natstest.Server(t)
	js := streamJS(t, s)
	ensureOrders(t, js)
	sums, last := publishOrders(t, js, 300, 10) // before any host
	for range 2 {
		startHost(t, s, host.Config{}, func(h *host.Host) { _ = orders.Register(h) })
	}
	more, moreLast := publishOrders(t, js, 300, 10)
	for id, v := range more {
		sums[id] += v
		last[id] = moreLast[id]
	}
	waitConsumed(t, js, orders.Stream, ordersConsumer)
	checkOrderTotals(t, newRouter(t, s), sums, last)
}

// TestStreamRedeliveryCoveredIsAckedWithoutRunning: a call that carries a
// stream message the actor's cursor covers succeeds without running the
// turn — also after the actor was activated again from the store — and a
// malformed sequence is BAD_REQUEST.
func TestStreamRedeliveryCoveredIsAckedWithoutRunning(t *testing.T) {
	s := natstest.Server(t)
	var runs atomic.Int64
	register := func(h *host.Host) {
		_ = h.Register("tally", host.Func(func(_ context.Context, c host.Call) ([]byte, error) {
			runs.Add(1)
			return nil, nil
		}), host.IdleTimeout(time.Hour))
	}
	h1 := startHost(t, s, host.Config{}, register)
	r := newRouter(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deliver := func(seq string) error {
		_, err := r.Call(ctx, "tally", "t1", "on", nil,
			router.WithHeader(protocol.HeaderStream, "s1"), router.WithHeader(protocol.HeaderStreamSeq, seq))
		return err
	}
	for _, step := range []struct {
		seq  string
		runs int64
	}{{"5", 1}, {"5", 1}, {"3", 1}, {"6", 2}, {"6", 2}} {
		if err := deliver(step.seq); err != nil {
			t.Fatalf("seq %s: %v", step.seq, err)
		}
		if got := runs.Load(); got != step.runs {
			t.Fatalf("after seq %s: %d turns ran, want %d", step.seq, got, step.runs)
		}
	}
	for _, bad := range []string{"", "0", "x", "-1"} {
		if err := deliver(bad); !errors.Is(err, protocol.ErrBadRequest) {
			t.Fatalf("seq %q: %v, want BAD_REQUEST", bad, err)
		}
	}
	// A new activation on another host reads the cursor from the store.
	startHost(t, s, host.Config{}, register)
	if err := h1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := deliver("6"); err != nil {
		t.Fatal(err)
	}
	if err := deliver("4"); err != nil {
		t.Fatal(err)
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("a covered message ran on the new activation: %d turns, want 2", got)
	}
	if err := deliver("7"); err != nil || runs.Load() != 3 {
		t.Fatalf("seq 7: %v, %d turns, want 3", err, runs.Load())
	}
}

// TestStreamTwoPullersRaceStillApplyOnce: hosts join and one is stopped
// hard while orders flow, so the puller moves and two hosts pull at once
// during each change; every order still counts exactly once, in order.
func TestStreamTwoPullersRaceStillApplyOnce(t *testing.T) {
	s := natstest.Server(t)
	js := streamJS(t, s)
	ensureOrders(t, js)
	cfg := host.Config{Lease: placement.LeaseConfig{TTL: time.Second}}
	start := func() *host.Host {
		return startHost(t, s, cfg, func(h *host.Host) { _ = orders.Register(h) })
	}
	first := start()
	sums, last := map[string]int64{}, map[string]uint64{}
	add := func(n int) {
		more, moreLast := publishOrders(t, js, n, 25)
		for id, v := range more {
			sums[id] += v
			last[id] = moreLast[id]
		}
	}
	add(400)
	start()
	add(400)
	start()
	add(400)
	first.Close() // hard: its lease runs out, another host takes over
	add(400)
	waitConsumed(t, js, orders.Stream, ordersConsumer)
	checkOrderTotals(t, newRouter(t, s), sums, last)
}

// TestStreamBadMappingAndFailingTurnsAreTerminated: a message naming no
// valid actor is terminated at once, one whose turn keeps failing after
// MaxAttempts tries; both are counted and neither stays pending.
func TestStreamBadMappingAndFailingTurnsAreTerminated(t *testing.T) {
	s := natstest.Server(t)
	js := streamJS(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	var tries atomic.Int64
	reg := prometheus.NewRegistry()
	startHost(t, s, host.Config{Metrics: reg}, func(h *host.Host) {
		err := h.Register("acct", host.Func(func(_ context.Context, c host.Call) ([]byte, error) {
			if string(c.Payload) == "fail" {
				tries.Add(1)
				return nil, router.AppError("refused", "this one always fails")
			}
			return nil, nil
		}), host.Subscribe(host.Subscription{Name: "events", Stream: "EVENTS", Subject: "events.>", IDHeader: "Acct", Method: "apply", MaxAttempts: 2}))
		if err != nil {
			t.Fatal(err)
		}
	})
	pub := func(id, body string) {
		msg := &nats.Msg{Subject: "events.x", Data: []byte(body), Header: nats.Header{}}
		if id != "" {
			msg.Header.Set("Acct", id)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	pub("", "no id")
	pub(string(make([]byte, 2000)), "id too long")
	pub("a1", "fail")
	pub("a1", "ok")
	waitConsumed(t, js, "EVENTS", protocol.SubscriptionConsumer("acct", "events"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := "type=acct,subscription=events"
	if got := promtest.Value(mfs, "troupe_stream_terminated_total", labels); got != 3 {
		t.Errorf("terminated %v, want 3", got)
	}
	if got := promtest.Value(mfs, "troupe_stream_applied_total", labels); got != 1 {
		t.Errorf("applied %v, want 1", got)
	}
	if got := tries.Load(); got != 2 {
		t.Errorf("the failing turn ran %d times, want MaxAttempts 2", got)
	}
}

// TestStreamSubscriptionValidated: a subscription that cannot work is
// refused when the type is registered.
func TestStreamSubscriptionValidated(t *testing.T) {
	h, err := host.New(natstest.Connect(t, natstest.Server(t)), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ok := host.Subscription{Name: "s", Stream: "S", Subject: "a.*", IDToken: 1, Method: "m"}
	for i, bad := range []host.Subscription{
		{Stream: "S", Method: "m"},
		{Name: "a.b", Stream: "S", Method: "m"},
		{Name: "s", Method: "m"},
		{Name: "s", Stream: "S"},
		{Name: "s", Stream: "S", Subject: "a.*", IDToken: 2, Method: "m"},
		{Name: "s", Stream: "S", IDToken: -1, Method: "m"},
		{Name: "s", Stream: "S", Subject: "orders.0.*.*", IDToken: 1, Method: "m"}, // a partition's number, not a customer
	} {
		if err := h.Register(placement.ActorType("t"+strconv.Itoa(i)), host.Func(nil), host.Subscribe(bad)); !errors.Is(err, host.ErrInvalidSubscription) {
			t.Errorf("%+v: %v, want ErrInvalidSubscription", bad, err)
		}
	}
	if err := h.Register("twice", host.Func(nil), host.Subscribe(ok), host.Subscribe(ok)); !errors.Is(err, host.ErrInvalidSubscription) {
		t.Errorf("a name twice: %v", err)
	}
	if err := h.Register("fine", host.Func(nil), host.Subscribe(ok)); err != nil {
		t.Error(err)
	}
	for i, fine := range []host.Subscription{
		{Name: "s", Stream: "S", Subject: "orders.0.*.*", IDToken: 2, Method: "m"},
		{Name: "s", Stream: "S", Subject: "orders.>", IDToken: 1, Method: "m"},
		{Name: "s", Stream: "S", Subject: "orders.0.>", IDToken: 2, Method: "m"},
		{Name: "s", Stream: "S", Subject: "orders.0.*", IDToken: 1, IDHeader: "Customer", Method: "m"},
	} {
		if err := h.Register(placement.ActorType("fine"+strconv.Itoa(i)), host.Func(nil), host.Subscribe(fine)); err != nil {
			t.Errorf("%+v: %v", fine, err)
		}
	}
}

// TestStreamSlowActorSlowsOnlyItsOwnMessages: while one actor's turn is
// stuck, the messages of the other actors are all applied, and the stuck
// actor's later messages wait for it, in order.
func TestStreamSlowActorSlowsOnlyItsOwnMessages(t *testing.T) {
	s := natstest.Server(t)
	js := streamJS(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.*"}}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var others atomic.Int64
	var slowSeen []string // the slow actor's payloads, in the order applied; its turns run one at a time
	startHost(t, s, host.Config{}, func(h *host.Host) {
		_ = h.Register("worker", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			if c.Method == "seen" {
				return json.Marshal(slowSeen)
			}
			if c.Header.Get(protocol.HeaderStreamSubject) == "work.slow" {
				if string(c.Payload) == "first" {
					select {
					case <-release:
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				slowSeen = append(slowSeen, string(c.Payload))
				return nil, nil
			}
			others.Add(1)
			return nil, nil
		}), host.Subscribe(host.Subscription{Name: "work", Stream: "WORK", Subject: "work.*", IDToken: 1, Method: "do", MaxInFlight: 64}))
	})
	pub := func(subject, body string) {
		if _, err := js.Publish(ctx, subject, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	pub("work.slow", "first")
	pub("work.slow", "second")
	for i := range 200 {
		pub(fmt.Sprintf("work.w%d", i%50), "x")
	}
	for others.Load() < 200 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d of the other actors' 200 messages applied while one actor was stuck", others.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(release)
	waitConsumed(t, js, "WORK", protocol.SubscriptionConsumer("worker", "work"))
	r := newRouter(t, s)
	if got := call(t, r, "worker", "slow", "seen", ""); got != `["first","second"]` {
		t.Errorf("the slow actor applied %s, want [\"first\",\"second\"]", got)
	}
}

// TestStreamDeliveriesTakenElsewhereAreNotSkipped: another client (a
// puller that still pulls during a table change) takes some deliveries of
// the subscription's consumer and never acknowledges them. The host's
// puller sees the hole in its deliveries and starts over, so those orders
// are applied at once, and none is passed by a later order of its customer
// (which would leave it covered, and lost, when it came again after its
// ack wait).
func TestStreamDeliveriesTakenElsewhereAreNotSkipped(t *testing.T) {
	s := natstest.Server(t)
	js := streamJS(t, s)
	ensureOrders(t, js)
	startHost(t, s, host.Config{}, func(h *host.Host) { _ = orders.Register(h) })
	sums, last := publishOrders(t, js, 100, 10)
	waitConsumed(t, js, orders.Stream, ordersConsumer)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, orders.Stream, ordersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	taken := make(chan int, 1)
	go func() {
		n := 0
		if batch, err := cons.Fetch(20, jetstream.FetchMaxWait(5*time.Second)); err == nil {
			for range batch.Messages() {
				n++ // and never acknowledged
			}
		}
		taken <- n
	}()
	time.Sleep(50 * time.Millisecond) // the fetch waits at the server, behind the host's pull
	more, moreLast := publishOrders(t, js, 600, 10)
	for id, v := range more {
		sums[id] += v
		last[id] = moreLast[id]
	}
	if n := <-taken; n == 0 {
		t.Fatal("the other client took no delivery; the test shows nothing")
	}
	start := time.Now()
	waitConsumed(t, js, orders.Stream, ordersConsumer)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the orders taken elsewhere were applied after %v, not at once", took)
	}
	checkOrderTotals(t, newRouter(t, s), sums, last)
}

// TestStreamPartitionedSubscriptions: a stream whose subject transform
// partitions the orders by customer, read by one subscription per
// partition (the recipe in docs/streams.md, "Partitioning a
// subscription"), on two hosts: every partition's consumer gets orders, and
// each customer's total is exactly what was published for it, in stream
// order — a customer's orders all fall in one partition.
func TestStreamPartitionedSubscriptions(t *testing.T) {
	const partitions = 4
	s := natstest.Server(t)
	js := streamJS(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := orders.EnsurePartitionedStream(ctx, js, 1, partitions); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		startHost(t, s, host.Config{}, func(h *host.Host) {
			if err := orders.RegisterPartitioned(h, partitions); err != nil {
				t.Error(err)
			}
		})
	}
	sums, last := publishOrders(t, js, 400, 20)
	for p := range partitions {
		name := protocol.SubscriptionConsumer(orders.Type, orders.PartitionSubscription(p))
		for {
			c, err := js.Consumer(ctx, orders.Stream, name)
			if err == nil {
				if i := c.CachedInfo(); i.NumPending == 0 && i.NumAckPending == 0 && i.Delivered.Stream > 0 {
					break
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("partition %d: consumer %s not done: %v", p, name, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	checkOrderTotals(t, newRouter(t, s), sums, last)
}
