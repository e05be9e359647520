package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// firing is one reminder call an alarm actor received.
type firing struct {
	id, name, method string
	seq              uint64
	host             placement.HostID
	at               time.Time
	payload          string
}

// alarms registers the "alarm" type: every reminder call is reported on
// the channel; the method "arm" sets the reminder its payload describes
// (JSON router.Reminder) from inside the turn.
func alarms(fired chan<- firing) func(*host.Host) {
	return func(h *host.Host) {
		_ = h.Register("alarm", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				if c.Method == "arm" {
					var rem router.Reminder
					if err := json.Unmarshal(c.Payload, &rem); err != nil {
						return nil, err
					}
					return nil, self.SetReminder(ctx, rem)
				}
				name, ok := host.ReminderName(c)
				if !ok {
					return nil, host.UnknownMethod(c)
				}
				seq, _ := strconv.ParseUint(c.Header.Get(protocol.HeaderReminderSeq), 10, 64)
				fired <- firing{id: string(self.ID()), name: name, method: c.Method, seq: seq, host: self.Host(), at: time.Now(), payload: string(c.Payload)}
				return nil, nil
			})
		}, host.NoState())
	}
}

func nextFiring(t *testing.T, fired <-chan firing, within time.Duration) firing {
	t.Helper()
	select {
	case f := <-fired:
		return f
	case <-time.After(within):
		t.Fatalf("no reminder fired within %v", within)
	}
	panic("unreachable")
}

