package main

import (
	"github.com/troupe-dev/troupe/internal/natstest"

	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// These tests drive troupe with the real nats CLI, as the recipes in
// docs/clients.md do. The CLI is built from the Go module proxy at a pinned
// version once per machine (about 2 minutes cold on 2 cores, seconds when
// the module and build caches are warm) into a directory beside GOCACHE,
// and reused.

// natsCLIVersion is the pinned nats CLI (v0.5.1 is skipped on purpose).
const natsCLIVersion = "v0.5.0"

var natsCLI struct {
	once sync.Once
	path string
	err  error
}

// natsBin returns the path of the nats CLI, building it on first use.
func natsBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the nats CLI is not built")
	}
	natsCLI.once.Do(func() {
		start := time.Now()
		var built bool
		natsCLI.path, built, natsCLI.err = installNatsCLI()
		if built {
			t.Logf("built the nats CLI %s in %v", natsCLIVersion, time.Since(start).Round(time.Second))
		}
	})
	if natsCLI.err != nil {
		t.Fatal(natsCLI.err)
	}
	return natsCLI.path
}

// installNatsCLI returns the cached binary, or installs it with go install
// (which builds a pkg@version outside any module) and moves it into place.
func installNatsCLI() (path string, built bool, err error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", false, fmt.Errorf("go env GOCACHE: %w", err)
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "troupe-natscli-"+natsCLIVersion)
	path = filepath.Join(dir, "nats")
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	tmp, err := os.MkdirTemp(dir, "install-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("go", "install", "github.com/nats-io/natscli/nats@"+natsCLIVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("go install nats CLI %s: %v\n%s", natsCLIVersion, err, out)
	}
	// A rename is atomic: a concurrent test run sees no binary or a whole one.
	if err := os.Rename(filepath.Join(tmp, "nats"), path); err != nil {
		return "", false, err
	}
	return path, true, nil
}

// natsEnv isolates the nats CLI from the user's contexts; xdg may be "" for
// a fresh empty directory.
func natsEnv(t *testing.T, xdg string) []string {
	if xdg == "" {
		xdg = t.TempDir()
	}
	return append(testEnv(), "NATS_CONTEXT=", "XDG_CONFIG_HOME="+xdg)
}

// natsRun runs the nats CLI to its end.
func natsRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	res, err := runProgram(natsBin(t), env, "", args...)
	if err != nil {
		t.Fatalf("nats %v: %v", args, err)
	}
	return res
}

// startNats starts a long-running nats CLI command, killed when t ends.
func startNats(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startCmd(t, natsBin(t), env, args...)
}

