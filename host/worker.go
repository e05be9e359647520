package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Actors in other languages: worker types.
//
// A worker type is registered on a Go host like any type, but its turns are
// computed by a worker service, a program in any language that takes
// requests on protocol.WorkerSubject in the queue group
// protocol.WorkerQueue. For each turn (a call, the activation, a timer tick
// or a reminder firing) the host sends a pb.WorkerTurn with the actor's
// identity, the call and the actor's whole state, and the worker answers a
// pb.WorkerAnswer: the reply or an error, the new state or none, and timers
// and reminders to set or cancel. Everything that makes an actor safe stays
// here, in one implementation: placement, the mailbox, lease fencing, call
// chains, timers, reminders and the compare-and-set save. A worker keeps
// nothing between turns, so any worker in the queue group can take any turn,
// and a worker that dies loses nothing that was acknowledged.
//
// A worker that does not answer within the worker timeout (it died mid-turn,
// or hangs) fails the turn with CodeUnavailable: nothing of the turn is
// applied or saved, so the caller may retry (the Go router does so on its
// own), and the next turn goes to another worker of the queue group. With no
// worker running, the turn fails the same way at once.
//
// Worker types are not reentrant: a worker's call that comes back to its own
// actor fails with CodeWouldDeadlock, as for any non-reentrant type. The
// worker takes part in call chains by sending the turn's chain headers on
// the calls it makes (through the gateway).

// WorkerTimeout bounds each turn of a worker type (see RegisterWorker); the
// default is protocol.DefaultWorkerTimeout. It applies only to worker types.
func WorkerTimeout(d time.Duration) TypeOption {
	return typeOptionFunc(func(t *actorType) { t.workerTimeout = d })
}

// RegisterWorker registers typ as a type whose turns are computed by worker
// services over NATS (see the package's worker notes above, and PROTOCOL.md,
// "Actors in other languages (workers)"). opts are as for Register, plus
// WorkerTimeout; Reentrant is refused.
func (h *Host) RegisterWorker(typ placement.ActorType, opts ...TypeOption) error {
	probe := &actorType{}
	for _, o := range opts {
		o.apply(probe)
	}
	if probe.reentrant {
		return fmt.Errorf("host: worker type %q cannot be reentrant", typ)
	}
	if probe.workerTimeout < 0 {
		return fmt.Errorf("host: worker type %q: negative worker timeout", typ)
	}
	timeout := probe.workerTimeout
	if timeout == 0 {
		timeout = protocol.DefaultWorkerTimeout
	}
	wt := &workerType{nc: h.nc, subject: protocol.WorkerSubject(h.cfg.SubjectPrefix, typ), timeout: timeout}
	return h.Register(typ, func(self *Self) Actor { return &workerActor{self: self, t: wt} }, opts...)
}

// workerType is what the activations of one worker type share.
type workerType struct {
	nc      *nats.Conn
	subject string
	timeout time.Duration
}

// workerActor is one activation of a worker type.
type workerActor struct {
	self *Self
	t    *workerType
}

// Activate runs the worker's activation turn.
func (w *workerActor) Activate(ctx context.Context) error {
	_, err := w.turn(ctx, &pb.WorkerTurn{Kind: pb.TurnKind_TURN_ACTIVATE})
	return err
}

// Receive runs a call, or a reminder's firing, as a worker turn.
func (w *workerActor) Receive(ctx context.Context, c Call) ([]byte, error) {
	turn := &pb.WorkerTurn{Kind: pb.TurnKind_TURN_CALL, Method: c.Method, Payload: c.Payload, Headers: workerHeaders(c.Header)}
	if name, ok := ReminderName(c); ok {
		turn.Kind, turn.Name = pb.TurnKind_TURN_REMINDER, name
	}
	return w.turn(ctx, turn)
}

// tick runs a timer's tick as a worker turn.
func (w *workerActor) tick(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := w.turn(ctx, &pb.WorkerTurn{Kind: pb.TurnKind_TURN_TIMER, Name: name})
		return err
	}
}

// turn sends one turn to a worker and applies its answer.
func (w *workerActor) turn(ctx context.Context, turn *pb.WorkerTurn) ([]byte, error) {
	s := w.self
	turn.ActorType, turn.ActorId, turn.HostId = string(s.Type()), []byte(s.ID()), string(s.Host())
	turn.State = workerState(s)
	chain, ok := router.ChainFrom(ctx)
	if !ok {
		chain = router.Chain{ID: protocol.NewChainID(), Path: []protocol.Hop{{Type: s.Type(), ID: s.ID()}}}
	}
	turn.Chain, turn.ChainPath = chain.ID, protocol.FormatPath(chain.Path)
	timeout := w.t.timeout
	deadline, _ := ctx.Deadline()
	if !deadline.IsZero() {
		timeout = min(timeout, time.Until(deadline))
	}
	if timeout <= 0 {
		return nil, protocol.Errorf(protocol.CodeDeadlineExceeded, "no time left for a worker turn of %s", w.name())
	}
	turn.TimeoutMs = uint32((timeout + time.Millisecond - 1) / time.Millisecond)
	data, err := proto.Marshal(turn)
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "encode worker turn: %v", err)
	}
	// The turn waits: asking for Done hands the intake's reader on when the
	// turn runs on it (turnctx.go). The request's own timeout, within the
	// call's deadline, bounds the wait, with no context watcher per turn.
	_ = ctx.Done()
	msg, err := w.t.nc.RequestMsg(&nats.Msg{Subject: w.t.subject, Data: data}, timeout)
	if errors.Is(err, nats.ErrMaxPayload) {
		return nil, protocol.Errorf(protocol.CodePayloadTooLarge, "the turn of %s (payload and state, %d bytes) exceeds the server's max payload (%d); nothing ran", w.name(), len(data), w.t.nc.MaxPayload())
	}
	if err != nil {
		return nil, w.failed(deadline, err)
	}
	var ans pb.WorkerAnswer
	if err := proto.Unmarshal(msg.Data, &ans); err != nil {
		return nil, protocol.Errorf(protocol.CodeInternal, "worker for %s answered a malformed WorkerAnswer: %v", w.name(), err)
	}
	if ans.ErrorCode != pb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		code := protocol.Code(ans.ErrorCode)
		if !protocol.WorkerCode(code) {
			return nil, protocol.Errorf(protocol.CodeInternal, "worker for %s answered code %s, which only troupe itself may give: %s", w.name(), code, ans.ErrorMessage)
		}
		return nil, &protocol.Error{Code: code, AppCode: ans.AppCode, Message: ans.ErrorMessage}
	}
	if err := w.apply(ctx, &ans); err != nil {
		return nil, err
	}
	return ans.Reply, nil
}

