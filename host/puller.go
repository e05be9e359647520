package host

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// The puller of a stream subscription.
//
// One host pulls each subscription: the owner of (type, troupe_sub_<name>)
// in its table. followSubs starts and stops pullers as the table changes, so
// the puller moves with the table like an actor; during a change two hosts
// may pull at once, which the actors' cursors make harmless.
//
// A puller works in sessions. A session deletes the durable consumer and
// makes it again from its ack floor + 1, so that everything not acknowledged
// is delivered again, in stream order, to this session: from its first
// sequence on, a session sees every message of every actor, in order. It
// sends each actor its messages one at a time and in that order, each only
// after the one before was answered, so an actor's cursor can never pass a
// message it has not applied: the first message above m an actor applies is
// sent, by whichever session sends it, after that session saw m answered,
// and m is answered only once applied or covered. Acknowledging after the
// answer then loses nothing: a message the server delivers again is
// covered.
//
// Backpressure: the consumer's MaxAckPending (Subscription.MaxInFlight)
// bounds the messages held. A slow actor holds its own messages only; the
// others' go on.

// followSubs runs, for every subscription, the puller while this host owns
// it in its table.
func (h *Host) followSubs() {
	type key struct {
		t    placement.ActorType
		name string
	}
	running := map[key]context.CancelFunc{}
	defer func() {
		for _, stop := range running {
			stop()
		}
	}()
	for {
		changed := h.w.Changed()
		t := h.w.Table()
		for _, at := range h.types {
			for i := range at.subs {
				k := key{at.name, at.subs[i].Name}
				mine := !h.eng.closing.Load() && h.owns(t, at.name, placement.ActorID(protocol.SubscriptionPrefix+k.name))
				stop, on := running[k]
				switch {
				case mine && !on:
					ctx, cancel := context.WithCancel(context.Background())
					running[k] = cancel
					p := h.puller(at, &at.subs[i])
					h.goLoop(func() { p.run(ctx) })
				case !mine && on:
					stop()
					delete(running, k)
				}
			}
		}
		select {
		case <-h.stop:
			return
		case <-changed:
		}
	}
}

// puller pulls one subscription's messages while its context lasts.
type puller struct {
	h   *Host
	t   *actorType
	sub *Subscription
	st  *subStats
}

// subStats are a subscription's counts on this host, for metrics and the
// admin report.
type subStats struct {
	pulling    atomic.Bool
	inFlight   atomic.Int64  // delivered to this host, not yet acknowledged
	applied    atomic.Uint64 // acknowledged after the actor's success
	terminated atomic.Uint64 // given up: no valid actor, or MaxAttempts failed turns
	retries    atomic.Uint64 // delivery tries that failed and were tried again
	sessions   atomic.Uint64 // sessions started
	// From the consumer's info, refreshed while pulling.
	pending    atomic.Uint64 // messages not yet delivered (lag)
	ackPending atomic.Uint64 // delivered, not acknowledged
}

func (h *Host) puller(t *actorType, s *Subscription) *puller {
	return &puller{h: h, t: t, sub: s, st: h.subStats(t.name, s.Name)}
}

// subStats returns the counts of a subscription, made on first use.
func (h *Host) subStats(t placement.ActorType, name string) *subStats {
	h.subsMu.Lock()
	defer h.subsMu.Unlock()
	if h.subs == nil {
		h.subs = map[string]*subStats{}
	}
	k := string(t) + "/" + name
	st := h.subs[k]
	if st == nil {
		st = &subStats{}
		h.subs[k] = st
	}
	return st
}

// sessionPause is the wait before a new session after one ended in error.
// It doubles while sessions fail at once (a stream not made yet), up to
// maxSessionPause.
const (
	sessionPause    = 250 * time.Millisecond
	maxSessionPause = 5 * time.Second
)

