package host

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// testAckWait is the reminder consumer's ack wait in these tests: short, so
// that waiting it out is quick, and long enough for a loaded machine (the
// host reports a held firing at least every testAckWait/2).
const testAckWait = 2 * time.Second

// heldTurn is a turn of the "hold" type: which host ran it and the firing's
// stream sequence.
type heldTurn struct {
	host placement.HostID
	seq  string
}

// registerHold registers the "hold" type: each reminder turn reports itself
// on started, then waits for release to close.
func registerHold(started chan<- heldTurn, release <-chan struct{}) func(*Host) {
	return func(h *Host) {
		_ = h.Register("hold", Func(func(ctx context.Context, c Call) ([]byte, error) {
			if _, ok := ReminderName(c); ok {
				started <- heldTurn{host: h.ID(), seq: c.Header.Get(protocol.HeaderReminderSeq)}
				<-release
			}
			return nil, nil
		}), NoState())
	}
}

// startOn starts a host on s with the test's ack wait.
func startOn(t *testing.T, s *server.Server, cfg Config, register func(*Host)) *Host {
	t.Helper()
	cfg.fireAckWait = testAckWait
	return startOnServer(t, s, cfg, register)
}

// fireConsumer returns the reminder consumer's state.
func fireConsumer(t *testing.T, s *server.Server) *jetstream.ConsumerInfo {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, protocol.DefaultReminderStream, protocol.ReminderConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func nextTurn(t *testing.T, started <-chan heldTurn, within time.Duration) heldTurn {
	t.Helper()
	select {
	case turn := <-started:
		return turn
	case <-time.After(within):
		t.Fatalf("no reminder turn started within %v", within)
	}
	panic("unreachable")
}

// TestSlowFiringIsNotDeliveredTwice: a turn that outlasts the ack wait
// more than twice over keeps its firing, because the host tells the server it
// is still at it; the firing is acknowledged once the turn ends.
func TestSlowFiringIsNotDeliveredTwice(t *testing.T) {
	s := natstest.Server(t)
	started := make(chan heldTurn, 4)
	release := make(chan struct{})
	h := startOn(t, s, Config{}, registerHold(started, release))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Router().SetReminder(ctx, "hold", "a", router.Reminder{Name: "once", Schedule: protocol.At(time.Now())}); err != nil {
		t.Fatal(err)
	}
	nextTurn(t, started, 5*time.Second)
	// Redelivery is the server's doing after the ack wait: only waiting it
	// out shows that it does not happen.
	select {
	case turn := <-started:
		t.Fatalf("the firing was delivered again while its turn ran: %+v", turn)
	case <-time.After(5 * testAckWait / 2):
	}
	if info := fireConsumer(t, s); info.NumRedelivered != 0 || info.NumAckPending != 1 {
		t.Fatalf("while the turn runs: %d redelivered, %d pending; want 0 and 1", info.NumRedelivered, info.NumAckPending)
	}
	close(release)
	for info := fireConsumer(t, s); info.NumAckPending != 0; info = fireConsumer(t, s) {
		select {
		case <-ctx.Done():
			t.Fatalf("the firing was not acknowledged after its turn: %+v", info)
		case <-time.After(20 * time.Millisecond): // poll
		}
	}
}

// TestFiringHeldByADeadHostIsRedelivered: a host that stops hard while a
// firing's turn runs never acknowledges it; the server delivers it again
// after the ack wait, with the same sequence, and another host runs it.
func TestFiringHeldByADeadHostIsRedelivered(t *testing.T) {
	s := natstest.Server(t)
	started := make(chan heldTurn, 4)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // the dead host's turn still waits
	lease := placement.LeaseConfig{TTL: time.Second}
	first := startOn(t, s, Config{ID: "first", Lease: lease}, registerHold(started, release))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.Router().SetReminder(ctx, "hold", "a", router.Reminder{Name: "once", Schedule: protocol.At(time.Now())}); err != nil {
		t.Fatal(err)
	}
	held := nextTurn(t, started, 5*time.Second)
	if held.host != "first" {
		t.Fatalf("turn %+v, want it on the only host", held)
	}
	first.Close()
	startOn(t, s, Config{ID: "second", Lease: lease}, registerHold(started, release))
	again := nextTurn(t, started, 10*time.Second)
	if again.host != "second" || again.seq != held.seq {
		t.Fatalf("redelivered turn %+v, want on second with sequence %s", again, held.seq)
	}
	if n, err := strconv.ParseUint(again.seq, 10, 64); err != nil || n == 0 {
		t.Fatalf("firing sequence %q", again.seq)
	}
}

// turnSeen is a turn of the "rec" type: where it ran, and its headers.
type turnSeen struct {
	host   placement.HostID
	method string
	header nats.Header
}

// registerRec registers the "rec" type: every turn is reported on seen;
// the method "block" then waits for release to close.
func registerRec(seen chan<- turnSeen, release <-chan struct{}) func(*Host) {
	return func(h *Host) {
		_ = h.Register("rec", Func(func(ctx context.Context, c Call) ([]byte, error) {
			seen <- turnSeen{host: h.ID(), method: c.Method, header: c.Header}
			if c.Method == "block" {
				<-release
			}
			return nil, nil
		}), NoState())
	}
}

// actorOwnedBy returns an actor id of type rec that hosts (all serving
// rec) give to owner.
func actorOwnedBy(t *testing.T, owner placement.HostID, hosts ...placement.HostID) placement.ActorID {
	t.Helper()
	members := make([]placement.Member, len(hosts))
	for i, id := range hosts {
		members[i] = placement.Member{ID: id, Types: []placement.ActorType{"rec"}}
	}
	table := placement.NewTable(1, members)
	for i := range 1000 {
		id := placement.ActorID("x" + strconv.Itoa(i))
		if m, ok := table.Owner("rec", id); ok && m.ID == owner {
			return id
		}
	}
	t.Fatalf("no actor of %v goes to %s", hosts, owner)
	return ""
}

// startPair starts hosts "a" and "b" on s serving the recording type
// (registerRec), and waits until both see both.
func startPair(t *testing.T, s *server.Server, seen chan<- turnSeen) (a, b *Host) {
	t.Helper()
	a = startOn(t, s, Config{ID: "a"}, registerRec(seen, nil))
	b = startOn(t, s, Config{ID: "b"}, registerRec(seen, nil))
	waitTable(t, a, 2)
	waitTable(t, b, 2)
	return a, b
}

// waitTable waits until h's table has n members.
func waitTable(t *testing.T, h *Host, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		changed := h.w.Changed()
		if len(h.w.Table().Members()) == n {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("host %s never saw %d members", h.ID(), n)
		}
	}
}

