package host_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/internal/telemetry"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// TestMetricsCountCallsWithBoundedLabels: calls show up in the host's and
// the router's counters and histograms by type, method and outcome; methods
// no actor accepted, and methods past the cap, are "other"; no label
// carries an actor id.
func TestMetricsCountCallsWithBoundedLabels(t *testing.T) {
	s := natstest.Server(t)
	reg := prometheus.NewRegistry()
	lease := placement.LeaseConfig{TTL: time.Second} // renewals every 500 ms
	startHost(t, s, host.Config{Metrics: reg, Lease: lease}, func(h *host.Host) {
		if err := counter.Register(h); err != nil {
			t.Fatal(err)
		}
		// any accepts every method, to fill the method cap.
		_ = h.Register("any", host.Func(func(context.Context, host.Call) ([]byte, error) { return nil, nil }), host.NoState())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := router.New(ctx, natstest.Connect(t, s), router.Config{Metrics: reg}) // shares the host's router series
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("metrics-actor-%d", i)
		ids = append(ids, id)
		for range 4 {
			call(t, r, "counter", placement.ActorID(id), "add", "1")
		}
	}
	for i := range 3 {
		if _, err := r.Call(ctx, "counter", "c1", fmt.Sprintf("random%d", i), nil); !errors.Is(err, protocol.ErrUnknownMethod) {
			t.Fatalf("random method: %v, want UNKNOWN_METHOD", err)
		}
	}
	for i := range telemetry.MaxMethodsPerType + 5 {
		call(t, r, "any", "x", fmt.Sprintf("m%d", i), "")
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, mfs, []want{
		{"troupe_host_calls_total", "method=add,outcome=ok,type=counter", 20},
		{"troupe_router_calls_total", "method=add,outcome=ok,type=counter", 20},
		{"troupe_host_calls_total", "method=other,outcome=unknown_method,type=counter", 3},
		{"troupe_router_calls_total", "method=other,outcome=unknown_method,type=counter", 3},
		{"troupe_host_turn_duration_seconds", "method=add,type=counter", 20},
		{"troupe_router_call_duration_seconds", "method=add,type=counter", 20},
		{"troupe_host_calls_total", "method=other,outcome=ok,type=any", 5},
		{"troupe_host_active_actors", "type=counter", 6},
		{"troupe_host_activations_total", "type=counter", 6},
		{"troupe_state_save_duration_seconds", "type=counter", 20},
		{"troupe_state_load_duration_seconds", "type=counter", 6},
		{"troupe_host_ready", "", 1},
		{"troupe_placement_hosts", "", 1},
	})
	if n := promtest.Series(mfs, "troupe_host_calls_total", "type=any"); n != telemetry.MaxMethodsPerType+1 {
		t.Errorf("type any has %d call series, want %d methods and other", n, telemetry.MaxMethodsPerType)
	}
	if g := promtest.Value(mfs, "troupe_placement_generation", ""); g < 1 {
		t.Errorf("troupe_placement_generation = %v, want > 0", g)
	}
	if found := promtest.LabelsWithValue(mfs, append(ids, "c1", "x")); len(found) > 0 {
		t.Errorf("actor ids as labels: %v", found)
	}

	// A write behind an activation's back: its save is refused, the
	// activation discarded, and the router tries again on a new one.
	js, _ := jetstream.New(natstest.Connect(t, s))
	kv, err := js.KeyValue(ctx, host.DefaultStateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, host.StateKey(counter.Type, placement.ActorID(ids[0])), []byte("100")); err != nil {
		t.Fatal(err)
	}
	call(t, r, counter.Type, placement.ActorID(ids[0]), "add", "1")
	// A second host changes the table.
	startHost(t, s, host.Config{Metrics: prometheus.NewRegistry()}, func(h *host.Host) { _ = counter.Register(h) })
	waitMembers(t, r, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if mfs, err = reg.Gather(); err != nil {
			t.Fatal(err)
		}
		if promtest.Value(mfs, "troupe_placement_hosts", "") == 2 && promtest.Value(mfs, "troupe_lease_renewals_total", "outcome=ok") > 0 ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkValues(t, mfs, []want{
		{"troupe_state_conflicts_total", "type=counter", 1},
		{"troupe_host_calls_total", "type=counter,method=add,outcome=state_conflict", 1},
		{"troupe_router_retries_total", "type=counter,reason=state_conflict", 1},
		{"troupe_placement_hosts", "", 2},
		{"troupe_placement_table_changes_total", "", 1},
	})
	if n := promtest.Value(mfs, "troupe_host_deactivations_total", "type=counter"); n < 1 {
		t.Errorf("troupe_host_deactivations_total{type=counter} = %v, want the discarded activation", n)
	}
	if n := promtest.Value(mfs, "troupe_lease_renewal_duration_seconds", ""); n < 1 {
		t.Errorf("no lease renewal observed")
	}
}

// TestMetricsRegistryReportsOneHost: a second host on the same registry
// fails to start with a clear error, and a host that stopped makes room.
func TestMetricsRegistryReportsOneHost(t *testing.T) {
	s := natstest.Server(t)
	reg := prometheus.NewRegistry()
	first := startHost(t, s, host.Config{Metrics: reg}, func(h *host.Host) { _ = counter.Register(h) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	second, err := host.New(natstest.Connect(t, s), host.Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	_ = counter.Register(second)
	if err := second.Start(ctx); err == nil || !strings.Contains(err.Error(), "a registry reports one host") {
		t.Fatalf("second host on one registry: %v, want an error", err)
	}
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	third := startHost(t, s, host.Config{Metrics: reg}, func(h *host.Host) { _ = counter.Register(h) })
	if err := third.Ready(); err != nil {
		t.Fatalf("third host: %v", err)
	}
}

// want is the value a metric's series should sum to.
type want struct {
	name   string
	labels string // k=v,k=v
	value  float64
}

func checkValues(t *testing.T, mfs []*dto.MetricFamily, wants []want) {
	t.Helper()
	for _, w := range wants {
		if got := promtest.Value(mfs, w.name, w.labels); got != w.value {
			t.Errorf("%s{%s} = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
}

// TestMetricsCountTimerTicks: a timer's tick is counted under its actor's
// type.
func TestMetricsCountTimerTicks(t *testing.T) {
	s := natstest.Server(t)
	reg := prometheus.NewRegistry()
	ticked := make(chan struct{}, 1)
	startHost(t, s, host.Config{Metrics: reg}, func(h *host.Host) {
		_ = h.Register("ticker", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(context.Context, host.Call) ([]byte, error) {
				return nil, self.SetTimer("once", host.Timer{Due: time.Millisecond, Tick: func(context.Context) error {
					ticked <- struct{}{}
					return nil
				}})
			})
		}, host.NoState())
	})
	call(t, newRouter(t, s), "ticker", "t1", "start", "")
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		t.Fatal("the timer never ticked")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, mfs, []want{{"troupe_timers_fired_total", "type=ticker", 1}})
}
