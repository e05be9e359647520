package host_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// sink records every message its actors receive, by actor id and payload.
type sink struct {
	mu   sync.Mutex
	got  map[string]int
	more chan struct{}
}

func newSink() *sink { return &sink{got: map[string]int{}, more: make(chan struct{}, 1)} }

func (s *sink) register(h *host.Host) {
	_ = h.Register("sink", func(self *host.Self) host.Actor {
		return host.ActorFunc(func(_ context.Context, c host.Call) ([]byte, error) {
			s.mu.Lock()
			s.got[string(self.ID())+"/"+string(c.Payload)]++
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
			return nil, nil
		})
	}, host.NoState())
}

func (s *sink) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[key]
}

// waitCount waits until n distinct messages have arrived.
func (s *sink) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		have := len(s.got)
		s.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("%d of %d one-way messages arrived", have, n)
		}
	}
}

// TestOneWaySends: router.Send and a gateway publish without a reply subject
// put the message into the owner's mailbox, once, across two hosts.
func TestOneWaySends(t *testing.T) {
	s := natstest.Server(t)
	sk := newSink()
	startHost(t, s, host.Config{}, sk.register)
	startHost(t, s, host.Config{}, sk.register)
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const n = 200
	for i := range n {
		if err := r.Send(ctx, "sink", placement.ActorID(fmt.Sprint("a", i%20)), "put", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	nc := natstest.Connect(t, s)
	for i := range 20 {
		if err := nc.Publish(host.GatewaySubject("troupe", "sink", placement.ActorID(fmt.Sprint("g.", i)), "put"), []byte("gw")); err != nil {
			t.Fatal(err)
		}
	}
	sk.waitCount(t, n+20)
	for i := range n {
		if c := sk.count(fmt.Sprint("a", i%20, "/", i)); c != 1 {
			t.Fatalf("message %d arrived %d times, want 1", i, c)
		}
	}
	if c := sk.count("g.3/gw"); c != 1 {
		t.Fatalf("gateway one-way message arrived %d times, want 1", c)
	}

	// Errors that can be known before sending are returned.
	if err := r.Send(ctx, "nosuch", "x", "m", nil); !errors.Is(err, protocol.ErrNoHost) {
		t.Fatalf("Send to an unserved type: %v, want NO_HOST", err)
	}
	if err := r.Send(ctx, "sink", "x", "bad method", nil); !errors.Is(err, protocol.ErrInvalidMethod) {
		t.Fatalf("Send with a bad method: %v, want INVALID_METHOD", err)
	}
}

// TestOneWayForwardedFromAStaleSender: a one-way message that reaches a host
// that does not own the actor, from a sender with an older table, is
// forwarded once to the owner.
func TestOneWayForwardedFromAStaleSender(t *testing.T) {
	s := natstest.Server(t)
	sk := newSink()
	a := startHost(t, s, host.Config{}, sk.register)
	b := startHost(t, s, host.Config{}, sk.register)
	r := newRouter(t, s)
	table := waitMembers(t, r, 2)
	var id placement.ActorID
	var wrong *host.Host
	for i := 0; wrong == nil; i++ {
		id = placement.ActorID(fmt.Sprint("f", i))
		owner, _ := table.Owner("sink", id)
		switch owner.ID {
		case a.ID():
			wrong = b
		case b.ID():
			wrong = a
		}
	}
	nc := natstest.Connect(t, s)
	hdr := nats.Header{}
	hdr.Set(protocol.HeaderType, "sink")
	hdr.Set(protocol.HeaderID, protocol.EncodeID(string(id)))
	hdr.Set(protocol.HeaderMethod, "put")
	hdr.Set(protocol.HeaderGeneration, strconv.FormatUint(table.Generation()-1, 10))
	if err := nc.PublishMsg(&nats.Msg{Subject: wrong.Subject(), Header: hdr, Data: []byte("fwd")}); err != nil {
		t.Fatal(err)
	}
	sk.waitCount(t, 1)
	if c := sk.count(string(id) + "/fwd"); c != 1 {
		t.Fatalf("forwarded message arrived %d times, want 1", c)
	}
}