// TestReminderFiresOnTimeOnTheOwner: a one-shot reminder set from outside
// fires within a second of its time, as a call on the actor's owner among
// two hosts, and is gone from the list after firing.
func TestReminderFiresOnTimeOnTheOwner(t *testing.T) {
	s := natstest.Server(t)
	fired := make(chan firing, 16)
	startHost(t, s, host.Config{}, alarms(fired))
	startHost(t, s, host.Config{}, alarms(fired))
	r := newRouter(t, s)
	table := waitMembers(t, r, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ids := []placement.ActorID{"a1", "a.2", "a3"}
	at := time.Now().Add(1500 * time.Millisecond)
	for i, id := range ids {
		err := r.SetReminder(ctx, "alarm", id, router.Reminder{Name: "wake", Schedule: protocol.At(at), Method: "ring", Payload: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		list, err := r.Reminders(ctx, "alarm", id)
		if err != nil || len(list) != 1 || list[0].Name != "wake" || list[0].Method != "ring" || list[0].Schedule != protocol.At(at) {
			t.Fatalf("Reminders = %+v, %v; want the one just set", list, err)
		}
	}
	for range ids {
		f := nextFiring(t, fired, 5*time.Second)
		late := f.at.Sub(at)
		t.Logf("%s fired %v after its time on %s", f.id, late.Round(time.Millisecond), f.host)
		if late < -10*time.Millisecond || late > time.Second {
			t.Fatalf("reminder fired %v after its time, want within [0, 1s]", late)
		}
		id := placement.ActorID(f.id)
		i := slices.Index(ids, id)
		owner, _ := table.Owner("alarm", id)
		if i < 0 || f.name != "wake" || f.method != "ring" || f.payload != strconv.Itoa(i) || f.seq == 0 || f.host != owner.ID {
			t.Fatalf("firing %+v; want reminder wake, method ring, payload %d, a sequence, host %s", f, i, owner.ID)
		}
		waitListed(t, r, "alarm", id, 0)
	}
}

// waitListed waits until the actor lists n reminders.
func waitListed(t *testing.T, r *router.Router, typ placement.ActorType, id placement.ActorID, n int) []router.Reminder {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err := r.Reminders(context.Background(), typ, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == n {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s lists %d reminders, want %d: %+v", typ, id, len(list), n, list)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReminderEveryCronDelete: an interval reminder set by the actor itself
// fires every second until deleted; a cron reminder is listed beside it.
func TestReminderEveryCronDelete(t *testing.T) {
	s := natstest.Server(t)
	fired := make(chan firing, 16)
	startHost(t, s, host.Config{}, alarms(fired))
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	arm, _ := json.Marshal(router.Reminder{Name: "beat", Schedule: protocol.Every(time.Second)})
	if _, err := r.Call(ctx, "alarm", "e1", "arm", arm); err != nil {
		t.Fatal(err)
	}
	yearly := router.Reminder{Name: "newyear", Schedule: "0 0 0 1 1 *", TimeZone: "Europe/Amsterdam", Method: "celebrate", Payload: []byte{0, 1}}
	if err := r.SetReminder(ctx, "alarm", "e1", yearly); err != nil {
		t.Fatal(err)
	}
	list := waitListed(t, r, "alarm", "e1", 2)
	if list[0].Name != "beat" || list[0].Method != protocol.DefaultReminderMethod || list[1].Name != "newyear" || list[1].TimeZone != "Europe/Amsterdam" || string(list[1].Payload) != "\x00\x01" {
		t.Fatalf("Reminders = %+v", list)
	}
	first := nextFiring(t, fired, 3*time.Second)
	second := nextFiring(t, fired, 3*time.Second)
	// Two distinct firings, about a period apart (not a burst of redeliveries).
	if gap := second.at.Sub(first.at); gap < 500*time.Millisecond || second.seq <= first.seq {
		t.Fatalf("@every 1s fired %v apart (seq %d then %d)", gap, first.seq, second.seq)
	}
	if err := r.DeleteReminder(ctx, "alarm", "e1", "beat"); err != nil {
		t.Fatal(err)
	}
	waitListed(t, r, "alarm", "e1", 1)
	drain := time.After(2500 * time.Millisecond) // two periods and a half
	late := 0
	for done := false; !done; {
		select {
		case <-fired:
			late++
		case <-drain:
			done = true
		}
	}
	if late > 1 { // one firing may have been under way when it was deleted
		t.Fatalf("a deleted reminder fired %d more times", late)
	}
	if err := r.DeleteReminder(ctx, "alarm", "e1", "nosuch"); err != nil {
		t.Fatalf("deleting a reminder that does not exist: %v", err)
	}
}

func TestReminderBadInput(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, alarms(make(chan firing, 1)))
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		rem  router.Reminder
		want error
	}{
		{router.Reminder{Name: "x", Schedule: "@every 500ms"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "x", Schedule: "tomorrow"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "x", Schedule: "0 * * * *"}, protocol.ErrInvalidSchedule}, // five fields
		{router.Reminder{Name: "x", Schedule: "@every 1m", TimeZone: "Europe/Amsterdam"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "x", Schedule: "@daily", TimeZone: "Mars/Olympus"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "x"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "a.b", Schedule: "@daily"}, protocol.ErrInvalidSchedule},
		{router.Reminder{Name: "x", Schedule: "@daily", Method: "no such"}, protocol.ErrInvalidMethod},
	} {
		if err := r.SetReminder(ctx, "alarm", "b", c.rem); !errors.Is(err, c.want) {
			t.Errorf("SetReminder(%+v) = %v, want %v", c.rem, err, c.want)
		}
	}
	if err := r.SetReminder(ctx, "nosuch", "b", router.Reminder{Name: "x", Schedule: "@daily"}); !errors.Is(err, protocol.ErrNoHost) {
		t.Errorf("a reminder for a type no host serves: %v, want NO_HOST", err)
	}
	if list := waitListed(t, r, "alarm", "b", 0); len(list) != 0 {
		t.Fatal("a refused reminder was stored")
	}
}

// TestReminderGateway sets, lists and deletes reminders with plain NATS
// requests, as any client would.
func TestReminderGateway(t *testing.T) {
	s := natstest.Server(t)
	fired := make(chan firing, 4)
	startHost(t, s, host.Config{}, alarms(fired))
	nc := natstest.Connect(t, s)
	r := newRouter(t, s)
	waitMembers(t, r, 1)

	req := func(subject string, hdr nats.Header, body string) (string, *protocol.Error) {
		t.Helper()
		resp, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: hdr, Data: []byte(body)}, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		return string(resp.Data), protocol.DecodeError(resp.Header, resp.Data)
	}
	hdr := nats.Header{}
	hdr.Set(host.HeaderSchedule, protocol.At(time.Now().Add(time.Second)))
	hdr.Set(protocol.HeaderReminderMethod, "ring")
	if _, e := req("troupe.reminder.set.alarm.g%2E1.soon", hdr, "hi"); e != nil {
		t.Fatal(e)
	}
	hdr.Set(host.HeaderSchedule, "@hourly")
	if _, e := req("troupe.reminder.set.alarm.g%2E1.later", hdr, ""); e != nil {
		t.Fatal(e)
	}
	body, e := req("troupe.reminder.list.alarm.g%2E1", nil, "")
	var list []router.Reminder
	if e != nil || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 || list[1].Name != "soon" || string(list[1].Payload) != "hi" {
		t.Fatalf("list: %s, %v", body, e)
	}
	if f := nextFiring(t, fired, 5*time.Second); f.id != "g.1" || f.name != "soon" || f.method != "ring" || f.payload != "hi" {
		t.Fatalf("firing %+v", f)
	}
	if _, e := req("troupe.reminder.delete.alarm.g%2E1.later", nil, ""); e != nil {
		t.Fatal(e)
	}
	waitListed(t, r, "alarm", "g.1", 0)
	bad := nats.Header{}
	bad.Set(host.HeaderSchedule, "@every 10ms")
	if _, e := req("troupe.reminder.set.alarm.g1.x", bad, ""); e == nil || e.Code != protocol.CodeInvalidSchedule {
		t.Fatalf("a bad schedule through the gateway: %v, want INVALID_SCHEDULE", e)
	}
	if _, e := req("troupe.reminder.frob.alarm.g1", nil, ""); e == nil || e.Code != protocol.CodeBadRequest {
		t.Fatalf("an unknown operation: %v, want BAD_REQUEST", e)
	}
}

// TestReminderFiringsCoalesceWhileNoHostDelivers: while no host delivers,
// the firings of an @every reminder wait in the stream as one, the latest,
// and are delivered once a host starts: on a stream a host made (one
// message per subject) and on one made by an older troupe without that
// limit (the schedule then carries a rollup header).
func TestReminderFiringsCoalesceWhileNoHostDelivers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		older bool // the stream was made by an older troupe
	}{{"stream with one message per subject", false}, {"stream of an older troupe", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := natstest.Server(t)
			fired := make(chan firing, 16)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			js, err := jetstream.New(natstest.Connect(t, s))
			if err != nil {
				t.Fatal(err)
			}
			if tc.older {
				startHost(t, s, host.Config{DisableReminders: true}, alarms(fired)).Close() // makes the state bucket
				if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
					Name: protocol.DefaultReminderStream, Subjects: []string{"troupe.rmd.>"},
					Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
					AllowMsgSchedules: true, AllowRollup: true, AllowDirect: true, Discard: jetstream.DiscardOld,
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				startHost(t, s, host.Config{}, alarms(fired)).Close() // makes the stream
			}
			quiet := startHost(t, s, host.Config{DisableReminders: true}, alarms(fired))
			if err := quiet.Router().SetReminder(ctx, "alarm", "c1", router.Reminder{Name: "beat", Schedule: protocol.Every(time.Second)}); err != nil {
				t.Fatal(err)
			}
			stream, err := js.Stream(ctx, protocol.DefaultReminderStream)
			if err != nil {
				t.Fatal(err)
			}
			sched, err := stream.GetLastMsgForSubject(ctx, protocol.ScheduleSubject("troupe", "alarm", "c1", "beat"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sched.Header.Get(protocol.HeaderNatsScheduleRollup) != "", tc.older; got != want {
				t.Fatalf("schedule has a rollup header: %v, want %v (stream config %+v)", got, want, stream.CachedInfo().Config)
			}
			// Each firing is stored under a new sequence: wait for three.
			fire := protocol.FireSubject("troupe", "alarm", "c1", "beat")
			for {
				info, err := stream.Info(ctx, jetstream.WithSubjectFilter(fire))
				if err != nil {
					t.Fatal(err)
				}
				if info.State.LastSeq >= sched.Sequence+3 {
					if n := info.State.Subjects[fire]; n != 1 {
						t.Fatalf("%d firings wait on %s, want 1", n, fire)
					}
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("fewer than three firings stored: %+v", info.State)
				case <-time.After(100 * time.Millisecond): // poll
				}
			}
			select {
			case f := <-fired:
				t.Fatalf("a firing was delivered with no host delivering: %+v", f)
			default:
			}
			startHost(t, s, host.Config{}, alarms(fired))
			if f := nextFiring(t, fired, 5*time.Second); f.name != "beat" {
				t.Fatalf("firing %+v", f)
			}
		})
	}
}

// TestRemindersSurviveAServerRestart: reminders are in the stream, so a
// server restarted on the same store, with new hosts, still fires them.
func TestRemindersSurviveAServerRestart(t *testing.T) {
	dir := t.TempDir()
	s := natstest.ServerIn(t, dir)
	fired := make(chan firing, 16)
	h := startHost(t, s, host.Config{Lease: placement.LeaseConfig{TTL: time.Second}}, alarms(fired))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	at := time.Now().Add(3 * time.Second)
	if err := h.Router().SetReminder(ctx, "alarm", "r1", router.Reminder{Name: "once", Schedule: protocol.At(at)}); err != nil {
		t.Fatal(err)
	}
	if err := h.Router().SetReminder(ctx, "alarm", "r1", router.Reminder{Name: "yearly", Schedule: "@yearly"}); err != nil {
		t.Fatal(err)
	}
	h.Close()
	s.Shutdown()
	s.WaitForShutdown()

	s2 := natstest.ServerIn(t, dir)
	startHost(t, s2, host.Config{}, alarms(fired))
	r := newRouter(t, s2)
	if list := waitListed(t, r, "alarm", "r1", 2); list[0].Name != "once" || list[1].Name != "yearly" {
		t.Fatalf("after the restart: %+v", list)
	}
	f := nextFiring(t, fired, 10*time.Second)
	if f.name != "once" || f.at.Before(at) {
		t.Fatalf("firing %+v, want once at or after %v", f, at)
	}
	waitListed(t, r, "alarm", "r1", 1)
}

// TestOnlyTheReminderPullersPull: of five hosts delivering reminders and one
// that does not, only the three the table names pull firings (each keeps
// one pull request waiting on the shared consumer); when those three leave,
// the two others take over and a reminder set afterwards fires.
func TestOnlyTheReminderPullersPull(t *testing.T) {
	s := natstest.Server(t)
	fired := make(chan firing, 16)
	hosts := map[placement.HostID]*host.Host{}
	for range 5 {
		h := startHost(t, s, host.Config{}, alarms(fired))
		hosts[h.ID()] = h
	}
	quiet := startHost(t, s, host.Config{DisableReminders: true}, alarms(fired))
	r := newRouter(t, s)
	pullers := placement.ReminderPullers(waitMembers(t, r, 6))
	if len(pullers) != placement.ReminderHosts || slices.Contains(pullers, quiet.ID()) {
		t.Fatalf("pullers %v; want %d hosts, not %s", pullers, placement.ReminderHosts, quiet.ID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, protocol.DefaultReminderStream, protocol.ReminderConsumer)
	if err != nil {
		t.Fatal(err)
	}
	waitPulling := func(want int) {
		t.Helper()
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumWaiting == want {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%d pull requests wait on %s, want %d", info.NumWaiting, protocol.ReminderConsumer, want)
			case <-time.After(50 * time.Millisecond): // poll
			}
		}
	}
	waitPulling(placement.ReminderHosts)

	for _, id := range pullers {
		if err := hosts[id].Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, r, 3)
	waitPulling(2)
	if err := r.SetReminder(ctx, "alarm", "a1", router.Reminder{Name: "late", Schedule: protocol.At(time.Now().Add(200 * time.Millisecond))}); err != nil {
		t.Fatal(err)
	}
	if f := nextFiring(t, fired, 5*time.Second); f.name != "late" {
		t.Fatalf("firing %+v after the first pullers left", f)
	}
}
