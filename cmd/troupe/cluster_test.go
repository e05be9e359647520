package main

import (
	"github.com/troupe-dev/troupe/internal/natstest"

	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/examples/relay"
	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/placement"
)

// TestHostsJoinSpreadAndFailover joins two troupe host processes to troupe
// dev, spreads 100 counters over the three, then SIGKILLs one host: it
// leaves the member set within its lease TTL and its counters answer from
// the survivors with their totals intact.
func TestHostsJoinSpreadAndFailover(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	hosts := map[placement.HostID]*proc{
		"host-a": startProc(t, "host", "-s", url, "--name", "host-a"),
		"host-b": startProc(t, "host", "-s", url, "--name", "host-b"),
	}
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "3 hosts are members", func() bool { return len(r.Table().Members()) == 3 })
	checkHostsOutput(t, url, r.Table())

	const n = 100
	forEach(t, n, func(i int) error {
		return callReply(url, strconv.Itoa(i+1), "counter", counterID(i), "add", strconv.Itoa(i+1))
	})
	victim := busiestHost(t, r.Table(), hosts, n)

	killed := time.Now()
	hosts[victim].signal(t, syscall.SIGKILL)
	ttl := placement.DefaultLeaseTTL
	waitFor(t, ttl+3*time.Second, string(victim)+" leaves troupe hosts", func() bool {
		res := troupe("", nil, "hosts", "-s", url)
		return res.code == 0 && strings.Count(res.stdout, "\n") == 3 && !strings.Contains(res.stdout, string(victim))
	})
	t.Logf("%s left the member set %v after SIGKILL", victim, time.Since(killed).Round(time.Millisecond))
	forEach(t, n, func(i int) error {
		return callReply(url, strconv.Itoa(i+1), "counter", counterID(i), "get")
	})
}

func counterID(i int) string { return fmt.Sprintf("k%d", i) }

// checkHostsOutput checks that troupe hosts prints table's generation and
// members.
func checkHostsOutput(t *testing.T, url string, table *placement.Table) {
	t.Helper()
	res := troupe("", nil, "hosts", "-s", url)
	if res.code != 0 {
		t.Fatalf("troupe hosts: exit %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	if want := fmt.Sprintf("generation %d", table.Generation()); lines[0] != want {
		t.Errorf("troupe hosts starts with %q, want %q", lines[0], want)
	}
	members := table.Members()
	if len(lines) != 1+len(members) {
		t.Fatalf("troupe hosts printed %d host lines, want %d:\n%s", len(lines)-1, len(members), res.stdout)
	}
	for i, m := range members {
		want := []string{string(m.ID), m.Subject, string(counter.Type) + "," + string(orders.Type) + "," + string(relay.Type) + "," + string(session.Type)}
		if got := strings.Fields(lines[1+i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("troupe hosts line %q, want fields %q", lines[1+i], want)
		}
	}
}

// busiestHost returns the troupe host process owning the most of the n
// counters, after checking that they are spread over at least two hosts.
func busiestHost(t *testing.T, table *placement.Table, hosts map[placement.HostID]*proc, n int) placement.HostID {
	t.Helper()
	owned := map[placement.HostID]int{}
	for i := range n {
		m, ok := table.Owner(counter.Type, placement.ActorID(counterID(i)))
		if !ok {
			t.Fatalf("no owner for %s", counterID(i))
		}
		owned[m.ID]++
	}
	t.Logf("counters per host: %v", owned)
	if len(owned) < 2 {
		t.Fatalf("%d counters all on one host: %v", n, owned)
	}
	var busiest placement.HostID
	for id := range hosts {
		if busiest == "" || owned[id] > owned[busiest] {
			busiest = id
		}
	}
	if owned[busiest] == 0 {
		t.Fatalf("no troupe host process owns a counter: %v", owned)
	}
	return busiest
}

// forEach runs f for 0..n-1, a few at a time, and fails the test with
// the errors.
func forEach(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}
