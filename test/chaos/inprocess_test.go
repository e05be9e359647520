package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/internal/ledger"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
)

// TestJoinsAndGracefulLeavesFailNoCall joins hosts to a loaded member set
// and drains them again, in one process: not one call may fail, no
// activations may overlap, and every counter must equal its acknowledged
// increments.
func TestJoinsAndGracefulLeavesFailNoCall(t *testing.T) {
	srv := natstest.Server(t)
	var log ledger.Collector
	start := func(name string) *host.Host {
		cfg := host.Config{ID: placement.HostID(name), Logger: quietLogger(), OnActivation: log.Record, OnLeaseValid: log.Fence}
		return hosttest.Start(t, natstest.Connect(t, srv), cfg, counter.Register)
	}
	for i := range 2 {
		start(fmt.Sprintf("base%d", i))
	}
	r := natstest.Router(t, natstest.Connect(t, srv))

	const actors = 200
	var mu sync.Mutex
	acked := make([]int64, actors)
	var failures []error
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i += 8 {
				select {
				case <-quit:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := r.Call(ctx, counter.Type, actorID(i%actors), "add", []byte("1"))
				cancel()
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					acked[i%actors]++
				}
				mu.Unlock()
			}
		}()
	}

	for round := range 4 {
		time.Sleep(150 * time.Millisecond)
		h := start(fmt.Sprintf("extra%d", round))
		time.Sleep(150 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.Shutdown(ctx); err != nil {
			t.Fatalf("drain: %v", err)
		}
		cancel()
	}
	time.Sleep(150 * time.Millisecond)
	close(quit)
	wg.Wait()

	for _, err := range failures {
		t.Errorf("call failed during a join or a graceful leave: %v", err)
	}
	for i := range actors {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := r.Call(ctx, counter.Type, actorID(i), "get", nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(reply); got != fmt.Sprint(acked[i]) {
			t.Errorf("counter %s = %s, want the %d acknowledged increments", actorID(i), got, acked[i])
		}
	}
	acts := log.Activations()
	for _, o := range ledger.Check(acts) {
		t.Errorf("overlapping activations: %s", o)
	}
	moved := 0
	for _, a := range acts {
		if !a.Open {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no activation ended: the test moved no actor")
	}
	t.Logf("%d activations, %d ended by handoffs", len(acts), moved)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
