package host_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// cycleActors registers a "ping" type on one host and a "pong" type on
// another, so that the cycle ping/a → pong/b → ping/a crosses hosts both
// ways.
//
//	ping start <pong id>   sets its state to "before", calls pong back,
//	                       appends "+after" and replies its state
//	ping inner             appends "+inner" and replies its state
//	pong back <ping id>    calls ping inner and replies what it said
//	pong deadline          replies its turn's deadline (unix ms)
func cycleActors(t *testing.T, reentrant bool, depth int) (*router.Router, *nats.Conn) {
	t.Helper()
	s := natstest.Server(t)
	var opts []host.TypeOption
	if reentrant {
		opts = append(opts, host.Reentrant())
	}
	slowStarted := make(chan struct{}) // closed when a turn of ping slow starts
	var startOnce sync.Once
	ping := func(self *host.Self) host.Actor {
		busy := false // in a turn of "slow"; the race detector also sees overlaps
		return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
			if busy {
				return nil, protocol.AppError("overlap", "a turn ran while slow was running")
			}
			switch c.Method {
			case "slow":
				busy = true
				startOnce.Do(func() { close(slowStarted) })
				time.Sleep(300 * time.Millisecond) // long enough for the other call to arrive meanwhile
				busy = false
				self.SetState(append(append([]byte{}, self.State()...), "+slow"...))
			case "start":
				self.SetState([]byte("before"))
				if _, err := self.Router().Call(ctx, "pong", placement.ActorID(c.Payload), "back", []byte(self.ID())); err != nil {
					return nil, err
				}
				self.SetState(append(append([]byte{}, self.State()...), "+after"...))
			case "inner":
				self.SetState(append(append([]byte{}, self.State()...), "+inner"...))
			case "innerfail": // changes the state, then fails
				self.SetState([]byte("lost"))
				return nil, protocol.AppError("inner_failed", "after changing the state")
			case "startignore": // like start, but ignores the callback's failure
				self.SetState([]byte("before"))
				_, _ = self.Router().Call(ctx, "pong", placement.ActorID(c.Payload), "backfail", []byte(self.ID()))
			case "get":
			case "relay": // asks pong for its deadline
				return self.Router().Call(ctx, "pong", placement.ActorID(c.Payload), "deadline", nil)
			case "deep": // calls itself until the chain is too deep
				n, _ := strconv.Atoi(string(c.Payload))
				reply, err := self.Router().Call(ctx, "ping", self.ID(), "deep", []byte(strconv.Itoa(n+1)))
				if errors.Is(err, protocol.ErrChainTooDeep) {
					return []byte(strconv.Itoa(n)), nil
				}
				return reply, err
			default:
				return nil, host.UnknownMethod(c)
			}
			return self.State(), nil
		})
	}
	pong := func(self *host.Self) host.Actor {
		return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
			switch c.Method {
			case "back":
				return self.Router().Call(ctx, "ping", placement.ActorID(c.Payload), "inner", nil)
			case "backfail":
				return self.Router().Call(ctx, "ping", placement.ActorID(c.Payload), "innerfail", nil)
			case "backlater": // back, once ping's slow turn has started
				select {
				case <-slowStarted:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return self.Router().Call(ctx, "ping", placement.ActorID(c.Payload), "inner", nil)
			case "deadline":
				d, _ := ctx.Deadline()
				return []byte(strconv.FormatInt(d.UnixMilli(), 10)), nil
			case "fan": // calls ping/<id> slow and, through pong/b, ping/<id> inner at once
				var wg sync.WaitGroup
				var errs [2]error
				wg.Go(func() { _, errs[0] = self.Router().Call(ctx, "ping", placement.ActorID(c.Payload), "slow", nil) })
				wg.Go(func() { _, errs[1] = self.Router().Call(ctx, "pong", "b", "backlater", c.Payload) })
				wg.Wait()
				return nil, errors.Join(errs[:]...)
			}
			return nil, host.UnknownMethod(c)
		})
	}
	startHost(t, s, host.Config{ID: "h1", MaxCallChainDepth: depth}, func(h *host.Host) {
		if err := h.Register("ping", ping, opts...); err != nil {
			t.Fatal(err)
		}
	})
	startHost(t, s, host.Config{ID: "h2", MaxCallChainDepth: depth}, func(h *host.Host) {
		if err := h.Register("pong", pong); err != nil {
			t.Fatal(err)
		}
	})
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	return r, natstest.Connect(t, s)
}

