package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Exactly once: with call ids (every call the router makes carries one)
// and deadlines long enough to outlast a failover, the same fault schedule
// as TestChaos ends with every call acknowledged and every counter equal
// to its acknowledged adds: no failure, no OUTCOME_UNKNOWN, no double
// apply.
//
// The default run injects each fault kind once (well under a minute);
// TROUPE_CHAOS_EXACTLY_FAULTS=N injects N, and TROUPE_CHAOS_EXACTLY_CALLS=N
// makes TestExactlyOnceFromTroupeCall run at least N `troupe call`
// processes (docs/GUARANTEES.md).

// exactlyTimeout is each call's deadline: past the lease TTL, a SIGSTOP or
// a cut link held past it, and the retries after them.
const exactlyTimeout = 30 * time.Second

// envInt is the decimal environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func TestExactlyOnceUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	faults := envInt(t, "TROUPE_CHAOS_EXACTLY_FAULTS", len(faultKinds))
	const actors = 200
	h := newHarness(t)
	h.startHosts(*flagHosts)
	h.waitHosts(h.liveNames())

	load := h.startLoad(*flagWorkers, actors, exactlyTimeout)
	time.Sleep(500 * time.Millisecond)
	h.injectFaults(faults)
	time.Sleep(500 * time.Millisecond)
	load.stop()

	h.heal()
	finals := h.readCounters(actors)
	h.stopAll()

	exactly(t, h.verify(load, finals), load.acked, finals)
}

// exactly checks that nothing failed and each counter equals its
// acknowledged adds.
func exactly(t *testing.T, rep *report, acked, finals []int64) {
	t.Helper()
	for code, n := range rep.Failed {
		t.Errorf("%d calls failed with %s; with call ids and long deadlines every call must succeed", n, code)
	}
	wrong := 0
	for i, final := range finals {
		if final != acked[i] {
			if wrong < 10 {
				t.Errorf("counter %s = %d, acknowledged adds %d", actorID(i), final, acked[i])
			}
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d counters differ from their acknowledged adds", wrong)
	}
}

func TestExactlyOnceFromTroupeCall(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	minCalls := envInt(t, "TROUPE_CHAOS_EXACTLY_CALLS", 200)
	const actors, loops = 20, 4
	h := newHarness(t)
	h.startHosts(*flagHosts)
	h.waitHosts(h.liveNames())

	// Shell-like loops: one `troupe call` process per add, each with its
	// own connection, router and call id.
	acked := make([]int64, actors)
	var mu sync.Mutex
	var calls int
	var failures []string
	faultsDone := make(chan struct{})
	var wg sync.WaitGroup
	for w := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				mu.Lock()
				enough := calls >= minCalls
				mu.Unlock()
				select {
				case <-faultsDone:
					if enough {
						return
					}
				default:
				}
				i := (w + n*loops) % actors
				ctx, cancel := context.WithTimeout(context.Background(), exactlyTimeout+5*time.Second)
				cmd := exec.CommandContext(ctx, troupeBin, "call", "-s", h.srv.ClientURL(),
					"--timeout", exactlyTimeout.String(), "counter", string(actorID(i)), "add", "1")
				var out, errOut bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errOut
				err := cmd.Run()
				cancel()
				mu.Lock()
				calls++
				if err == nil {
					acked[i]++
				} else {
					failures = append(failures, fmt.Sprintf("counter %s: %v: %s", actorID(i), err, strings.TrimSpace(errOut.String())))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	h.injectFaults(len(faultKinds))
	close(faultsDone)
	wg.Wait()

	h.heal()
	finals := h.readCounters(actors)
	h.stopAll()
	t.Logf("%d troupe call processes, %d failed", calls, len(failures))
	for _, f := range failures[:min(len(failures), 10)] {
		t.Errorf("troupe call failed: %s", f)
	}
	if calls < minCalls {
		t.Errorf("%d calls, want at least %d", calls, minCalls)
	}
	for i, final := range finals {
		if final != acked[i] {
			t.Errorf("counter %s = %d, acknowledged adds %d", actorID(i), final, acked[i])
		}
	}
}
