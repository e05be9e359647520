package host

import (
	"errors"
	"strconv"
	"testing"

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
	t.Cleanup(func() { s.rt.setFailSave(nil) })
	return saving, proceed
}

func (s *sandbox) saves() uint64 { return s.types["probe"].counters.saves.Load() }

// arrived reports whether a reply is waiting on done (the sandbox's reply
// channels hold one).
func arrived(done <-chan *nats.Msg) bool { return len(done) > 0 }

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
	<-saving
	// The save of the ten adds is in flight: the get that ran on clean
	// state has its reply, no later call has.
	if got, err := await(t, replies[0]); err != nil || string(got) != "100" {
		t.Fatalf("get before the adds = %q, %v; want 100 at once", got, err)
	}
	for i, r := range replies[1:] {
		if arrived(r) {
			t.Fatalf("call %d was answered before the save that covers it was acknowledged", i+1)
		}
	}
	if got := s.stored(StateKey("probe", "p1")); got != "100" {
		t.Fatalf("stored %q during the save; want the old 100", got)
	}
	proceed <- nil
	sum := 100
	for i, r := range replies[1:11] {
		sum += i + 1
		if got, err := await(t, r); err != nil || string(got) != strconv.Itoa(sum) {
			t.Fatalf("add %d = %q, %v; want %d", i+1, got, err, sum)
		}
	}
	if got, err := await(t, replies[11]); err != nil || string(got) != "155" {
		t.Fatalf("get after the adds = %q, %v; want 155", got, err)
	}
	if n := s.saves() - before; n != 1 {
		t.Fatalf("%d saves for ten queued adds; want 1", n)
	}
	if got := s.stored(StateKey("probe", "p1")); got != "155" {
		t.Fatalf("stored %q; want 155", got)
	}
}

func TestRuntimeGroupCommitFailedSaveFailsEveryHeldCall(t *testing.T) {
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
				t.Fatalf("a new activation reads %q; want 5", got)
			}
		})
	}
}

// A turn that fails after changing the state discards the activation, as
// without group commit; the turns before it in its group are saved without
// its changes, and the calls behind it run on a new activation.
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

// A failed turn's changes to named keys are undone too: the snapshot shares
// the keys until the turn writes them.
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

func TestRuntimeGroupCommitBound(t *testing.T) {
	for _, tc := range []struct {
		bound int
		saves uint64
	}{{1, 10}, {4, 3}, {DefaultGroupCommit, 1}} {
		t.Run(strconv.Itoa(tc.bound), func(t *testing.T) {
			s := newTestSandbox(t, Config{})
			st := registerProbe(t, s, GroupCommit(tc.bound))
			block, replies := queueBehindBlock(t, s, st, adds(10)...)
			close(st.release)
			if _, err := await(t, block); err != nil {
				t.Fatal(err)
			}
			for _, r := range replies {
				if _, err := await(t, r); err != nil {
					t.Fatal(err)
				}
			}
			if n := s.saves(); n != tc.saves {
				t.Fatalf("GroupCommit(%d): %d saves for ten queued adds; want %d", tc.bound, n, tc.saves)
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
