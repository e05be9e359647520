package host_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
)

// TestReadyOnlyWhileJoined: a host is not ready before it joins, is ready
// once Start returns, and is not ready once it starts leaving.
func TestReadyOnlyWhileJoined(t *testing.T) {
	s := natstest.Server(t)
	h, err := host.New(natstest.Connect(t, s), host.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := counter.Register(h); err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(); !errors.Is(err, host.ErrNotJoined) {
		t.Fatalf("before Start: Ready() = %v, want ErrNotJoined", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(); err != nil {
		t.Fatalf("after Start: Ready() = %v, want nil", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Ready(); !errors.Is(err, host.ErrHostClosed) {
		t.Fatalf("after Shutdown: Ready() = %v, want ErrHostClosed", err)
	}
}
