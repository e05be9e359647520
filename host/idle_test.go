package host

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRuntimeCallsQueuedBehindADeactivationAreServed: an idle
// deactivation queues behind the calls already waiting; a call that
// arrives after it is served by the next activation.
func TestRuntimeCallsQueuedBehindADeactivationAreServed(t *testing.T) {
	s := newTestSandbox(t, Config{})
	st := registerProbe(t, s)
	running := s.startCall(t, "block", "")
	<-st.blocked
	before := s.startCall(t, "add", "1")
	s.activation("probe", "p1").deactivate()
	after := s.startCall(t, "add", "10")
	close(st.release)
	for _, c := range []struct {
		done <-chan *nats.Msg
		want string
	}{{running, "0"}, {before, "1"}, {after, "1011"}} {
		if got, err := await(t, c.done); err != nil || string(got) != c.want {
			t.Fatalf("reply %q, %v; want %s", got, err, c.want)
		}
	}
	if a, d := st.activations.Load(), st.deactivations.Load(); a != 2 || d != 1 {
		t.Fatalf("%d activations, %d deactivations; want 2 and 1", a, d)
	}
}

// TestRuntimeTimerSetStopAndValidate covers one-shot timers, StopTimer and
// bad timer settings.
func TestRuntimeTimerSetStopAndValidate(t *testing.T) {
	s := newTestSandbox(t, Config{})
	var once, stopped atomic.Int32
	errs := make(chan error, 4)
	err := s.register("setter", func(self *Self) Actor {
		return ActorFunc(func(ctx context.Context, c Call) ([]byte, error) {
			switch c.Method {
			case "start":
				errs <- self.SetTimer("bad name!", Timer{Tick: func(context.Context) error { return nil }})
				errs <- self.SetTimer("nofunc", Timer{})
				if err := self.SetTimer("once", Timer{Due: time.Second, Tick: func(context.Context) error { once.Add(1); return nil }}); err != nil {
					return nil, err
				}
				return nil, self.SetTimer("stopme", Timer{Due: time.Hour, Tick: func(context.Context) error { stopped.Add(1); return nil }})
			case "stop":
				if !self.StopTimer("stopme") || self.StopTimer("stopme") {
					return nil, errors.New("StopTimer did not report the timer it stopped")
				}
				return []byte{byte('0' + len(self.Timers()))}, nil
			}
			return nil, UnknownMethod(c)
		})
	}, []TypeOption{NoState()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	if _, err := s.call(ctx, "setter", "s", "start", nil, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("an invalid timer was accepted")
		}
	}
	s.advance(time.Second)
	reply, err := s.call(ctx, "setter", "s", "stop", nil, nil)
	if err != nil || string(reply) != "0" {
		t.Fatalf("stop: %q, %v; want 0 timers left", reply, err)
	}
	s.advance(2 * time.Hour)
	if once.Load() != 1 || stopped.Load() != 0 {
		t.Fatalf("one-shot ran %d times (want 1), stopped timer %d (want 0)", once.Load(), stopped.Load())
	}
}
