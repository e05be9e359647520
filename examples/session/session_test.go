package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/hosttest"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/router"
)

// TestSessionExpires: a session touched in time stays open; left alone it
// expires by its reminder, once, on its host.
func TestSessionExpires(t *testing.T) {
	s := natstest.Server(t)
	h := hosttest.Start(t, natstest.Connect(t, s), host.Config{}, session.Register)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := h.Router()
	get := func(method, payload string) session.State {
		t.Helper()
		b, err := r.Call(ctx, session.Type, "s1", method, []byte(payload))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var st session.State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	if _, err := r.Call(ctx, session.Type, "s1", "open", []byte("10ms")); !errors.Is(err, router.ErrInvalidArgument) {
		t.Fatalf("open 10ms: %v, want INVALID_ARGUMENT", err)
	}
	opened := get("open", "2s")
	if opened.State != "open" {
		t.Fatalf("after open: %+v", opened)
	}
	time.Sleep(time.Second)
	if st := get("touch", ""); st.State != "open" || !st.Expires.After(opened.Expires) {
		t.Fatalf("after touch: %+v, want open and a later expiry than %v", st, opened.Expires)
	}
	time.Sleep(1500 * time.Millisecond) // past the first deadline, not the touched one
	if st := get("get", ""); st.State != "open" {
		t.Fatalf("a touched session expired at its old deadline: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := get("get", "")
		if st.State == "expired" {
			if st.ExpiryFires != 1 || st.ExpiredOn != h.ID() {
				t.Fatalf("expired session %+v, want one expiry firing on %s", st, h.ID())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := r.Call(ctx, session.Type, "s1", "touch", nil); !errors.Is(err, router.AppError("expired", "")) {
		t.Fatalf("touch after expiry: %v, want APPLICATION(expired)", err)
	}
	if st := get("open", "1h"); st.State != "open" {
		t.Fatal(st)
	}
	if st := get("close", ""); st.State != "closed" {
		t.Fatal(st)
	}
	if list, err := r.Reminders(ctx, session.Type, "s1"); err != nil || len(list) != 0 {
		t.Fatalf("a closed session lists reminders %+v, %v", list, err)
	}
}
