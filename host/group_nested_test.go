package host

import (
	"context"
	"errors"
	"strconv"
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

// A save that landed but got no answer (OUTCOME_UNKNOWN) must never reach
// a caller as STATE_CONFLICT, which the router retries: the change is
// stored.
func TestRuntimeGroupCommitNeverCallsAStoredChangeAConflict(t *testing.T) {
	s := newTestSandbox(t, Config{})
	withLocalRouter(s)
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	if err := s.register("ra", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			switch c.Method {
			case "block":
				blocked <- struct{}{}
				<-release
			case "add":
				self.SetState([]byte(strconv.Itoa(num(self.State()) + num(c.Payload))))
			case "callout":
				if _, err := self.Router().Call(ctx, "rb", "b", "back", []byte(self.ID())); err != nil {
					return nil, err
				}
			case "inner":
			}
			return self.State(), nil
		})
	}, []TypeOption{Reentrant()}); err != nil {
		t.Fatal(err)
	}
	if err := s.register("rb", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			return self.Router().Call(ctx, "ra", placement.ActorID(c.Payload), "inner", nil)
		})
	}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.call(ctx, "ra", "a", "add", []byte("5"), nil); err != nil {
		t.Fatal(err)
	}
	key := StateKey("ra", "a")
	saves := 0
	s.rt.setFailSave(func(k string) error {
		if k != key {
			return nil
		}
		saves++
		if saves == 1 { // the nested turn's save: it lands, the answer is lost
			s.rt.mu.Lock()
			s.rt.seq++
			s.rt.entries[key] = stateEntry{rev: s.rt.seq, data: []byte("6")}
			s.rt.mu.Unlock()
			return protocol.Errorf(protocol.CodeOutcomeUnknown, "no answer")
		}
		return nil
	})
	blockDone, _ := s.start(ctx, "ra", "a", "block", nil, nil)
	<-blocked
	addDone, _ := s.start(ctx, "ra", "a", "add", []byte("1"), nil)
	outDone, _ := s.start(ctx, "ra", "a", "callout", nil, nil)
	close(release)
	await(t, blockDone)
	_, outErr := await(t, outDone)
	_, addErr := await(t, addDone)
	stored := s.stored(key)
	t.Logf("callout: %v; add: %v; stored %q", outErr, addErr, stored)
	if stored == "6" && errors.Is(addErr, protocol.ErrStateConflict) {
		t.Fatalf("add 1 got STATE_CONFLICT (retried by the router) but its change is stored (%q)", stored)
	}
}

// A nested turn that fails without changing anything (an application
// error) keeps the activation, even while earlier turns' changes wait for
// their save: only its own changes count.
func TestRuntimeGroupCommitNestedAppErrorKeepsTheActivation(t *testing.T) {
	for _, bound := range []int{1, DefaultGroupCommit} {
		t.Run("GroupCommit"+strconv.Itoa(bound), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			withLocalRouter(s)
			blocked, release := make(chan struct{}, 1), make(chan struct{})
			num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
			if err := s.register("ra", func(self *Self) Actor {
				return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
					switch c.Method {
					case "block":
						blocked <- struct{}{}
						<-release
					case "add":
						self.SetState([]byte(strconv.Itoa(num(self.State()) + num(c.Payload))))
					case "callout": // ignores the callback's failure
						_, _ = self.Router().Call(ctx, "rb", "b", "back", []byte(self.ID()))
					case "refuse": // a read-only method that refuses
						return nil, protocol.AppError("refused", "no")
					}
					return self.State(), nil
				})
			}, []TypeOption{Reentrant(), GroupCommit(bound)}); err != nil {
				t.Fatal(err)
			}
			if err := s.register("rb", func(self *Self) Actor {
				return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
					return self.Router().Call(ctx, "ra", placement.ActorID(c.Payload), "refuse", nil)
				})
			}, nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			blockDone, _ := s.start(ctx, "ra", "a", "block", nil, nil)
			<-blocked
			addDone, _ := s.start(ctx, "ra", "a", "add", []byte("1"), nil)
			outDone, _ := s.start(ctx, "ra", "a", "callout", nil, nil)
			close(release)
			await(t, blockDone)
			if _, err := await(t, addDone); err != nil {
				t.Fatalf("add: %v", err)
			}
			if got, err := await(t, outDone); err != nil || string(got) != "1" {
				t.Fatalf("callout = %q, %v; want 1 (a read-only callback that refused)", got, err)
			}
		})
	}
}

