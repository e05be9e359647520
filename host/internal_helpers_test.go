package host

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/natstest"
)

// startInternal starts a host with register's types on its own server, for
// the tests that look inside the package; it is closed when t ends.
func startInternal(t *testing.T, cfg Config, register func(*Host)) *Host {
	t.Helper()
	h, err := New(natstest.Connect(t, natstest.Server(t)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	register(h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}