// failed turns a request that got no answer into the turn's error.
func (w *workerActor) failed(deadline time.Time, err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return protocol.Errorf(protocol.CodeUnavailable, "no worker serves type %q (nobody subscribes to %s); nothing ran", w.self.Type(), w.t.subject)
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return protocol.Errorf(protocol.CodeDeadlineExceeded, "the deadline passed while a worker ran a turn of %s; nothing of the turn was saved", w.name())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return protocol.Errorf(protocol.CodeUnavailable, "the worker running a turn of %s gave no answer within %v (it died or hangs); nothing of the turn was saved", w.name(), w.t.timeout)
	}
	return protocol.Errorf(protocol.CodeUnavailable, "worker turn of %s: %v", w.name(), err)
}

func (w *workerActor) name() string {
	return string(w.self.Type()) + " " + protocol.EncodeID(string(w.self.ID()))
}

// apply carries out a successful answer: the state first (checked whole
// before any of it is applied), then the timers and the reminders.
func (w *workerActor) apply(ctx context.Context, ans *pb.WorkerAnswer) error {
	s := w.self
	if err := checkWorkerAnswer(ans); err != nil {
		return protocol.Errorf(protocol.CodeInternal, "worker for %s answered %v", w.name(), err)
	}
	if ans.StateChanged {
		setWorkerState(s, ans.State)
	}
	for _, t := range ans.Timers {
		if t.Cancel {
			s.StopTimer(t.Name)
			continue
		}
		err := s.SetTimer(t.Name, Timer{Due: time.Duration(t.DueMs) * time.Millisecond, Period: time.Duration(t.PeriodMs) * time.Millisecond, Tick: w.tick(t.Name)})
		if err != nil {
			return err
		}
	}
	for _, r := range ans.Reminders {
		var err error
		if r.Cancel {
			err = s.DeleteReminder(ctx, r.Name)
		} else {
			err = s.SetReminder(ctx, router.Reminder{Name: r.Name, Schedule: r.Schedule, TimeZone: r.TimeZone, Method: r.Method, Payload: r.Payload})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// workerHeaders lists the call's headers a worker sees: those that do not
// start with Troupe-, sorted by name.
func workerHeaders(h nats.Header) []*pb.WorkerHeader {
	if len(h) == 0 {
		return nil
	}
	out := make([]*pb.WorkerHeader, 0, len(h))
	for name, values := range h {
		if strings.HasPrefix(name, "Troupe-") {
			continue
		}
		out = append(out, &pb.WorkerHeader{Name: name, Values: values})
	}
	slices.SortFunc(out, func(a, b *pb.WorkerHeader) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// workerState is the actor's whole state as a worker sees it: the unnamed
// state (when not empty) under the empty name, then the named keys, sorted.
func workerState(s *Self) []*pb.StateEntry {
	keys := s.Keys()
	out := make([]*pb.StateEntry, 0, len(keys)+1)
	if st := s.State(); len(st) > 0 {
		out = append(out, &pb.StateEntry{Value: st})
	}
	for _, k := range keys {
		out = append(out, &pb.StateEntry{Name: k, Value: s.Key(k)})
	}
	return out
}

// checkWorkerAnswer checks what an answer asks for before any of it is
// applied: its state (when changed), and its timers' and reminders' names.
// A reminder's schedule is checked where it is set.
func checkWorkerAnswer(ans *pb.WorkerAnswer) error {
	if ans.StateChanged {
		if err := checkWorkerState(ans.State); err != nil {
			return err
		}
	}
	for _, t := range ans.Timers {
		if err := placement.ValidateName("timer", t.Name); err != nil {
			return err
		}
	}
	for _, r := range ans.Reminders {
		if err := placement.ValidateName("reminder", r.Name); err != nil {
			return err
		}
	}
	return nil
}

// checkWorkerState checks an answer's state: valid key names, each once.
func checkWorkerState(entries []*pb.StateEntry) error {
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if seen[e.Name] {
			return fmt.Errorf("state entry %q twice", e.Name)
		}
		seen[e.Name] = true
		if e.Name != "" {
			if err := validKeyName(e.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// setWorkerState replaces the actor's state with entries (checked).
func setWorkerState(s *Self, entries []*pb.StateEntry) {
	named := make(map[string]bool, len(entries))
	unnamed := false
	for _, e := range entries {
		if e.Name == "" {
			unnamed = true
			s.SetState(e.Value)
			continue
		}
		named[e.Name] = true
		_ = s.SetKey(e.Name, e.Value) // checked by checkWorkerState
	}
	if !unnamed && len(s.State()) > 0 {
		s.SetState(nil)
	}
	for _, k := range s.Keys() {
		if !named[k] {
			s.DeleteKey(k)
		}
	}
}