// A save that met another writer's state fails the calls it covered with
// STATE_CONFLICT (none of their changes is stored), also beside a nested
// turn.
func TestRuntimeGroupCommitConflictBesideANestedTurnIsAConflict(t *testing.T) {
	s := newTestSandbox(t, Config{})
	withLocalRouter(s)
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	if err := s.register("ra", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			switch c.Method {
			case "block":
				blocked <- struct{}{}
				<-release
			case "add":
				self.SetState([]byte(strconv.Itoa(num(self.State()) + num(c.Payload))))
			case "callout": // ignores the callback's failure
				_, _ = self.Router().Call(ctx, "rb", "b", "back", []byte(self.ID()))
			case "inner":
			}
			return self.State(), nil
		})
	}, []TypeOption{Reentrant()}); err != nil {
		t.Fatal(err)
	}
	if err := s.register("rb", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			return self.Router().Call(ctx, "ra", placement.ActorID(c.Payload), "inner", nil)
		})
	}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.call(ctx, "ra", "a", "add", []byte("5"), nil); err != nil {
		t.Fatal(err)
	}
	key := StateKey("ra", "a")
	blockDone, _ := s.start(ctx, "ra", "a", "block", nil, nil)
	<-blocked
	// Another writer (a new owner) stores 100 while the turns run.
	s.rt.mu.Lock()
	s.rt.seq++
	s.rt.entries[key] = stateEntry{rev: s.rt.seq, data: []byte("100")}
	s.rt.mu.Unlock()
	addDone, _ := s.start(ctx, "ra", "a", "add", []byte("1"), nil)
	outDone, _ := s.start(ctx, "ra", "a", "callout", nil, nil)
	close(release)
	await(t, blockDone)
	_, outErr := await(t, outDone)
	_, addErr := await(t, addDone)
	t.Logf("callout: %v; add: %v; stored %q", outErr, addErr, s.stored(key))
	if !errors.Is(addErr, protocol.ErrStateConflict) {
		t.Fatalf("add 1: %v; want STATE_CONFLICT: its save definitely did not land (stored %q)", addErr, s.stored(key))
	}
}

// A reply whose save succeeded stays a success when a later save fails.
func TestRuntimeGroupCommitLaterFailureKeepsStoredReplies(t *testing.T) {
	s := newTestSandbox(t, Config{})
	withLocalRouter(s)
	blocked, release := make(chan struct{}, 1), make(chan struct{})
	num := func(b []byte) int { n, _ := strconv.Atoi(string(b)); return n }
	if err := s.register("ra", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			switch c.Method {
			case "block":
				blocked <- struct{}{}
				<-release
			case "add":
				self.SetState([]byte(strconv.Itoa(num(self.State()) + num(c.Payload))))
			case "callout": // calls back, then adds 10
				if _, err := self.Router().Call(ctx, "rb", "b", "back", []byte(self.ID())); err != nil {
					return nil, err
				}
				self.SetState([]byte(strconv.Itoa(num(self.State()) + 10)))
			case "inner":
			}
			return self.State(), nil
		})
	}, []TypeOption{Reentrant()}); err != nil {
		t.Fatal(err)
	}
	if err := s.register("rb", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			return self.Router().Call(ctx, "ra", placement.ActorID(c.Payload), "inner", nil)
		})
	}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.call(ctx, "ra", "a", "add", []byte("5"), nil); err != nil {
		t.Fatal(err)
	}
	key := StateKey("ra", "a")
	saves := 0
	s.rt.setFailSave(func(k string) error {
		if k != key {
			return nil
		}
		if saves++; saves == 2 { // the group's save, after the nested turn's
			return protocol.Errorf(protocol.CodeUnavailable, "stream down")
		}
		return nil
	})
	blockDone, _ := s.start(ctx, "ra", "a", "block", nil, nil)
	<-blocked
	addDone, _ := s.start(ctx, "ra", "a", "add", []byte("1"), nil)
	outDone, _ := s.start(ctx, "ra", "a", "callout", nil, nil)
	close(release)
	await(t, blockDone)
	_, outErr := await(t, outDone)
	_, addErr := await(t, addDone)
	stored := s.stored(key)
	t.Logf("callout: %v; add: %v; stored %q", outErr, addErr, stored)
	if stored == "6" && addErr != nil {
		t.Fatalf("add 1 failed with %v, but its change is stored (%q)", addErr, stored)
	}
}
