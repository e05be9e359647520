package host_test

import (
	"testing"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
)

func TestCounterSmoke(t *testing.T) {
	s := natstest.Server(t)
	for range 3 {
		startHost(t, s, host.Config{}, func(h *host.Host) { _ = counter.Register(h) })
	}
	r := newRouter(t, s)
	waitMembers(t, r, 3)
	if got := call(t, r, counter.Type, "c1", "add", "5"); got != "5" {
		t.Fatalf("add 5 = %q", got)
	}
	if got := call(t, r, counter.Type, "c1", "add", "2"); got != "7" {
		t.Fatalf("add 2 = %q", got)
	}
}