// spy counts the requests published to subject, on a connection of its own.
func spy(t *testing.T, s *server.Server, subject string) (count func() int) {
	t.Helper()
	nc := natstest.Connect(t, s)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n := 0
	return func() int {
		// Whatever the server sent before the PONG has arrived.
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := sub.NextMsg(time.Millisecond)
			if errors.Is(err, nats.ErrTimeout) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, notice := m.Header[protocol.HeaderReleased]; !notice {
				n++ // a release notice, which hosts send each other on a table change, is no request
			}
		}
	}
}

// TestFiringForAnOwnActorSkipsNATS: a host delivers a firing for an actor it
// owns straight into the actor's mailbox, with the headers a routed call
// would carry, and one for an actor another host owns through the router.
func TestFiringForAnOwnActorSkipsNATS(t *testing.T) {
	s := natstest.Server(t)
	seen := make(chan turnSeen, 4)
	a, b := startPair(t, s, seen)
	toA, toB := spy(t, s, a.Subject()), spy(t, s, b.Subject())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, owner := range []*Host{a, b} {
		id := actorOwnedBy(t, owner.ID(), "a", "b")
		c := firingCall{typ: "rec", id: id, method: "remind", name: "r", seq: "42", payload: []byte("p")}
		if err := a.callFiring(ctx, c); err != nil {
			t.Fatalf("firing for %s on %s: %v", id, owner.ID(), err)
		}
		turn := <-seen
		typ, encID := turn.header.Get(protocol.HeaderType), turn.header.Get(protocol.HeaderID)
		if call, ok := protocol.ParseCall(turn.header.Get(protocol.HeaderCall)); ok {
			typ, encID = call.Type, call.ID // the one-header form, as the router sends it
		}
		if turn.host != owner.ID() || turn.method != "remind" ||
			turn.header.Get(protocol.HeaderReminder) != "r" || turn.header.Get(protocol.HeaderReminderSeq) != "42" ||
			typ != "rec" || encID != string(id) {
			t.Fatalf("firing for %s ran as %+v", id, turn)
		}
	}
	if n := toA(); n != 0 {
		t.Errorf("%d requests went to the delivering host over NATS, want none", n)
	}
	if n := toB(); n != 1 {
		t.Errorf("%d requests went to the other host, want 1", n)
	}
}

// TestOwnFiringFollowsAnActorThatMoves: a firing a host admitted for its own
// actor, queued behind a running turn when the actor moves to another host,
// is answered MOVED in the host and goes on through the router to the new
// owner.
func TestOwnFiringFollowsAnActorThatMoves(t *testing.T) {
	s := natstest.Server(t)
	seen := make(chan turnSeen, 4)
	release := make(chan struct{})
	a := startOn(t, s, Config{ID: "a"}, registerRec(seen, release))
	id := actorOwnedBy(t, "b", "a", "b") // a's until b joins
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	blocked := make(chan error, 1)
	go func() { _, err := a.Router().Call(ctx, "rec", id, "block", nil); blocked <- err }()
	if turn := <-seen; turn.host != "a" || turn.method != "block" {
		t.Fatalf("turn %+v", turn)
	}
	fired := make(chan error, 1)
	go func() {
		fired <- a.callFiring(ctx, firingCall{typ: "rec", id: id, method: "remind", name: "r", seq: "7"})
	}()
	queued := func(n int, what string) {
		t.Helper()
		for {
			act := a.types["rec"].dir.get(id)
			act.mu.Lock()
			q := len(act.queue) - act.head
			act.mu.Unlock()
			if q == n {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatal(what)
			case <-time.After(time.Millisecond): // poll
			}
		}
	}
	queued(1, "the firing never reached the mailbox behind the blocked turn")
	startOn(t, s, Config{ID: "b"}, registerRec(seen, release))
	waitTable(t, a, 2)
	// a's watcher has the table with b; a hands off on its own goroutine,
	// which puts the deactivation in front of the firing.
	queued(2, "a never started handing the actor off")
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	if err := <-fired; err != nil {
		t.Fatalf("firing: %v", err)
	}
	if turn := <-seen; turn.host != "b" || turn.method != "remind" || turn.header.Get(protocol.HeaderReminderSeq) != "7" {
		t.Fatalf("firing ran as %+v, want on b", turn)
	}
}
