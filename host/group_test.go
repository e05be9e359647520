package host

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
)

// Group commit (group.go), on the in-memory runtime: the order of events is
// forced by blocking turns and saves, never by timing.

// queueBehindBlock starts a "block" turn, queues the calls behind it and
// returns the block's reply channel and theirs, in order.
func queueBehindBlock(t *testing.T, s *sandbox, st *probeStats, calls ...[2]string) (<-chan *nats.Msg, []<-chan *nats.Msg) {
	t.Helper()
	block := s.startCall(t, "block", "")
	<-st.blocked
	var replies []<-chan *nats.Msg
	for _, c := range calls {
		replies = append(replies, s.startCall(t, c[0], c[1]))
	}
	return block, replies
}

func adds(n int) [][2]string {
	var calls [][2]string
	for i := 1; i <= n; i++ {
		calls = append(calls, [2]string{"add", strconv.Itoa(i)})
	}
	return calls
}

// holdSaves makes the sandbox's saves wait: each save sends its key on
// saving, then waits for proceed to give it its outcome.
// The saves after the test (the sandbox's deactivations) go through.
func holdSaves(t *testing.T, s *sandbox) (saving chan string, proceed chan error) {
	saving, proceed = make(chan string, 16), make(chan error)
	s.rt.setFailSave(func(key string) error {
		saving <- key
		return <-proceed
	})
	t.Cleanup(func() {
		s.rt.setFailSave(nil)
		close(proceed) // a save still waiting goes through
	})
	return saving, proceed
}

func (s *sandbox) saves() uint64 { return s.types["probe"].counters.saves.Load() }

// arrived reports whether a reply is waiting on done (the sandbox's reply
// channels hold one).
func arrived(done <-chan *nats.Msg) bool { return len(done) > 0 }

// settled waits until the mailbox of probe p1 has nothing left to run
// now: it is idle, or its next turn waits for room in the pending save.
func (s *sandbox) settledMailbox(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		a := s.activation("probe", "p1")
		a.mu.Lock()
		done := !a.running
		if r := a.rare.Load(); r != nil && r.gate != nil && r.gate.pending != nil && r.gate.pending.turns >= a.t.group {
			done = true
		}
		a.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the mailbox never settled")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRuntimeGroupCommitHoldsRepliesUntilTheirSave holds every save until
// the turns that can run beside it have run, and checks at each step that
// no reply reports more than the store holds.
func TestRuntimeGroupCommitHoldsRepliesUntilTheirSave(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	s.mustCall(t, "add", "100")
	before := s.saves()
	calls := append([][2]string{{"get", ""}}, adds(10)...)
	calls = append(calls, [2]string{"get", ""})
	block, replies := queueBehindBlock(t, s, st, calls...)
	saving, proceed := holdSaves(t, s)
	close(st.release)
	if _, err := await(t, block); err != nil {
		t.Fatal(err)
	}
	got := make(map[int]int)
	collect := func() {
		for i, r := range replies {
			if _, ok := got[i]; ok || !arrived(r) {
				continue
			}
			b, err := await(t, r)
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			got[i], _ = strconv.Atoi(string(b))
		}
		stored, _ := strconv.Atoi(s.stored(StateKey("probe", "p1")))
		for i, v := range got {
			if v > stored {
				t.Fatalf("call %d replied %d while the store holds %d", i, v, stored)
			}
		}
	}
	<-saving
	s.settledMailbox(t)
	collect()
	// The get that ran on stored state replied at once; nothing else has.
	if len(got) != 1 || got[0] != 100 {
		t.Fatalf("replies during the first save: %v; want only the first get's, 100", got)
	}
	proceed <- nil
	deadline := time.After(hang)
	for len(got) < len(replies) {
		select {
		case <-saving:
			s.settledMailbox(t)
			collect()
			proceed <- nil
		case <-time.After(time.Millisecond):
			collect()
		case <-deadline:
			t.Fatalf("%d of %d replies", len(got), len(replies))
		}
	}
	sum := 100
	for i := 1; i <= 10; i++ {
		if sum += i; got[i] != sum {
			t.Fatalf("add %d = %d; want %d", i, got[i], sum)
		}
	}
	if got[11] != 155 {
		t.Fatalf("get after the adds = %d; want 155", got[11])
	}
	// The first save covers the adds that ran before the saver took them;
	// the second, all that ran while the first was in flight.
	if n := s.saves() - before; n < 1 || n > 2 {
		t.Fatalf("%d saves for ten queued adds; want 1 or 2", n)
	}
}

func TestRuntimeGroupCommitFailedSaveFailsEveryCallItCoveredAndAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"unavailable", protocol.Errorf(protocol.CodeUnavailable, "no stream")},
		{"conflict", protocol.Errorf(protocol.CodeStateConflict, "changed")},
		{"unknown", protocol.Errorf(protocol.CodeOutcomeUnknown, "no answer")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			st := registerProbe(t, s)
			s.mustCall(t, "add", "5")
			block, replies := queueBehindBlock(t, s, st, adds(10)...)
			saving, proceed := holdSaves(t, s)
			close(st.release)
			if _, err := await(t, block); err != nil {
				t.Fatal(err)
			}
			<-saving
			s.settledMailbox(t)
			proceed <- tc.err
			for i, r := range replies {
				if _, err := await(t, r); !errors.Is(err, tc.err) {
					t.Fatalf("add %d: %v; want %v", i+1, err, tc.err)
				}
			}
			if got := s.stored(StateKey("probe", "p1")); got != "5" {
				t.Fatalf("stored %q; want 5: a failed save applies none of its turns", got)
			}
			s.rt.setFailSave(nil)
			if got := s.mustCall(t, "get", ""); got != "5" {
				t.Fatalf("the next call reads %q; want 5, from a new activation", got)
			}
			if n := st.activations.Load(); n != 2 {
				t.Fatalf("%d activations; want 2", n)
			}
		})
	}
}