func (p *puller) run(ctx context.Context) {
	p.st.pulling.Store(true)
	defer p.st.pulling.Store(false)
	log := p.h.log.With("type", p.t.name, "subscription", p.sub.Name)
	log.Info("stream subscription: pulling", "stream", p.sub.Stream, "filter", p.sub.Subject)
	pause, said := sessionPause, ""
	for ctx.Err() == nil {
		began := time.Now()
		err := p.session(ctx)
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) > maxSessionPause {
			pause = sessionPause // it worked for a while
		}
		if msg := fmt.Sprint(err); msg != said {
			said = msg // once per kind of failure, not per try
			log.Warn("stream subscription: session ended; starting again", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
		pause = min(2*pause, maxSessionPause)
	}
	log.Info("stream subscription: stopped pulling")
}

// consumer deletes the subscription's durable consumer, if it exists, and
// makes it again from its ack floor + 1.
func (p *puller) consumer(ctx context.Context) (jetstream.Consumer, error) {
	stream, err := p.h.js.Stream(ctx, p.sub.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", p.sub.Stream, err)
	}
	name := protocol.SubscriptionConsumer(p.t.name, p.sub.Name)
	start := uint64(1)
	if c, err := stream.Consumer(ctx, name); err == nil {
		start = c.CachedInfo().AckFloor.Stream + 1
		if err := stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("troupe: stream subscription %s of actor type %s", p.sub.Name, p.t.name),
		FilterSubject: p.sub.Subject,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.sub.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: p.sub.MaxInFlight,
	}
	return stream.CreateOrUpdateConsumer(ctx, cfg)
}

// session is one consumer's life: it ends when ctx does or the consumer
// fails (deleted by another session, stream gone).
func (p *puller) session(ctx context.Context) error {
	cctx, cancelTry := context.WithTimeout(ctx, startTryTimeout)
	cons, err := p.consumer(cctx)
	cancelTry()
	if err != nil {
		return err
	}
	p.st.sessions.Add(1)
	it, err := cons.Messages(jetstream.PullMaxMessages(min(p.sub.MaxInFlight, 256)))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s := &session{p: p, ctx: ctx, end: cancel, created: cons.CachedInfo().Created,
		actors: map[placement.ActorID]*actorLine{}, held: map[uint64]bool{}}
	defer func() {
		cancel(nil)
		s.wg.Wait()
	}()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	s.wg.Add(1)
	go s.watchLag(cons)
	for {
		msg, err := it.Next()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return err
		}
		s.take(msg)
	}
}

var (
	// errReconnected ends a session after the connection was lost.
	errReconnected = errors.New("reconnected to NATS; acknowledgements may be lost")
	// errGap ends a session that missed a delivery of its consumer. A
	// session makes its consumer, so its deliveries are numbered 1, 2, 3…
	// without a hole; a hole means some went elsewhere — to a puller that
	// still pulls from the same name during a table change after deleting
	// and making the consumer again — and those messages would wait out
	// their ack wait while this session sent their actors later ones,
	// which would pass them. A new session has them all again, in order.
	errGap = errors.New("a consumer delivery went elsewhere")
	// errReplaced ends a session whose consumer another session replaced.
	errReplaced = errors.New("the consumer was made again by another session")
)

// session delivers the messages of one consumer session.
type session struct {
	p   *puller
	ctx context.Context
	end context.CancelCauseFunc
	wg  sync.WaitGroup

	delivered uint64    // the consumer sequence of the last delivery taken (the session loop's)
	created   time.Time // when the session made its consumer

	mu     sync.Mutex
	actors map[placement.ActorID]*actorLine // actors with messages held
	held   map[uint64]bool                  // stream sequences held
}

// actorLine is one actor's messages, in stream order; one goroutine sends
// them while it has any.
type actorLine struct {
	msgs []jetstream.Msg
}

// take routes a message to its actor's line. A delivery that does not
// follow the session's last one ends the session (see errGap).
func (s *session) take(msg jetstream.Msg) {
	if s.ctx.Err() != nil {
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		s.end(fmt.Errorf("%w: no metadata: %v", errGap, err))
		return
	}
	if c := meta.Sequence.Consumer; c != s.delivered+1 {
		s.end(fmt.Errorf("%w: delivery %d after %d", errGap, c, s.delivered))
		return
	}
	s.delivered++
	seq := meta.Sequence.Stream
	id, err := s.p.actorOf(msg)
	if err != nil {
		s.p.term(msg, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[seq] {
		return // delivered again while held (its ack wait ran out)
	}
	s.held[seq] = true
	s.p.st.inFlight.Add(1)
	line := s.actors[id]
	if line != nil {
		line.msgs = append(line.msgs, msg)
		return
	}
	line = &actorLine{msgs: []jetstream.Msg{msg}}
	s.actors[id] = line
	s.wg.Add(1)
	go s.send(id, line)
}

// send delivers an actor's messages one at a time until its line is empty.
func (s *session) send(id placement.ActorID, line *actorLine) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(line.msgs) == 0 || s.ctx.Err() != nil {
			// Those left are not acknowledged: the next session has
			// them again.
			for _, m := range line.msgs {
				meta, _ := m.Metadata()
				delete(s.held, meta.Sequence.Stream)
				s.p.st.inFlight.Add(-1)
			}
			delete(s.actors, id)
			s.mu.Unlock()
			return
		}
		msg := line.msgs[0]
		line.msgs = line.msgs[1:]
		s.mu.Unlock()

		s.p.deliver(s.ctx, id, msg)
		meta, _ := msg.Metadata()
		s.mu.Lock()
		delete(s.held, meta.Sequence.Stream)
		s.mu.Unlock()
		s.p.st.inFlight.Add(-1)
	}
}