// TestNatsCLIGateway calls actors with nats req through the gateway
// subject, as any NATS client can.
func TestNatsCLIGateway(t *testing.T) {
	t.Parallel()
	env := natsEnv(t, "")
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	req := func(subject, payload string) result {
		return natsRun(t, env, "--server", url, "req", subject, payload)
	}
	if r := req("troupe.call.counter.c1.add", "3"); r.code != 0 || strings.TrimSpace(r.stdout) != "3" {
		t.Errorf("nats req troupe.call.counter.c1.add 3: exit %d, stdout %q, stderr %q; want 3", r.code, r.stdout, r.stderr)
	}
	// The id a.b travels id-encoded: the token a%2Eb.
	if r := req("troupe.call.counter.a%2Eb.add", "2"); r.code != 0 || strings.TrimSpace(r.stdout) != "2" {
		t.Errorf("nats req for the id a.b: exit %d, stdout %q, stderr %q; want 2", r.code, r.stdout, r.stderr)
	}
	mustCall(t, url, "2", "counter", "a.b", "get")
	r := req("troupe.call.nosuch.x.get", "")
	for _, want := range []string{"Nats-Service-Error-Code: 4", `Nats-Service-Error: NO_HOST: no live host serves actor type "nosuch"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("nats req to an unknown type: stderr %q lacks %q", r.stderr, want)
		}
	}
	if !strings.Contains(r.stdout, `no live host serves actor type "nosuch"`) {
		t.Errorf("nats req to an unknown type: stdout %q lacks the message", r.stdout)
	}
	// Idempotent: the same Troupe-Call-Id twice applies the add once.
	for range 2 {
		r := natsRun(t, env, "--server", url, "req", "-H", "Troupe-Call-Id:order-17", "troupe.call.counter.c1.add", "3")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "6" {
			t.Errorf("nats req -H Troupe-Call-Id:order-17 ... add 3: exit %d, stdout %q, stderr %q; want 6 both times", r.code, r.stdout, r.stderr)
		}
	}
}

// TestNatsCLIPlacement watches hosts join and leave with nats kv.
func TestNatsCLIPlacement(t *testing.T) {
	t.Parallel()
	env := natsEnv(t, "")
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	if r := natsRun(t, env, "--server", url, "kv", "ls", "troupe_placement"); r.code != 0 || !strings.Contains("\n"+r.stdout, "\nhosts.h-") {
		t.Fatalf("nats kv ls troupe_placement: exit %d, stdout %q, stderr %q; want the dev host's key", r.code, r.stdout, r.stderr)
	}
	watch := startNats(t, env, "--server", url, "kv", "watch", "troupe_placement")
	waitFor(t, 20*time.Second, "the watch shows the dev host", func() bool {
		return strings.Contains(watch.stdout.String(), "PUT troupe_placement > hosts.h-")
	})
	h2 := startProc(t, "host", "-s", url, "--name", "h2")
	waitFor(t, 20*time.Second, "the watch shows h2 joining", func() bool {
		return strings.Contains(watch.stdout.String(), "PUT troupe_placement > hosts.h2")
	})
	r := natsRun(t, env, "--server", url, "kv", "get", "troupe_placement", "hosts.h2", "--raw")
	if r.code != 0 || !strings.Contains(r.stdout, "troupe.host.h2") || !strings.Contains(r.stdout, "counter") {
		t.Errorf("nats kv get troupe_placement hosts.h2 --raw: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	h2.signal(t, syscall.SIGTERM)
	if code := h2.exitCode(t, 20*time.Second); code != 0 {
		t.Errorf("troupe host h2 exited %d after SIGTERM", code)
	}
	waitFor(t, 20*time.Second, "the watch shows h2 purging its key", func() bool {
		return strings.Contains(watch.stdout.String(), "PURGE troupe_placement > hosts.h2")
	})
}

// TestNatsCLIContext checks that troupe reads a context the nats CLI
// saved, and that both connect with it to a server wanting TLS client
// certificates and a password.
func TestNatsCLIContext(t *testing.T) {
	t.Parallel()
	pki := newPKI(t, t.TempDir())
	url := authServer(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{
			CertFile: pki.serverCert, KeyFile: pki.serverKey, CaFile: pki.ca, Verify: true, Timeout: 5,
		})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 5
		o.Username, o.Password = "u", "p"
	})
	conn := []string{"--user", "u", "--password", "p", "--tlsca", pki.ca, "--tlscert", pki.clientCert, "--tlskey", pki.clientKey}
	joinHost(t, url, conn...)
	xdg := t.TempDir()
	env := natsEnv(t, xdg)
	if r := natsRun(t, env, append([]string{"context", "save", "prod", "--server", url}, conn...)...); r.code != 0 {
		t.Fatalf("nats context save: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := natsRun(t, env, "--context", "prod", "req", "troupe.call.counter.c1.add", "7"); r.code != 0 || strings.TrimSpace(r.stdout) != "7" {
		t.Errorf("nats --context prod req: exit %d, stdout %q, stderr %q; want 7", r.code, r.stdout, r.stderr)
	}
	if r := troupe("", []string{"XDG_CONFIG_HOME=" + xdg}, "call", "--context", "prod", "counter", "c1", "get"); r.code != 0 || r.stdout != "7\n" {
		t.Errorf("troupe call --context prod: exit %d, stdout %q, stderr %q; want 7", r.code, r.stdout, r.stderr)
	}
}

// TestNatsCLIMicro lists the hosts with the nats CLI's service discovery:
// nats micro ls, info and stats.
func TestNatsCLIMicro(t *testing.T) {
	t.Parallel()
	env := natsEnv(t, "")
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	startProc(t, "host", "-s", url, "--name", "h2")
	r := newRouter(t, url)
	waitFor(t, 20*time.Second, "two hosts in the table", func() bool { return len(r.Table().Members()) == 2 })
	mustCall(t, url, "4", "counter", "m1", "add", "4")
	var devID string
	for _, m := range r.Table().Members() {
		if m.ID != "h2" {
			devID = string(m.ID)
		}
	}
	ls := natsRun(t, env, "--server", url, "micro", "ls")
	if ls.code != 0 {
		t.Fatalf("nats micro ls: exit %d, stderr %q", ls.code, ls.stderr)
	}
	for _, want := range []string{"troupe", devID, "h2", "0.1.0", "troupe host h2: virtual actors of types counter"} {
		if !strings.Contains(ls.stdout, want) {
			t.Errorf("nats micro ls lacks %q:\n%s", want, ls.stdout)
		}
	}
	gen := fmt.Sprint(r.Table().Generation())
	info := natsRun(t, env, "--server", url, "micro", "info", "troupe", "h2")
	for _, want := range []string{"host_id: h2", "actor_types: counter", "generation: " + gen, "incarnation: ", "troupe.host.h2", "troupe.gateway", "troupe.admin.actors"} {
		if info.code != 0 || !strings.Contains(info.stdout, want) {
			t.Errorf("nats micro info troupe h2: exit %d, lacks %q:\n%s%s", info.code, want, info.stdout, info.stderr)
		}
	}
	stats := natsRun(t, env, "--server", url, "micro", "stats", "troupe", "--json")
	var st []struct {
		ID        string `json:"id"`
		Endpoints []struct {
			Name        string `json:"name"`
			NumRequests int    `json:"num_requests"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(stats.stdout), &st); err != nil || len(st) != 2 {
		t.Fatalf("nats micro stats troupe --json: exit %d, %v, stdout %q, stderr %q", stats.code, err, stats.stdout, stats.stderr)
	}
	calls := 0
	for _, s := range st {
		calls += s.Endpoints[0].NumRequests
	}
	if calls != 1 {
		t.Errorf("nats micro stats: %d calls on the call endpoints, want 1: %s", calls, stats.stdout)
	}
}