// A turn that fails after changing the state discards the activation, as
// without group commit; the turns before it are saved without its changes,
// and the calls behind it run on a new activation.
func TestRuntimeGroupCommitKeepsTheTurnsBeforeAFailedOne(t *testing.T) {
	for _, failing := range []string{"dirtyfail", "panic"} {
		t.Run(failing, func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			st := registerProbe(t, s)
			block, replies := queueBehindBlock(t, s, st, [2]string{"add", "1"}, [2]string{"add", "2"}, [2]string{failing, ""}, [2]string{"add", "4"})
			close(st.release)
			if _, err := await(t, block); err != nil {
				t.Fatal(err)
			}
			for i, want := range []string{"1", "3", "", "7"} {
				got, err := await(t, replies[i])
				if want == "" {
					if err == nil {
						t.Fatalf("%s succeeded", failing)
					}
					continue
				}
				if err != nil || string(got) != want {
					t.Fatalf("call %d = %q, %v; want %s", i, got, err, want)
				}
			}
			if got := s.stored(StateKey("probe", "p1")); got != "7" {
				t.Fatalf("stored %q; want 7", got)
			}
			if n := st.activations.Load(); n != 2 {
				t.Fatalf("%d activations; want 2 (the failed turn discards the first)", n)
			}
		})
	}
}

// A failed turn's changes to named keys are not saved either: the keys
// handed to the saver are copied before the next write.
func TestRuntimeGroupCommitRollsBackNamedKeys(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	s.mustCall(t, "setkey", "a")
	block, replies := queueBehindBlock(t, s, st, [2]string{"setkey", "b"}, [2]string{"keyfail", ""}, [2]string{"keys", ""})
	close(st.release)
	if _, err := await(t, block); err != nil {
		t.Fatal(err)
	}
	if _, err := await(t, replies[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := await(t, replies[1]); err == nil {
		t.Fatal("keyfail succeeded")
	}
	if got, err := await(t, replies[2]); err != nil || string(got) != "a,b" {
		t.Fatalf("keys after the failed turn = %q, %v; want a,b", got, err)
	}
}

// GroupCommit(n) bounds the turns one save covers.
func TestRuntimeGroupCommitBound(t *testing.T) {
	// The first save covers the 1 to bound turns that ran before the saver
	// took them; each later one, bound of those that ran while the one
	// before was in flight.
	for _, tc := range []struct {
		bound         int
		least, utmost uint64
	}{{1, 10, 10}, {4, 3, 4}, {DefaultGroupCommit, 1, 2}} {
		t.Run(strconv.Itoa(tc.bound), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			st := registerProbe(t, s, GroupCommit(tc.bound))
			block, replies := queueBehindBlock(t, s, st, adds(10)...)
			saving, proceed := holdSaves(t, s)
			close(st.release)
			if _, err := await(t, block); err != nil {
				t.Fatal(err)
			}
			// Let each save go once the turns that can run beside it have.
			deadline := time.After(hang)
			for !arrived(replies[9]) {
				select {
				case <-saving:
					s.settledMailbox(t)
					proceed <- nil
				case <-time.After(time.Millisecond):
				case <-deadline:
					t.Fatal("the last add was never answered")
				}
			}
			for _, r := range replies {
				if _, err := await(t, r); err != nil {
					t.Fatal(err)
				}
			}
			if n := s.saves(); n < tc.least || n > tc.utmost {
				t.Fatalf("GroupCommit(%d): %d saves for ten queued adds; want %d to %d", tc.bound, n, tc.least, tc.utmost)
			}
			if got := s.stored(StateKey("probe", "p1")); got != "55" {
				t.Fatalf("stored %q; want 55", got)
			}
		})
	}
}

func TestRuntimeGroupCommitRejectsABoundBelowOne(t *testing.T) {
	s := newTestSandbox(t, Config{})
	if err := s.register("probe", func(self *Self) Actor { return &probe{self: self} }, []TypeOption{GroupCommit(0)}); err == nil {
		t.Fatal("GroupCommit(0) was accepted")
	}
}
