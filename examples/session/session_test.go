package session_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/host/actortest"
	"github.com/troupe-dev/troupe/protocol"
)

// TestSessionExpires: a session touched in time stays open; left alone it
// expires by its reminder, once.
func TestSessionExpires(t *testing.T) {
	kit := actortest.New(t)
	kit.Register(session.Type, session.New)
	get := func(method, payload string) session.State {
		t.Helper()
		b, err := kit.Call(session.Type, "s1", method, []byte(payload))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var st session.State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	if _, err := kit.Call(session.Type, "s1", "open", []byte("10ms")); !errors.Is(err, protocol.ErrInvalidArgument) {
		t.Fatalf("open 10ms: %v, want INVALID_ARGUMENT", err)
	}
	opened := get("open", "2s")
	if opened.State != "open" {
		t.Fatalf("after open: %+v", opened)
	}
	kit.Advance(time.Second)
	if st := get("touch", ""); st.State != "open" || !st.Expires.After(opened.Expires) {
		t.Fatalf("after touch: %+v, want open and a later expiry than %v", st, opened.Expires)
	}
	kit.Advance(1500 * time.Millisecond) // past the first deadline, not the touched one
	if st := get("get", ""); st.State != "open" {
		t.Fatalf("a touched session expired at its old deadline: %+v", st)
	}
	kit.Advance(time.Second)
	if st := get("get", ""); st.State != "expired" || st.ExpiryFires != 1 || st.ExpiredOn != "actortest" {
		t.Fatalf("session %+v, want expired by one firing", st)
	}
	if _, err := kit.Call(session.Type, "s1", "touch", nil); !errors.Is(err, protocol.AppError("expired", "")) {
		t.Fatalf("touch after expiry: %v, want APPLICATION(expired)", err)
	}
	if st := get("open", "1h"); st.State != "open" {
		t.Fatal(st)
	}
	if st := get("close", ""); st.State != "closed" {
		t.Fatal(st)
	}
	if list, err := kit.Router().Reminders(t.Context(), session.Type, "s1"); err != nil || len(list) != 0 {
		t.Fatalf("a closed session lists reminders %+v, %v", list, err)
	}
	var saved session.State
	if err := json.Unmarshal(kit.State(session.Type, "s1"), &saved); err != nil || saved.State != "closed" {
		t.Fatalf("saved state %+v, %v; want closed", saved, err)
	}
}
