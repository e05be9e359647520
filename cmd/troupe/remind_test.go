package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/natstest"
)

// TestRemindCommands sets a reminder that adds 1 to a counter every second,
// lists it, watches the counter grow, and deletes it, all with the CLI.
func TestRemindCommands(t *testing.T) {
	t.Parallel()
	_, url := startDev(t, natstest.FreeAddr(t), t.TempDir())
	run := func(args ...string) result {
		t.Helper()
		return troupe("", nil, append([]string{args[0], "-s", url}, args[1:]...)...)
	}
	if res := run("remind", "--method", "add", "counter", "rc1", "tick", "@every 1s", "1"); res.code != 0 {
		t.Fatalf("troupe remind: exit %d: %s", res.code, res.stderr)
	}
	res := run("reminders", "counter", "rc1")
	if res.code != 0 || strings.Join(strings.Fields(res.stdout), " ") != "tick @every 1s - add" {
		t.Fatalf("troupe reminders: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	waitFor(t, 10*time.Second, "the reminder adds to the counter twice", func() bool {
		res := run("call", "counter", "rc1", "get")
		n, err := strconv.Atoi(strings.TrimSpace(res.stdout))
		return err == nil && n >= 2
	})
	if res := run("reminders", "--delete", "tick", "counter", "rc1"); res.code != 0 {
		t.Fatalf("troupe reminders --delete: exit %d: %s", res.code, res.stderr)
	}
	if res := run("reminders", "counter", "rc1"); res.code != 0 || res.stdout != "" {
		t.Fatalf("after delete: exit %d, stdout %q", res.code, res.stdout)
	}
	res = run("remind", "counter", "rc1", "tick", "@every 10ms")
	if res.code != 1 || !strings.Contains(res.stderr, "INVALID_SCHEDULE") {
		t.Fatalf("a bad schedule: exit %d, stderr %q; want 1 and INVALID_SCHEDULE", res.code, res.stderr)
	}
}
