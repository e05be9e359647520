package main

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/inspect"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// troupeJSON runs a troupe command with --json and decodes its output.
func troupeJSON[T any](t *testing.T, args ...string) T {
	t.Helper()
	var v T
	r := troupe("", nil, args...)
	if r.code != 0 {
		t.Fatalf("troupe %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("troupe %v: %v in %q", args, err, r.stdout)
	}
	return v
}

// TestInspectThreeHosts runs where, table, actors and hosts -l against three
// hosts and checks that they agree with each other and with where the calls
// ran.
func TestInspectThreeHosts(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	startProc(t, "host", "-s", url, "--name", "h2")
	startProc(t, "host", "-s", url, "--name", "h3")
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "three hosts in the table", func() bool { return len(r.Table().Members()) == 3 })
	gen := r.Table().Generation()

	// Calls, and where each actor lives according to troupe where.
	const n = 15
	whereOf := map[string]string{} // encoded id -> host
	for i := range n {
		id := fmt.Sprintf("w.%d", i)
		mustCall(t, url, "1", "counter", id, "add", "1")
		w := troupeJSON[struct {
			Host, Subject string
			IDEncoded     string `json:"id_encoded"`
			Generation    uint64
		}](t, "where", "-s", url, "--json", "counter", id)
		if w.Generation != gen || w.Subject != protocol.HostSubject("troupe", protocol.HostID(w.Host)) || w.IDEncoded != router.EncodeID(id) {
			t.Fatalf("troupe where counter %s: %+v, want generation %d", id, w, gen)
		}
		whereOf[w.IDEncoded] = w.Host
	}
	if r := troupe("", nil, "where", "-s", url, "counter", "w.0"); r.code != 0 || !strings.HasPrefix(r.stdout, whereOf["w%2E0"]+"  troupe.host.") {
		t.Errorf("troupe where counter w.0: exit %d, stdout %q", r.code, r.stdout)
	}

	// The hosts' own reports list exactly the actors where placed on them.
	act := troupeJSON[actorsResult](t, "actors", "-s", url, "--json")
	if len(act.Hosts) != 3 || len(act.Missing) != 0 || act.Generation != gen {
		t.Fatalf("troupe actors: %d hosts, missing %v, generation %d", len(act.Hosts), act.Missing, act.Generation)
	}
	seen := 0
	for _, rep := range act.Hosts {
		var want []string
		for id, h := range whereOf {
			if h == rep.Host {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		got := rep.Types[0]
		if got.Type != "counter" || !slices.Equal(got.IDs, want) || got.Active != len(want) || got.Calls != uint64(len(want)) {
			t.Errorf("troupe actors: %s reports %+v; where puts %v there", rep.Host, got, want)
		}
		seen += got.Active
	}
	if seen != n {
		t.Errorf("troupe actors counts %d active actors, want %d", seen, n)
	}
	one := troupeJSON[actorsResult](t, "actors", "-s", url, "--json", "--host", "h2", "--ids", "1")
	if len(one.Hosts) != 1 || one.Hosts[0].Host != "h2" {
		t.Errorf("troupe actors --host h2: %+v", one)
	}
	if r := troupe("", nil, "actors", "-s", url, "--host", "nosuch", "--timeout", "300ms"); r.code != 1 || !strings.Contains(r.stderr, "UNAVAILABLE: host nosuch did not answer") {
		t.Errorf("troupe actors --host nosuch: exit %d, stderr %q", r.code, r.stderr)
	}

	// The table: three hosts share the key space and the sample ids.
	tab := troupeJSON[struct {
		Generation uint64
		Types      []inspect.Placement
	}](t, "table", "-s", url, "--json", "counter")
	if tab.Generation != gen || len(tab.Types) != 1 || len(tab.Types[0].Hosts) != 3 {
		t.Fatalf("troupe table: %+v", tab)
	}
	var space float64
	var sample int
	for _, s := range tab.Types[0].Hosts {
		space, sample = space+s.Space, sample+s.Sample
		if s.Space < 0.2 || s.Space > 0.47 { // a third each, give or take hashing
			t.Errorf("troupe table: %s owns %.3f of the key space", s.Host, s.Space)
		}
	}
	if math.Abs(space-1) > 1e-9 || sample != defaultSample {
		t.Errorf("troupe table: shares sum to %v and samples to %d", space, sample)
	}
	// Its sample agrees with where for one sample id.
	w := troupeJSON[struct{ Host string }](t, "where", "-s", url, "--json", "counter", string(inspect.SampleID(7)))
	if owner, _ := r.Table().Owner("counter", inspect.SampleID(7)); string(owner.ID) != w.Host {
		t.Errorf("where says %s owns sample id 7, the table %s", w.Host, owner.ID)
	}
	if r := troupe("", nil, "table", "-s", url, "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "NO_HOST") {
		t.Errorf("troupe table nosuch: exit %d, stderr %q", r.code, r.stderr)
	}

	// hosts -l and --json: lease ages, state, actor counts.
	hl := troupe("", nil, "hosts", "-s", url, "-l")
	lines := strings.Split(strings.TrimSpace(hl.stdout), "\n")
	if hl.code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[1], "HOST") {
		t.Fatalf("troupe hosts -l: exit %d, stdout %q", hl.code, hl.stdout)
	}
	hj := troupeJSON[hostsReport](t, "hosts", "-s", url, "--json")
	total := 0
	for _, h := range hj.Hosts {
		if !h.Answered || h.Draining || h.LeaseAgeMs == nil || *h.LeaseAgeMs >= h.LeaseTTLMs || h.Version != host.Version {
			t.Errorf("troupe hosts --json: %+v", h)
		}
		total += h.Actors["counter"]
	}
	if total != n || len(hj.Hosts) != 3 || hj.Generation != gen {
		t.Errorf("troupe hosts --json: %d hosts, %d actors, generation %d", len(hj.Hosts), total, hj.Generation)
	}
}
