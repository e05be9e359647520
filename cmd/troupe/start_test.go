package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/troupe-dev/troupe/internal/embedded"
	"github.com/troupe-dev/troupe/internal/natstest"
)

// waitLog waits until p has logged want at least once.
func waitLog(t *testing.T, p *proc, want string) {
	t.Helper()
	waitFor(t, 30*time.Second, "troupe logs "+want, func() bool { return strings.Contains(p.stderr.String(), want) })
}

// A host started before its server waits for it, says so once, and joins
// when the server comes up.
func TestHostStartedBeforeItsServer(t *testing.T) {
	t.Parallel()
	addr := natstest.FreeAddr(t)
	url := "nats://" + addr
	p := startProc(t, "host", "-s", url, "--name", "early")
	waitLog(t, p, "waiting for NATS")
	s, err := embedded.Start(embedded.Config{Listen: addr, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	waitFor(t, 30*time.Second, "the host serves calls", func() bool { return callReply(url, "0", "counter", "c1", "get") == nil })
	if n := strings.Count(p.stderr.String(), "waiting for NATS"); n != 1 {
		t.Errorf("%d lines about waiting for NATS, want 1:\n%s", n, p.stderr.String())
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
}

// --start-timeout bounds the wait, and the error says what it waited for.
func TestHostStartTimeout(t *testing.T) {
	t.Parallel()
	r := troupe("", nil, "host", "-s", "nats://"+natstest.FreeAddr(t), "--start-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "--start-timeout 1s passed") || !strings.Contains(r.stderr, "no servers available") {
		t.Fatalf("exit %d, stderr %q; want 1, the timeout and what it waited for", r.code, r.stderr)
	}
	if r := troupe("", nil, "host", "--start-timeout", "-1s"); r.code != 2 {
		t.Errorf("--start-timeout -1s: exit %d, stderr %q; want 2", r.code, r.stderr)
	}
}

// SIGTERM while the start still waits ends the process at once, with status
// 0, and leaves nothing of it in the buckets: while waiting for NATS, and
// while waiting for its previous process's lease to expire.
func TestHostSIGTERMWhileStarting(t *testing.T) {
	t.Parallel()
	p := startProc(t, "host", "-s", "nats://"+natstest.FreeAddr(t), "--name", "w1")
	waitLog(t, p, "waiting for NATS")
	p.signal(t, syscall.SIGTERM)
	if code := p.exitCode(t, 3*time.Second); code != 0 {
		t.Errorf("SIGTERM while waiting for NATS: exit %d, want 0", code)
	}

	s := natstest.Server(t)
	url := s.ClientURL()
	old := startProc(t, "host", "-s", url, "--name", "w2", "--lease-ttl", "30s")
	waitLog(t, old, "host joined")
	old.signal(t, syscall.SIGKILL)
	old.exitCode(t, 5*time.Second)
	nc := natstest.Connect(t, s)
	before, _ := natstest.HostRecord(t, nc, "w2")

	next := startProc(t, "host", "-s", url, "--name", "w2")
	waitLog(t, next, "host id is held by a live host")
	next.signal(t, syscall.SIGTERM)
	if code := next.exitCode(t, 3*time.Second); code != 0 {
		t.Errorf("SIGTERM while waiting for the old lease: exit %d, want 0", code)
	}
	if after, _ := natstest.HostRecord(t, nc, "w2"); after.GetIncarnation() != before.GetIncarnation() {
		t.Errorf("the record is incarnation %q after the abandoned start, want the old %q", after.GetIncarnation(), before.GetIncarnation())
	}
}

// What waiting cannot cure fails at once: credentials refused, and a user
// without the permissions a host needs.
func TestHostStartFailsAtOnceOnRefusals(t *testing.T) {
	t.Parallel()
	url := authServer(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "u", Password: "p"},
			{Username: "nojs", Password: "p", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Deny: []string{"$JS.API.>"}},
			}},
		}
	})
	start := time.Now()
	r := troupe("", nil, "host", "-s", url, "--user", "u", "--password", "wrong")
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "authorization violation") || strings.Contains(r.stderr, "waiting") {
		t.Errorf("wrong password: exit %d, stderr %q; want 1 and authorization violation, at once", r.code, r.stderr)
	}
	r = troupe("", nil, "host", "-s", url, "--user", "nojs", "--password", "p")
	if r.code != 1 || !strings.Contains(r.stderr, "Permissions Violation") {
		t.Errorf("no JetStream permissions: exit %d, stderr %q; want 1 and the violation", r.code, r.stderr)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the refusals took %v to fail", took)
	}
}
