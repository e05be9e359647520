package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/inspect"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// whoAmI is an actor type whose turns reply with their host's id, and fail
// for the method "fail".
func whoAmI(h *host.Host) {
	_ = h.Register("who", host.Func(func(_ context.Context, c host.Call) ([]byte, error) {
		if c.Method == "fail" {
			return nil, protocol.AppError("nope", "asked to fail")
		}
		return []byte(h.ID()), nil
	}), host.NoState())
}

// TestAdminReports checks that the hosts' own reports of their active
// actors agree with where the calls ran, and with the table.
func TestAdminReports(t *testing.T) {
	s := natstest.Server(t)
	for i := range 3 {
		startHost(t, s, host.Config{ID: placement.HostID(fmt.Sprint("h", i+1))}, whoAmI)
	}
	r := newRouter(t, s)
	table := waitMembers(t, r, 3)
	ran := map[string][]string{} // host -> ids whose calls it ran
	const n = 60
	for i := range n {
		id := placement.ActorID(fmt.Sprint("a.", i)) // a dot: reported id-encoded
		h := call(t, r, "who", id, "get", "")
		if owner, _ := table.Owner("who", id); string(owner.ID) != h {
			t.Fatalf("call to %q ran on %s, the table says %s", id, h, owner.ID)
		}
		ran[h] = append(ran[h], protocol.EncodeID(string(id)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc := natstest.Connect(t, s)
	reports, err := inspect.Gather(ctx, nc, host.AdminActorsSubject("troupe"), host.ActorsRequest{IDs: n}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 3 {
		t.Fatalf("%d hosts answered, want 3", len(reports))
	}
	for _, rep := range reports {
		want := ran[rep.Host]
		slices.Sort(want)
		if len(rep.Types) != 1 || rep.Types[0].Type != "who" {
			t.Fatalf("%s reports types %+v, want who", rep.Host, rep.Types)
		}
		tr := rep.Types[0]
		if !slices.Equal(tr.IDs, want) || tr.Active != len(want) || tr.Calls != uint64(len(want)) || tr.Errors != 0 {
			t.Errorf("%s reports %d active, %d calls, %d errors, ids %v; it ran %v", rep.Host, tr.Active, tr.Calls, tr.Errors, tr.IDs, want)
		}
		if rep.Generation != table.Generation() || rep.Draining || rep.Version != host.Version || rep.Incarnation == "" || rep.StartedUnixMs == 0 {
			t.Errorf("%s report header %+v; want generation %d, not draining, version, incarnation and start", rep.Host, rep, table.Generation())
		}
		if rep.LeaseTTLMs != placement.DefaultLeaseTTL.Milliseconds() || rep.LeaseAgeMs < 0 || rep.LeaseAgeMs >= rep.LeaseTTLMs {
			t.Errorf("%s lease age %d ms of %d ms", rep.Host, rep.LeaseAgeMs, rep.LeaseTTLMs)
		}
	}

	// One host's subject: only that host answers; a limit on ids keeps the
	// count whole; a failed turn counts as an error.
	if _, err := r.Call(ctx, "who", "a.0", "fail", nil); !errors.Is(err, protocol.ErrApplication) {
		t.Fatalf("fail: %v, want an application error", err)
	}
	owner, _ := table.Owner("who", "a.0")
	one, err := inspect.Gather(ctx, nc, host.AdminActorsHostSubject("troupe", owner.ID), host.ActorsRequest{IDs: 1, Type: "who"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(one) != 1 || one[0].Host != string(owner.ID) {
		t.Fatalf("the host subject of %s was answered by %+v", owner.ID, one)
	}
	tr := one[0].Types[0]
	if want := len(ran[string(owner.ID)]); len(tr.IDs) != 1 || tr.Active != want || tr.Calls != uint64(want+1) || tr.Errors != 1 {
		t.Errorf("%s with ids 1: %d ids, %d active, %d calls, %d errors; want 1, %d, %d, 1", owner.ID, len(tr.IDs), tr.Active, tr.Calls, tr.Errors, want, want+1)
	}

	// Bad requests get a typed error.
	for _, body := range []string{"{", `{"ids":-1}`, `{"ids":"x"}`} {
		msg, err := nc.Request(host.AdminActorsHostSubject("troupe", owner.ID), []byte(body), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := protocol.DecodeError(msg.Header, msg.Data); e == nil || e.Code != protocol.CodeBadRequest {
			t.Errorf("admin request %q answered %v, want BAD_REQUEST", body, e)
		}
	}
}

// TestServiceDiscovery checks the $SRV answers that nats micro reads.
func TestServiceDiscovery(t *testing.T) {
	s := natstest.Server(t)
	hosts := []*host.Host{}
	for i := range 2 {
		hosts = append(hosts, startHost(t, s, host.Config{ID: placement.HostID(fmt.Sprint("d", i+1))}, whoAmI))
	}
	r := newRouter(t, s)
	table := waitMembers(t, r, 2)
	for i := range 10 {
		call(t, r, "who", placement.ActorID(strconv.Itoa(i)), "get", "")
	}
	nc := natstest.Connect(t, s)

	pings := gatherJSON(t, nc, "$SRV.PING", 2, func(p micro.Ping) string { return p.ID })
	for i, p := range pings {
		md := p.Metadata
		if p.Type != micro.PingResponseType || p.Name != host.ServiceName || p.ID != string(hosts[i].ID()) || p.Version != host.Version ||
			md["host_id"] != p.ID || md["actor_types"] != "who" || md["generation"] != strconv.FormatUint(table.Generation(), 10) || md["incarnation"] == "" {
			t.Errorf("PING answer %+v", p)
		}
	}
	infos := gatherJSON(t, nc, "$SRV.INFO.troupe.d2", 1, func(p micro.Info) string { return p.ID })
	if len(infos) != 1 || infos[0].ID != "d2" || infos[0].Type != micro.InfoResponseType || len(infos[0].Endpoints) != 4 ||
		infos[0].Endpoints[0].Subject != "troupe.host.d2" || infos[0].Endpoints[1].QueueGroup != "troupe.gateway" {
		t.Errorf("INFO answers %+v", infos)
	}
	calls := 0
	for _, st := range gatherJSON(t, nc, "$SRV.STATS.troupe", 2, func(p micro.Stats) string { return p.ID }) {
		if st.Type != micro.StatsResponseType || st.Started.IsZero() || st.Endpoints[0].Name != "call" {
			t.Errorf("STATS answer %+v", st)
			continue
		}
		calls += st.Endpoints[0].NumRequests
	}
	if calls != 10 {
		t.Errorf("STATS count %d calls on the call endpoints, want 10", calls)
	}
}

// gatherJSON sends an empty request to subject and decodes the first n
// answers, sorted by id.
func gatherJSON[T any](t *testing.T, nc *nats.Conn, subject string, n int, id func(T) string) []T {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out []T
	for len(out) < n {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %d answers, want %d: %v", subject, len(out), n, err)
		}
		var v T
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	return out
}

// TestStatsFollowActivations checks that Stats counts activations in and
// out: idle deactivation brings the count back to zero.
func TestStatsFollowActivations(t *testing.T) {
	s := natstest.Server(t)
	ended, onActivation := activationEnds()
	h := startHost(t, s, host.Config{OnActivation: onActivation}, func(h *host.Host) {
		_ = h.Register("who", host.Func(func(context.Context, host.Call) ([]byte, error) { return nil, nil }),
			host.NoState(), host.IdleTimeout(50*time.Millisecond))
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	for i := range 5 {
		call(t, r, "who", placement.ActorID(strconv.Itoa(i)), "get", "")
	}
	st := h.Stats()
	if len(st) != 1 || st[0].Calls != 5 || st[0].Active > 5 {
		t.Fatalf("Stats after 5 calls = %+v", st)
	}
	waitEnds(t, ended, 5)
	if n := h.Stats()[0].Active; n != 0 {
		t.Fatalf("Stats still counts %d active actors after they all ended", n)
	}
	if ids, active := h.ActiveIDs("who", 10); len(ids) != 0 || active != 0 {
		t.Errorf("ActiveIDs after idle deactivation = %v, %d", ids, active)
	}
}
