package host_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Group commit against a real server: a burst of calls queued behind a
// turn runs as one group with one save, no reply leaves before the save
// that covers it is stored, and a save the stream refuses fails every call
// it covered and stores none of them.

// blocker is an actor whose "block" turn waits until the test releases it,
// so that the test can queue calls behind it. Its state is a string;
// "append" adds its payload to it and replies with the new length.
type blocker struct {
	self    *host.Self
	blocked chan<- struct{}
	release <-chan struct{}
}

func (g *blocker) Receive(_ context.Context, c host.Call) ([]byte, error) {
	switch c.Method {
	case "block":
		g.blocked <- struct{}{}
		<-g.release
		return nil, nil
	case "append":
		state := append(append([]byte(nil), g.self.State()...), c.Payload...)
		g.self.SetState(state)
		return []byte(strconv.Itoa(len(state))), nil
	}
	return nil, host.UnknownMethod(c)
}

// groupFixture is one host serving the gate type, and a router.
type groupFixture struct {
	t        *testing.T
	srv      *server.Server
	h        *host.Host
	r        *router.Router
	reg      *prometheus.Registry
	kv       jetstream.KeyValue
	blocked  chan struct{}
	release  chan struct{}
	released bool
}

func newGroupFixture(t *testing.T) *groupFixture {
	f := &groupFixture{t: t, srv: natstest.Server(t), reg: prometheus.NewRegistry(),
		blocked: make(chan struct{}, 1), release: make(chan struct{})}
	f.h = startHost(t, f.srv, host.Config{Metrics: f.reg}, func(h *host.Host) {
		if err := h.Register("gate", func(self *host.Self) host.Actor {
			return &blocker{self: self, blocked: f.blocked, release: f.release}
		}); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(f.unblock)
	f.r = newRouter(t, f.srv)
	waitMembers(t, f.r, 1)
	js, err := jetstream.New(natstest.Connect(t, f.srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if f.kv, err = js.KeyValue(ctx, host.DefaultStateBucket); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *groupFixture) unblock() {
	if !f.released {
		f.released = true
		close(f.release)
	}
}

// appendPlain appends to the gate's state with a call without a call id, so
// that the state bucket holds the state's bytes alone (no recorded calls,
// which idempotent_test.go tests).
func (f *groupFixture) appendPlain(s string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.r.Call(ctx, "gate", "g", "append", []byte(s), router.WithoutCallID()); err != nil {
		f.t.Fatal(err)
	}
}

// stored is the gate's state as the state bucket holds it.
func (f *groupFixture) stored() string {
	f.t.Helper()
	s, err := f.read()
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *groupFixture) read() (string, error) {
	e, err := f.kv.Get(context.Background(), host.StateKey("gate", "g"))
	if err != nil {
		return "", err
	}
	return string(e.Value()), nil
}

func (f *groupFixture) saves() uint64 {
	for _, s := range f.h.Stats() {
		if s.Type == "gate" {
			return s.Saves
		}
	}
	return 0
}

type outcome struct {
	i      int
	reply  string
	err    error
	stored string // the state bucket's value when the reply arrived
}

// queueBehindBlock blocks the gate, sends n appends of one byte each
// behind it, and returns once all n wait in its mailbox.
func (f *groupFixture) queueBehindBlock(n int) (block <-chan error, outcomes <-chan outcome) {
	t := f.t
	blockErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := f.r.Call(ctx, "gate", "g", "block", nil)
		blockErr <- err
	}()
	<-f.blocked
	out := make(chan outcome, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			reply, err := f.r.Call(ctx, "gate", "g", "append", []byte("x"), router.WithoutCallID())
			o := outcome{i: i, reply: string(reply), err: err}
			if err == nil {
				o.stored, o.err = f.read()
			}
			out <- o
		}()
	}
	// Wait for the calls to be in the mailbox, as the host reports it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs, err := f.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if promtest.Value(mfs, "troupe_host_mailbox_depth", "type=gate") == float64(n) {
			return blockErr, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %d calls never all reached the mailbox", n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommitRepliesOnlyWhatIsStored(t *testing.T) {
	f := newGroupFixture(t)
	f.appendPlain("x")
	before := f.saves()
	const n = 20
	block, outcomes := f.queueBehindBlock(n)
	f.unblock()
	if err := <-block; err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for range n {
		o := <-outcomes
		if o.err != nil {
			t.Fatalf("append %d: %v", o.i, o.err)
		}
		// The reply is the length of the state after the call's turn: the
		// store held at least that much when the reply arrived.
		if got, _ := strconv.Atoi(o.reply); len(o.stored) < got {
			t.Fatalf("append %d replied length %d while the store held %d bytes: a reply left before its save", o.i, got, len(o.stored))
		}
		seen[o.reply] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct replies for %d appends", len(seen), n)
	}
	if got := f.stored(); len(got) != n+1 {
		t.Fatalf("stored %d bytes; want %d", len(got), n+1)
	}
	// The first save covers the calls whose turns ran before the saver
	// took them, the next ones those that ran while it was in flight: a
	// few saves, where one per call would make n.
	if saves := f.saves() - before; saves > n/2 {
		t.Fatalf("%d saves for %d queued calls; want a few", saves, n)
	}
}

func TestGroupCommitSaveRefusedFailsEveryHeldCallAndStoresNone(t *testing.T) {
	f := newGroupFixture(t)
	f.appendPlain("0123456789")
	// The stream now refuses any state longer than 10 bytes and its
	// headers: the group's save of 10 more bytes is refused.
	js, err := jetstream.New(natstest.Connect(t, f.srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, protocol.KVStream(host.DefaultStateBucket))
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgSize = 15
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	before := f.saves()
	const n = 10
	block, outcomes := f.queueBehindBlock(n)
	f.unblock()
	if err := <-block; err != nil {
		t.Fatal(err)
	}
	for range n {
		if o := <-outcomes; !errors.Is(o.err, protocol.ErrStateTooLarge) {
			t.Fatalf("append %d: %q, %v; want STATE_TOO_LARGE", o.i, o.reply, o.err)
		}
	}
	if got := f.stored(); got != "0123456789" {
		t.Fatalf("stored %q; want the state before the refused save", got)
	}
	// Calls still queued when the save failed ran on a new activation,
	// whose saves the stream refused too.
	if saves := f.saves() - before; saves < 1 || saves > n {
		t.Fatalf("%d saves for %d queued calls; want 1 to %d", saves, n, n)
	}
}
