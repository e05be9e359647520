package host_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
)

// A stateless actor's turn may run on the goroutine that reads the host's
// subject; one that blocks there must not hold up the calls behind it.
func TestABlockedTurnHoldsUpNoOtherActor(t *testing.T) {
	s := natstest.Server(t)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	startHost(t, s, host.Config{}, func(h *host.Host) {
		register(t, h, "blocker", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			if c.Method == "block" {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return []byte("ok"), nil
		}), host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	call(t, r, "blocker", "a", "ping", "") // both active: the reader may run their turns
	call(t, r, "blocker", "b", "ping", "")

	blocked := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := r.Call(ctx, "blocker", "a", "block", nil)
		blocked <- err
	}()
	<-started
	for i := range 20 { // the other actor answers while a's turn blocks
		if got := call(t, r, "blocker", "b", "ping", strconv.Itoa(i)); got != "ok" {
			t.Fatalf("b ping = %q", got)
		}
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked call: %v", err)
	}
	if got := call(t, r, "blocker", "a", "ping", ""); got != "ok" {
		t.Fatalf("a ping after its long turn = %q", got)
	}
}

// Calls to one actor run in the order they reached the host, however
// the reading goroutines take turns.
func TestOneWaySendsRunInOrder(t *testing.T) {
	const n = 2000
	s := natstest.Server(t)
	var mu sync.Mutex
	var seen []string
	startHost(t, s, host.Config{}, func(h *host.Host) {
		register(t, h, "log", host.Func(func(ctx context.Context, c host.Call) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if c.Method == "put" {
				seen = append(seen, string(c.Payload))
			}
			return []byte(strconv.Itoa(len(seen))), nil
		}), host.NoState(), host.MailboxSize(n))
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	call(t, r, "log", "x", "get", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := r.Send(ctx, "log", "x", "put", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// A call from the same connection arrives after every send before it.
	if got := call(t, r, "log", "x", "get", ""); got != strconv.Itoa(n) {
		t.Fatalf("after %d sends the actor saw %s", n, got)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, v := range seen {
		if v != strconv.Itoa(i) {
			t.Fatalf("turn %d ran send %s", i, v)
		}
	}
}

func register(t *testing.T, h *host.Host, typ string, f host.Factory, opts ...host.TypeOption) {
	t.Helper()
	if err := h.Register(placement.ActorType(typ), f, opts...); err != nil {
		t.Fatal(err)
	}
}

// A stateless actor whose turn calls another actor on the same host waits
// for a reply only another reading goroutine can take: its turn hands the
// reading on when it asks for its context's Done.
func TestInlineTurnsCallActorsOnTheirHost(t *testing.T) {
	s := natstest.Server(t)
	startHost(t, s, host.Config{}, func(h *host.Host) {
		register(t, h, "relay", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				n, _ := strconv.Atoi(string(c.Payload))
				if n == 0 {
					return []byte("end"), nil
				}
				next := placement.ActorID("r" + strconv.Itoa(n-1))
				return self.Router().Call(ctx, "relay", next, "hop", []byte(strconv.Itoa(n-1)))
			})
		}, host.NoState())
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	for range 50 {
		if got := call(t, r, "relay", "r5", "hop", "5"); got != "end" {
			t.Fatalf("relay = %q, want end", got)
		}
	}
}