// actorOf is the actor a message maps to.
func (p *puller) actorOf(msg jetstream.Msg) (placement.ActorID, error) {
	var raw string
	if p.sub.IDHeader != "" {
		raw = msg.Headers().Get(p.sub.IDHeader)
		if raw == "" {
			return "", fmt.Errorf("no header %s for the actor id", p.sub.IDHeader)
		}
	} else {
		toks := strings.Split(msg.Subject(), ".")
		if p.sub.IDToken >= len(toks) {
			return "", fmt.Errorf("subject %q has no token %d for the actor id", msg.Subject(), p.sub.IDToken)
		}
		raw = toks[p.sub.IDToken]
	}
	id := placement.ActorID(raw)
	if e := checkIdentity(id, p.sub.Method); e != nil {
		return "", e
	}
	return id, nil
}

// term terminates a message that cannot be delivered.
func (p *puller) term(msg jetstream.Msg, why string) {
	p.h.log.Warn("stream message terminated", "type", p.t.name, "subscription", p.sub.Name, "subject", msg.Subject(), "why", why)
	_ = msg.TermWithReason(why)
	p.st.terminated.Add(1)
}

// deliver sends a message to its actor until the actor has it (then acks)
// or has failed it MaxAttempts times (then terminates). It returns false if
// ctx ended first.
func (p *puller) deliver(ctx context.Context, id placement.ActorID, msg jetstream.Msg) bool {
	meta, _ := msg.Metadata()
	seq := strconv.FormatUint(meta.Sequence.Stream, 10)
	opts := []router.CallOption{
		// The stream cursor saved with the state dedupes a redelivery
		// (streams.go); a call id would only add a record per message to
		// every save.
		router.WithoutCallID(),
		router.WithHeader(protocol.HeaderStream, p.sub.Name),
		router.WithHeader(protocol.HeaderStreamSeq, seq),
		router.WithHeader(protocol.HeaderStreamSubject, msg.Subject()),
	}
	for k, vs := range msg.Headers() {
		if len(vs) > 0 && !strings.HasPrefix(k, "Nats-") && !strings.HasPrefix(k, "Troupe-") {
			opts = append(opts, router.WithHeader(k, vs[0]))
		}
	}
	failed := 0
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		cctx, cancel := context.WithTimeout(ctx, p.h.cfg.CallTimeout)
		done, err := p.callOwn(cctx, id, msg, seq)
		if !done {
			_, err = p.h.router.Call(cctx, p.t.name, id, p.sub.Method, msg.Data(), opts...)
		}
		cancel()
		switch {
		case err == nil:
			_ = msg.Ack()
			p.st.applied.Add(1)
			return true
		case ctx.Err() != nil:
			return false
		case turnFailed(err):
			failed++
			if failed >= p.sub.MaxAttempts {
				p.term(msg, fmt.Sprintf("%d tries failed, the last with %v", failed, err))
				return true
			}
		}
		p.st.retries.Add(1)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}

// turnFailed reports whether a delivery failed because of the actor or the
// message (counted against MaxAttempts) rather than on the way (tried again
// without limit).
func turnFailed(err error) bool {
	switch protocol.AsError(err).Code {
	case protocol.CodeApplication, protocol.CodeInvalidArgument, protocol.CodeUnknownMethod,
		protocol.CodeInvalidMethod, protocol.CodeInvalidID, protocol.CodeUnknownType,
		protocol.CodeInternal, protocol.CodePayloadTooLarge, protocol.CodeStateTooLarge,
		protocol.CodeBadRequest, protocol.CodeWouldDeadlock, protocol.CodeChainTooDeep:
		return true
	}
	return false
}

// lagEvery is how often a puller reads its consumer's pending counts.
const lagEvery = time.Second

