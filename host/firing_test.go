package host

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// testAckWait is the reminder consumer's ack wait in these tests: short, so
// that waiting it out is quick, and long enough for a loaded machine.
const testAckWait = 1500 * time.Millisecond

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
// several times over keeps its firing, because the host tells the server it
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
	case <-time.After(3 * testAckWait):
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
