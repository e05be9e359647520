package host

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// sbLocal lets the sandbox's actors call each other through a router.
type sbLocal struct{ s *sandbox }

func (l sbLocal) Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error) {
	return l.s.call(ctx, typ, id, method, payload, hdr)
}
func (l sbLocal) Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error {
	return l.s.send(ctx, typ, id, method, payload, hdr)
}
func (l sbLocal) SetReminder(context.Context, placement.ActorType, placement.ActorID, router.Reminder) error {
	return errors.New("no reminders")
}
func (l sbLocal) DeleteReminder(context.Context, placement.ActorType, placement.ActorID, string) error {
	return errors.New("no reminders")
}
func (l sbLocal) Reminders(context.Context, placement.ActorType, placement.ActorID) ([]router.Reminder, error) {
	return nil, errors.New("no reminders")
}

func withLocalRouter(s *sandbox) {
	s.rt.r.Store(router.NewLocal(sbLocal{s}, router.Config{DefaultTimeout: 2 * time.Second}))
}

// queued is the number of envelopes waiting in the mailbox of (typ, id).
func (s *sandbox) queued(typ placement.ActorType, id placement.ActorID) int {
	a := s.activation(typ, id)
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue) - a.head
}

func waitQueued(t *testing.T, s *sandbox, typ placement.ActorType, id placement.ActorID, n int) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for s.queued(typ, id) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s: %d queued, want %d", typ, id, s.queued(typ, id), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A held reply waits for its save, never for a later turn: here A's next
// queued turn calls B, whose turn waits for A's reply to its write. Were the
// reply held until that turn ended, neither could finish before the
// deadlines (two different call chains, so no cycle to detect).
func TestRuntimeGroupCommitHeldReplyWaitsForNoLaterTurn(t *testing.T) {
	for _, bound := range []int{1, DefaultGroupCommit} {
		t.Run("GroupCommit"+strconv.Itoa(bound), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			withLocalRouter(s)
			blocked, release := make(chan struct{}, 1), make(chan struct{})
			if err := s.register("da", func(self *Self) Actor {
				return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
					switch c.Method {
					case "block":
						blocked <- struct{}{}
						<-release
					case "write":
						self.SetState(c.Payload)
					case "callb":
						return self.Router().Call(ctx, "db", "b", "ping", nil)
					}
					return self.State(), nil
				})
			}, []TypeOption{GroupCommit(bound)}); err != nil {
				t.Fatal(err)
			}
			if err := s.register("db", func(self *Self) Actor {
				return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
					switch c.Method {
					case "go":
						return self.Router().Call(ctx, "da", "a", "write", []byte("x"))
					case "ping":
						return []byte("pong"), nil
					}
					return nil, UnknownMethod(c)
				})
			}, nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			blockDone, err := s.start(ctx, "da", "a", "block", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			<-blocked
			goDone, err := s.start(ctx, "db", "b", "go", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			waitQueued(t, s, "da", "a", 1) // db's write waits behind block
			callbDone, err := s.start(ctx, "da", "a", "callb", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			close(release)
			await(t, blockDone)
			if got, err := await(t, goDone); err != nil || string(got) != "x" {
				t.Fatalf("db go = %q, %v; want x (da's write was stored as %q)", got, err, s.stored(StateKey("da", "a")))
			}
			if got, err := await(t, callbDone); err != nil || string(got) != "pong" {
				t.Fatalf("da callb = %q, %v; want pong", got, err)
			}
		})
	}
}

// reentrantPair registers two actor types on s: ra, reentrant, whose state
// is a decimal number, and rb, which calls back into the ra that called it.
// ra's methods: block (until release is closed), add, inner (reads), refuse
// (reads, then fails with an application error), callout (calls rb, which
// calls back ra's method named in the payload, and ignores the outcome) and
// calloutAdd (the same with inner, returning a failure, then adds 10).
func reentrantPair(t *testing.T, s *sandbox, opts ...TypeOption) (blocked, release chan struct{}) {
	t.Helper()
	withLocalRouter(s)
	blocked, release = make(chan struct{}, 1), make(chan struct{})
	num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	ra := func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			add := func(n int) { self.SetState([]byte(strconv.Itoa(num(self.State()) + n))) }
			switch c.Method {
			case "block":
				blocked <- struct{}{}
				<-release
			case "add":
				add(num(c.Payload))
			case "callout":
				_, _ = self.Router().Call(ctx, "rb", "b", "back", []byte(string(self.ID())+" "+string(c.Payload)))
			case "calloutAdd":
				if _, err := self.Router().Call(ctx, "rb", "b", "back", []byte(string(self.ID())+" inner")); err != nil {
					return nil, err
				}
				add(10)
			case "refuse":
				return nil, protocol.AppError("refused", "no")
			}
			return self.State(), nil
		})
	}
	rb := func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			id, method, _ := strings.Cut(string(c.Payload), " ")
			return self.Router().Call(ctx, "ra", placement.ActorID(id), method, nil)
		})
	}
	if err := s.register("ra", ra, append([]TypeOption{Reentrant()}, opts...)); err != nil {
		t.Fatal(err)
	}
	if err := s.register("rb", rb, nil); err != nil {
		t.Fatal(err)
	}
	return blocked, release
}

