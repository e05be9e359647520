package main

import (
	"github.com/troupe-dev/troupe/internal/natstest"

	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDevWalkthrough is the first-run story: start troupe dev, count, stop
// it with SIGTERM, start it again on the same store, and the count is there.
func TestDevWalkthrough(t *testing.T) {
	t.Parallel()
	addr, store := natstest.FreeAddr(t), t.TempDir()
	dev, url := startDev(t, addr, store)
	if out := dev.stdout.String(); !strings.Contains(out, "troupe call -s "+url) {
		t.Errorf("troupe dev prints no hint how to call:\n%s", out)
	}
	mustCall(t, url, "5", "counter", "c1", "add", "5")
	mustCall(t, url, "7", "counter", "c1", "add", "2")

	dev.signal(t, syscall.SIGTERM)
	if code := dev.exitCode(t, 15*time.Second); code != 0 {
		t.Fatalf("troupe dev exited with %d after SIGTERM, want 0\n%s", code, dev.stderr.String())
	}
	if log := dev.stderr.String(); !strings.Contains(log, "host draining") || !strings.Contains(log, "host left") {
		t.Errorf("troupe dev did not drain its host:\n%s", log)
	}

	_, url = startDev(t, addr, store)
	mustCall(t, url, "7", "counter", "c1", "get")
}