// watchLag keeps the subscription's pending counts fresh while the session
// lasts, and ends the session when the connection has been lost since it
// began: acknowledgements sent then may be lost, and the messages would
// wait out their ack wait, while a new session has them at once.
func (s *session) watchLag(cons jetstream.Consumer) {
	defer s.wg.Done()
	reconnects := s.p.h.nc.Stats().Reconnects
	for {
		if s.p.h.nc.Stats().Reconnects != reconnects {
			s.end(errReconnected)
			return
		}
		ctx, cancel := context.WithTimeout(s.ctx, lagEvery)
		info, err := cons.Info(ctx)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) || err == nil && !info.Created.Equal(s.created):
			s.end(errReplaced)
			return
		case err == nil:
			s.p.st.pending.Store(info.NumPending)
			s.p.st.ackPending.Store(uint64(info.NumAckPending))
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(lagEvery):
		}
	}
}

// subReports describes the subscriptions of the host's types (of typ, if
// set), sorted by type and name.
func (h *Host) subReports(typ string) []protocol.SubscriptionReport {
	var out []protocol.SubscriptionReport
	for _, name := range h.types.names() {
		if typ != "" && name != typ {
			continue
		}
		for _, s := range h.types[placement.ActorType(name)].subs {
			st := h.subStats(placement.ActorType(name), s.Name)
			r := protocol.SubscriptionReport{
				Type: name, Name: s.Name, Stream: s.Stream, Subject: s.Subject,
				Pulling: st.pulling.Load(), InFlight: st.inFlight.Load(),
				Applied: st.applied.Load(), Terminated: st.terminated.Load(),
			}
			if r.Pulling {
				r.Pending, r.AckPending = st.pending.Load(), st.ackPending.Load()
			}
			out = append(out, r)
		}
	}
	return out
}

// callOwn delivers a message to an actor this host owns at its table
// straight into the mailbox, as a request on the host's subject with the
// headers the router would send, answered in the process: one NATS request
// and reply fewer per message. done is false when the host does not own
// the actor, or the answer says another host may run the call now (MOVED,
// UNAVAILABLE, STATE_CONFLICT): the router, which waits for the table and
// retries, takes it from there. Like a reminder firing's (firing.go).
func (p *puller) callOwn(ctx context.Context, id placement.ActorID, msg jetstream.Msg, seq string) (done bool, err error) {
	h := p.h
	table := h.w.Table()
	if !h.owns(table, p.t.name, id) {
		return false, nil
	}
	deadline, _ := ctx.Deadline()
	hdr := nats.Header{}
	for k, vs := range msg.Headers() {
		if len(vs) > 0 && !strings.HasPrefix(k, "Nats-") && !strings.HasPrefix(k, "Troupe-") {
			hdr[k] = vs[:1:1]
		}
	}
	hdr[protocol.HeaderType] = []string{string(p.t.name)}
	hdr[protocol.HeaderID] = []string{protocol.EncodeID(string(id))}
	hdr[protocol.HeaderMethod] = []string{p.sub.Method}
	hdr[protocol.HeaderGeneration] = []string{strconv.FormatUint(table.Generation(), 10)}
	hdr[protocol.HeaderTimeout] = []string{strconv.FormatInt(time.Until(deadline).Milliseconds()+1, 10)}
	hdr[protocol.HeaderStream] = []string{p.sub.Name}
	hdr[protocol.HeaderStreamSeq] = []string{seq}
	hdr[protocol.HeaderStreamSubject] = []string{msg.Subject()}
	answer := make(chan *nats.Msg, 1)
	h.admit(&envelope{
		kind: kindCall, msg: &nats.Msg{Subject: h.subject, Header: hdr, Data: msg.Data()},
		t: p.t, id: id, method: p.sub.Method, gen: table.Generation(), deadline: deadline, local: answer,
	})
	select {
	case reply := <-answer:
		e := protocol.DecodeError(reply.Header, reply.Data)
		if e == nil {
			return true, nil
		}
		switch e.Code {
		case protocol.CodeMoved, protocol.CodeUnavailable, protocol.CodeStateConflict:
			return false, nil
		}
		return true, e
	case <-ctx.Done():
		return true, protocol.Errorf(protocol.CodeDeadlineExceeded, "%s %s.%s: %w", p.t.name, protocol.EncodeID(string(id)), p.sub.Method, ctx.Err())
	}
}