// onSave gives the sandbox's nth save of key (from 1) the outcome f returns
// for n: nil lets it through.
func onSave(s *sandbox, key string, f func(n int) error) {
	n := 0
	s.rt.setFailSave(func(k string) error {
		if k != key {
			return nil
		}
		n++
		return f(n)
	})
}

// behindBlock blocks ra, queues add 1 and then method behind it, releases
// the block, and returns the errors of the add and of method.
func behindBlock(t *testing.T, s *sandbox, blocked, release chan struct{}, method, payload string) (addErr, outErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	blockDone, _ := s.start(ctx, "ra", "a", "block", nil, nil)
	<-blocked
	addDone, _ := s.start(ctx, "ra", "a", "add", []byte("1"), nil)
	outDone, _ := s.start(ctx, "ra", "a", method, []byte(payload), nil)
	close(release)
	await(t, blockDone)
	_, outErr = await(t, outDone)
	_, addErr = await(t, addDone)
	return addErr, outErr
}

// A save that landed but got no answer (OUTCOME_UNKNOWN) must never reach
// a caller as STATE_CONFLICT, which the router retries: the change is
// stored.
func TestRuntimeGroupCommitNeverCallsAStoredChangeAConflict(t *testing.T) {
	s := newTestSandbox(t, Config{})
	blocked, release := reentrantPair(t, s)
	s.mustCallActor(t, "ra", "a", "add", "5")
	key := StateKey("ra", "a")
	onSave(s, key, func(n int) error {
		if n != 1 {
			return nil
		}
		// The first save lands, and its answer is lost.
		s.rt.mu.Lock()
		s.rt.seq++
		s.rt.entries[key] = stateEntry{rev: s.rt.seq, data: []byte("6")}
		s.rt.mu.Unlock()
		return protocol.Errorf(protocol.CodeOutcomeUnknown, "no answer")
	})
	addErr, outErr := behindBlock(t, s, blocked, release, "calloutAdd", "")
	if stored := s.stored(key); stored == "6" && errors.Is(addErr, protocol.ErrStateConflict) {
		t.Fatalf("add 1 got STATE_CONFLICT (retried by the router) but its change is stored (%q); calloutAdd: %v", stored, outErr)
	}
}

// A nested turn that fails without changing anything (an application
// error) keeps the activation, even while earlier turns' changes wait for
// their save: only its own changes count.
func TestRuntimeGroupCommitNestedAppErrorKeepsTheActivation(t *testing.T) {
	for _, bound := range []int{1, DefaultGroupCommit} {
		t.Run("GroupCommit"+strconv.Itoa(bound), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			blocked, release := reentrantPair(t, s, GroupCommit(bound))
			addErr, outErr := behindBlock(t, s, blocked, release, "callout", "refuse")
			if addErr != nil || outErr != nil {
				t.Fatalf("add: %v; callout: %v; want both to succeed (the callback only refused)", addErr, outErr)
			}
			if got := s.mustCallActor(t, "ra", "a", "inner", ""); got != "1" {
				t.Fatalf("state %q, want 1", got)
			}
		})
	}
}

// A save that met another writer's state fails the calls it covered with
// STATE_CONFLICT (none of their changes is stored), also beside a nested
// turn.
func TestRuntimeGroupCommitConflictBesideANestedTurnIsAConflict(t *testing.T) {
	s := newTestSandbox(t, Config{})
	blocked, release := reentrantPair(t, s)
	s.mustCallActor(t, "ra", "a", "add", "5")
	key := StateKey("ra", "a")
	// Another writer (a new owner) stores 100 under the activation.
	s.rt.mu.Lock()
	s.rt.seq++
	s.rt.entries[key] = stateEntry{rev: s.rt.seq, data: []byte("100")}
	s.rt.mu.Unlock()
	addErr, outErr := behindBlock(t, s, blocked, release, "callout", "inner")
	if !errors.Is(addErr, protocol.ErrStateConflict) {
		t.Fatalf("add 1: %v; want STATE_CONFLICT: its save did not land (stored %q; callout: %v)", addErr, s.stored(key), outErr)
	}
}

// A reply whose save succeeded stays a success when a later save fails.
func TestRuntimeGroupCommitLaterFailureKeepsStoredReplies(t *testing.T) {
	s := newTestSandbox(t, Config{})
	blocked, release := reentrantPair(t, s)
	s.mustCallActor(t, "ra", "a", "add", "5")
	key := StateKey("ra", "a")
	onSave(s, key, func(n int) error {
		if n == 2 {
			return protocol.Errorf(protocol.CodeUnavailable, "stream down")
		}
		return nil
	})
	addErr, outErr := behindBlock(t, s, blocked, release, "calloutAdd", "")
	if stored := s.stored(key); stored == "6" && addErr != nil {
		t.Fatalf("add 1 failed with %v, but its change is stored (%q); calloutAdd: %v", addErr, stored, outErr)
	}
}
