// Package hosttest starts hosts for tests outside package host.
package hosttest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
)

// Start starts a host on nc with cfg and the types register adds, within
// 10 s; it is closed when tb ends.
func Start(tb testing.TB, nc *nats.Conn, cfg host.Config, register func(*host.Host) error) *host.Host {
	tb.Helper()
	h, err := host.New(nc, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := register(h); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return h
}
