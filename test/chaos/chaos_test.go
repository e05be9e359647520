// Package chaos runs real `troupe host` processes against a real NATS server
// under load and injects faults — SIGKILL, SIGTERM, restarts, new hosts,
// SIGSTOP past the lease, and connections cut and restored through a TCP
// proxy, also as a restarted host's join goes out — then checks troupe's
// guarantees from the outside:
//
//   - no two activations of an actor overlapped in time (the hosts' ledgers);
//   - for every counter, acknowledged increments <= final value <=
//     acknowledged + failed increments: nothing acknowledged was lost and
//     nothing was applied that was never sent;
//   - every call ended, in a reply or a typed error, within its deadline plus
//     a small margin;
//   - every host started and not stopped is in the table at the end: a host
//     rides out any fault at start.
//
// The short form runs in CI; longer runs are one flag away:
//
//	go test -count=1 -v ./test/chaos -chaos.faults 200 -chaos.report /tmp/chaos.json
package chaos

import (
	"flag"
	"testing"
	"time"
)

var (
	flagFaults  = flag.Int("chaos.faults", 20, "faults to inject")
	flagActors  = flag.Int("chaos.actors", 1000, "counter actors under load")
	flagHosts   = flag.Int("chaos.hosts", 4, "hosts at the start")
	flagWorkers = flag.Int("chaos.workers", 16, "concurrent callers")
	flagHot     = flag.Int("chaos.hot", 4, "hot counters, which get half the calls")
	flagTTL     = flag.Duration("chaos.lease-ttl", 2*time.Second, "the hosts' lease TTL")
	flagTimeout = flag.Duration("chaos.timeout", 2*time.Second, "each call's deadline")
	flagSeed    = flag.Int64("chaos.seed", 0, "fault schedule seed (0: from the clock)")
	flagReport  = flag.String("chaos.report", "", "write the run's summary as JSON to this file")
)

// deadlineMargin is how late past its deadline a call may end.
const deadlineMargin = 250 * time.Millisecond

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos run skipped in -short mode")
	}
	h := newHarness(t)
	h.startHosts(*flagHosts)
	h.waitHosts(h.liveNames())

	load := h.startLoad(*flagWorkers, *flagActors, *flagTimeout)
	time.Sleep(time.Second)
	h.injectFaults(*flagFaults)
	time.Sleep(time.Second)
	load.stop()

	h.heal()
	finals := h.readCounters(*flagActors)
	h.stopAll()

	h.verify(load, finals)
}
