package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
)

// A draining host hands its actors off as soon as its drain is recorded,
// without waiting for its watch to bring the table that shows it: it ends
// every activation, tells the candidates of its types that it released at
// the drain's revision, and from then on answers a call for an actor its
// table still gives it MOVED, naming that revision, so that the caller
// waits for the table without it.
func TestADrainingHostHandsOffBeforeItsTableShowsTheDrain(t *testing.T) {
	s := natstest.Server(t)
	seen := make(chan turnSeen, 4)
	a, b := startPair(t, s, seen)
	nc := natstest.Connect(t, s)
	notices, err := nc.SubscribeSync(b.Subject())
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	actor := actorOwnedBy(t, "a", "a", "b")
	if _, err := a.Router().Call(ctx, "rec", actor, "m", nil); err != nil {
		t.Fatal(err)
	}
	if n := a.ActiveActors()["rec"]; n != 1 {
		t.Fatalf("a holds %d actors, want 1", n)
	}

	table := a.w.Table()
	rev := table.Generation() + 1000 // a drain a's watch has not brought yet
	a.handOffAll(rev)
	if n := a.ActiveActors()["rec"]; n != 0 {
		t.Fatalf("a still holds %d actors after handing off", n)
	}
	want := protocol.FormatReleased("a", a.rec.incarnation(), rev)
	for {
		m, err := notices.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no release notice of generation %d reached b: %v", rev, err)
		}
		if got := m.Header.Get(protocol.HeaderReleased); got == want {
			break
		}
	}
	err = a.awaitActivation(ctx, "rec", actor)
	var e *protocol.Error
	if !errors.As(err, &e) || e.Code != protocol.CodeMoved || e.Generation != rev {
		t.Fatalf("activating the actor a's table %d still gives it: %v, want MOVED at %d", table.Generation(), err, rev)
	}
}
