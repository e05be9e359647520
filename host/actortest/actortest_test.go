package actortest_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/host/actortest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// beat counts its heartbeats in its state: a timer (in memory) or a
// reminder (durable), set by "timer" and "remind".
func beat(self *host.Self) host.Actor {
	bump := func() {
		n, _ := strconv.Atoi(string(self.State()))
		self.SetState([]byte(strconv.Itoa(n + 1)))
	}
	return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
		switch c.Method {
		case "timer":
			return nil, self.SetTimer("t", host.Timer{Period: time.Minute, KeepAlive: true, Tick: func(context.Context) error { bump(); return nil }})
		case "remind":
			return nil, self.SetReminder(ctx, router.Reminder{Name: "r", Schedule: string(c.Payload), Method: "beat"})
		case "beat":
			if c.Header.Get(protocol.HeaderReminder) != "r" {
				return nil, errors.New("a firing without its reminder header")
			}
			bump()
			return nil, nil
		case "ask":
			return self.Router().Call(ctx, "oracle", "o1", "question", c.Payload)
		case "bump":
			bump()
			return nil, nil
		case "fail":
			bump()
			return nil, errors.New("failed after a change")
		}
		return self.State(), nil
	})
}

func count(t *testing.T, kit *actortest.Kit, id placement.ActorID) int {
	t.Helper()
	n, _ := strconv.Atoi(string(kit.State("beat", id)))
	return n
}

func TestTimersFollowTheKitClock(t *testing.T) {
	kit := actortest.New(t)
	kit.Register("beat", beat)
	if _, err := kit.Call("beat", "b1", "timer", nil); err != nil {
		t.Fatal(err)
	}
	kit.Advance(10*time.Minute + time.Second)
	if n := count(t, kit, "b1"); n != 10 {
		t.Fatalf("%d ticks saved after 10 min, want 10", n)
	}
}

func TestRemindersFireAsTheClockPasses(t *testing.T) {
	kit := actortest.New(t)
	kit.Register("beat", beat)
	if _, err := kit.Call("beat", "b1", "remind", []byte(protocol.Every(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.Call("beat", "b2", "remind", []byte(protocol.At(kit.Now().Add(time.Minute)))); err != nil {
		t.Fatal(err)
	}
	kit.Advance(5 * time.Hour)
	if n1, n2 := count(t, kit, "b1"), count(t, kit, "b2"); n1 != 5 || n2 != 1 {
		t.Fatalf("firings %d (@every 1h, 5 h) and %d (@at); want 5 and 1", n1, n2)
	}
	if list, err := kit.Router().Reminders(context.Background(), "beat", "b2"); err != nil || len(list) != 0 {
		t.Fatalf("a fired one-time reminder is still listed: %+v, %v", list, err)
	}
	if _, err := kit.Call("beat", "b3", "remind", []byte("0 0 9 * * MON")); err != nil {
		t.Fatal(err)
	}
	if err := kit.FireReminder("beat", "b3", "r"); err != nil || count(t, kit, "b3") != 1 {
		t.Fatalf("FireReminder: %v, count %d", err, count(t, kit, "b3"))
	}
}

func TestCallsToOtherTypesAreRecordedAndStubbed(t *testing.T) {
	kit := actortest.New(t)
	kit.Register("beat", beat)
	if _, err := kit.Call("beat", "b1", "ask", []byte("q")); !errors.Is(err, protocol.ErrNoHost) {
		t.Fatalf("a call to a type the kit does not run: %v, want NO_HOST", err)
	}
	kit.Stub("oracle", func(_ context.Context, id placement.ActorID, method string, payload []byte) ([]byte, error) {
		return []byte("42 from " + string(id)), nil
	})
	if got, err := kit.Call("beat", "b1", "ask", []byte("q")); err != nil || string(got) != "42 from o1" {
		t.Fatalf("ask = %q, %v", got, err)
	}
	calls := kit.Calls()
	last := calls[len(calls)-1]
	if last.Caller != (protocol.Hop{Type: "beat", ID: "b1"}) || last.Type != "oracle" || string(last.Payload) != "q" {
		t.Fatalf("last call %+v, want beat/b1 asking oracle/o1", last)
	}
}

func TestOneWaySendsRunInMailboxOrder(t *testing.T) {
	kit := actortest.New(t)
	kit.Register("beat", beat)
	for range 3 {
		if err := kit.Router().Send(context.Background(), "beat", "b1", "bump", nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := kit.Call("beat", "b1", "get", nil); err != nil || string(got) != "3" {
		t.Fatalf("after three sends the actor holds %q, %v; want 3", got, err)
	}
	if calls := kit.Calls(); len(calls) != 4 || !calls[0].OneWay || calls[3].OneWay {
		t.Fatalf("calls %+v", calls)
	}
}

func TestAFailedTurnSavesNothing(t *testing.T) {
	kit := actortest.New(t, actortest.WithConfig(host.Config{IdleTimeout: time.Hour}))
	kit.Register("beat", beat)
	if _, err := kit.Call("beat", "b1", "fail", nil); err == nil {
		t.Fatal("no error")
	}
	if kit.Saved("beat", "b1") {
		t.Fatal("a failed turn's change was saved")
	}
	if got, err := kit.Call("beat", "b1", "get", nil); err != nil || len(got) != 0 {
		t.Fatalf("after the failure the actor sees %q, %v; want the stored (empty) state", got, err)
	}
	kit.Advance(2 * time.Hour)
	if active := kit.Active("beat"); len(active) != 0 {
		t.Fatalf("still active after 2 h idle: %v", active)
	}
}
