package host

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/troupe-dev/troupe/internal/natstest"
)

// startInternal starts a host with register's types on its own server, for
// the tests that look inside the package; it is closed when t ends.
func startInternal(t *testing.T, cfg Config, register func(*Host)) *Host {
	t.Helper()
	return startOnServer(t, natstest.Server(t), cfg, register)
}

// startOnServer starts a host on s with register's types; it is closed when
// t ends.
func startOnServer(t *testing.T, s *server.Server, cfg Config, register func(*Host)) *Host {
	t.Helper()
	h, err := New(natstest.Connect(t, s), cfg)
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