// A cycle through a type that is not reentrant fails at once with
// WOULD_DEADLOCK naming the cycle, not at the deadline; the actor's turn is
// discarded as an error and the actor keeps serving.
func TestCallCycleFailsFastWithoutReentrancy(t *testing.T) {
	r, _ := cycleActors(t, false, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.Call(ctx, "ping", "a", "start", []byte("b"))
	if !errors.Is(err, protocol.ErrWouldDeadlock) {
		t.Fatalf("got %v, want WOULD_DEADLOCK", err)
	}
	if want := "ping/a → pong/b → ping/a"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the cycle %q", err, want)
	}
	if ctx.Err() != nil {
		t.Fatal("the call ran to its deadline")
	}
	// No state was saved by the failed turn, and the actor still serves.
	if got := call(t, r, "ping", "a", "get", ""); got != "" {
		t.Fatalf("state after the failed turn = %q, want none", got)
	}
	if got := call(t, r, "ping", "a", "inner", ""); got != "+inner" {
		t.Fatalf("inner = %q", got)
	}
}

// With reentrancy on, the same cycle runs the callback as a nested turn of
// the waiting one, on the same activation: it sees the state the outer turn
// set before calling out, and the outer turn sees its change.
func TestCallCycleReentersWhenEnabled(t *testing.T) {
	r, _ := cycleActors(t, true, 0)
	if got := call(t, r, "ping", "a", "start", "b"); got != "before+inner+after" {
		t.Fatalf("start = %q, want before+inner+after", got)
	}
	if got := call(t, r, "ping", "a", "get", ""); got != "before+inner+after" {
		t.Fatalf("saved state = %q", got)
	}
}

// A chain's depth is bounded: a reentrant actor that calls itself stops at
// MaxCallChainDepth with CALL_CHAIN_TOO_DEEP.
func TestCallChainDepthLimit(t *testing.T) {
	r, _ := cycleActors(t, true, 5)
	// The call from the router has no chain; its turn starts one. The calls
	// with 1..4 actors on their path are admitted, the one with 5 is not.
	if got := call(t, r, "ping", "d", "deep", "0"); got != "4" {
		t.Fatalf("deepest admitted call = %s, want 4", got)
	}
}

// A call whose chain lists the actor, but whose turn is not held by that
// chain (the earlier turn ended), is not a deadlock: it is queued and runs.
// This is also how a client in another language takes part in a chain.
func TestChainRevisitingFreeActorRuns(t *testing.T) {
	r, nc := cycleActors(t, false, 0)
	call(t, r, "ping", "a", "inner", "") // activate ping/a; its turn ends
	subject := host.GatewaySubject("troupe", "ping", "a", "inner")
	for _, c := range []struct {
		path string
		want error // nil: the call runs
	}{
		{"ping/a pong/b", nil},
		{"ping/a.b", protocol.ErrBadRequest}, // a raw dot in an id
		{strings.TrimSpace(strings.Repeat("pong/b ", host.DefaultMaxCallChainDepth)), protocol.ErrChainTooDeep},
	} {
		hdr := nats.Header{protocol.HeaderChain: {"chain-1"}, protocol.HeaderChainPath: {c.path}}
		reply, e := gatewayCall(t, nc, subject, "", hdr)
		switch {
		case c.want == nil && (e != nil || reply != "+inner+inner"):
			t.Fatalf("path %q: %q, %v; want the call to run", c.path, reply, e)
		case c.want != nil && !errors.Is(e, c.want):
			t.Fatalf("path %q: %v, want %v", c.path, e, c.want)
		}
	}
}

// Calls made from a turn carry the caller's deadline.
func TestChainCarriesDeadline(t *testing.T) {
	r, _ := cycleActors(t, false, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	want, _ := ctx.Deadline()
	reply, err := r.Call(ctx, "ping", "r", "relay", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.ParseInt(string(reply), 10, 64)
	// Each hop rounds the time left up to the next millisecond; without the
	// carried deadline the callee would have the 5 s default.
	if got > want.UnixMilli()+50 {
		t.Fatalf("callee deadline %d is after the caller's %d", got, want.UnixMilli())
	}
}

// Only the chain's own cycle may enter: a call of the same chain that did
// not come through the actor (a fan-out: pong/x calls ping/a slow and, at
// the same time, pong/b, which calls ping/a once slow has started) waits
// its turn even on a reentrant type, and never runs beside the other turn.
func TestSameChainWithoutCycleQueues(t *testing.T) {
	r, _ := cycleActors(t, true, 0)
	if _, err := r.Call(context.Background(), "pong", "x", "fan", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := call(t, r, "ping", "a", "get", ""); got != "+slow+inner" && got != "+inner+slow" {
		t.Fatalf("state = %q, want both turns", got)
	}
}

// A nested turn that fails with unsaved changes discards the activation:
// the waiting turn cannot succeed on memory the store does not hold, even if
// it ignores the failure, and nothing is saved.
func TestFailedNestedTurnDiscardsTheOuterTurn(t *testing.T) {
	r, _ := cycleActors(t, true, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Call(ctx, "ping", "a", "startignore", []byte("b")); !errors.Is(err, protocol.ErrInternal) || ctx.Err() != nil {
		t.Fatalf("got %v, want INTERNAL at once", err)
	}
	if got := call(t, r, "ping", "a", "get", ""); got != "" {
		t.Fatalf("state = %q, want none saved", got)
	}
}
