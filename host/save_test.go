package host

import (
	"context"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/natstest"
)

func TestLandedRecognisesOnlyOurOwnNewerWrite(t *testing.T) {
	h := startInternal(t, Config{}, func(*Host) {})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	key := StateKey("counter", "x")
	first, err := h.saveState(h.epoch.Load(), key, []byte("1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.saveState(h.epoch.Load(), key, []byte("2"), first)
	if err != nil {
		t.Fatal(err)
	}
	subject := "$KV." + h.state.Bucket() + "." + key
	if seq, ok, err := h.landed(ctx, subject, []byte("2"), first); err != nil || !ok || seq != second {
		t.Fatalf("landed(our write) = %d, %v, %v; want %d, true", seq, ok, err, second)
	}
	if _, ok, err := h.landed(ctx, subject, []byte("3"), first); err != nil || ok {
		t.Fatalf("someone else's bytes were taken for our write (err %v)", err)
	}
	if _, ok, err := h.landed(ctx, subject, []byte("2"), second); err != nil || ok {
		t.Fatalf("a write at the expected revision itself was taken as newer (err %v)", err)
	}
	if _, err := h.saveState(h.epoch.Load(), key, []byte("9"), first); err == nil {
		t.Fatal("a stale save was not refused")
	}
}

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
