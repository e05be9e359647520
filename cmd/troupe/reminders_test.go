package main

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// openSessions opens n sessions s0…s(n-1) through r, session i with time to
// live ttl(i).
func openSessions(t *testing.T, r *router.Router, n int, ttl func(i int) time.Duration) {
	t.Helper()
	forEach(t, n, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := r.Call(ctx, session.Type, sessionID(i), "open", []byte(ttl(i).String()))
		return err
	})
}

func sessionID(i int) placement.ActorID { return placement.ActorID(fmt.Sprint("s", i)) }

// sessionStates reads every session until all n have expired, or fails the
// test after within.
func sessionStates(t *testing.T, r *router.Router, n int, within time.Duration) []session.State {
	t.Helper()
	states := make([]session.State, n)
	waitFor(t, within, fmt.Sprintf("all %d sessions expire", n), func() bool {
		expired := 0
		for i := range n {
			if states[i].State == "expired" {
				expired++
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b, err := r.Call(ctx, session.Type, sessionID(i), "get", nil)
			cancel()
			if err == nil && json.Unmarshal(b, &states[i]) == nil && states[i].State == "expired" {
				expired++
			}
		}
		return expired == n
	})
	return states
}

// TestReminderFiresOnTheNewOwnerAfterSIGKILL opens sessions that expire in
// 3 s on three hosts, then SIGKILLs the troupe host process owning the most
// of them at once: every session still expires, those of the dead host on
// the hosts that own them now.
func TestReminderFiresOnTheNewOwnerAfterSIGKILL(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	hosts := map[placement.HostID]*proc{
		"rem-a": startProc(t, "host", "-s", url, "--name", "rem-a"),
		"rem-b": startProc(t, "host", "-s", url, "--name", "rem-b"),
	}
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "3 hosts are members", func() bool { return len(r.Table().Members()) == 3 })

	const n = 30
	openSessions(t, r, n, func(int) time.Duration { return 3 * time.Second })
	table := r.Table()
	owned := map[placement.HostID][]int{}
	for i := range n {
		m, _ := table.Owner(session.Type, sessionID(i))
		owned[m.ID] = append(owned[m.ID], i)
	}
	victim := placement.HostID("rem-a")
	if len(owned["rem-b"]) > len(owned[victim]) {
		victim = "rem-b"
	}
	if len(owned[victim]) == 0 {
		t.Fatalf("no troupe host process owns a session: %v", owned)
	}
	hosts[victim].signal(t, syscall.SIGKILL)
	killed := time.Now()

	states := sessionStates(t, r, n, 30*time.Second)
	t.Logf("all %d sessions expired %v after the SIGKILL; %d were on %s", n, time.Since(killed).Round(time.Millisecond), len(owned[victim]), victim)
	for _, i := range owned[victim] {
		if st := states[i]; st.ExpiredOn == victim || st.ExpiredOn == "" || st.ExpiryFires < 1 {
			t.Errorf("session %s of the killed host: %+v; want it expired on another host", sessionID(i), st)
		}
	}
}

// TestReminderDuplicatesUnderChaos measures at-least-once delivery: 600
// sessions expire over 3 s (200 a second) on four hosts while one host is
// SIGKILLed and restarted and then another SIGKILLed. No expiry may be lost;
// duplicates (an expiry that ran twice for one deadline) are counted and
// reported.
func TestReminderDuplicatesUnderChaos(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	start := func(name string) *proc { return startProc(t, "host", "-s", url, "--name", name) }
	a, b := start("chaos-a"), start("chaos-b")
	start("chaos-c")
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "4 hosts are members", func() bool { return len(r.Table().Members()) == 4 })

	const n = 600
	opened := time.Now()
	openSessions(t, r, n, func(i int) time.Duration { return 4*time.Second + time.Duration(i%30)*100*time.Millisecond })
	t.Logf("opened %d sessions in %v", n, time.Since(opened).Round(time.Millisecond))
	// Deadlines run from 4 s to 7 s after opening (opening takes a second or
	// two): kill into the middle.
	time.Sleep(time.Until(opened.Add(4500 * time.Millisecond)))
	a.signal(t, syscall.SIGKILL)
	time.Sleep(time.Second)
	start("chaos-a") // the same name, a new process
	time.Sleep(500 * time.Millisecond)
	b.signal(t, syscall.SIGKILL)

	states := sessionStates(t, r, n, 45*time.Second)
	dups := 0
	for _, st := range states {
		dups += st.ExpiryFires - 1
	}
	t.Logf("%d sessions expired, %d duplicate expiry firings (%.2f%%), none lost", n, dups, 100*float64(dups)/n)
}
