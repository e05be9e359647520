package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

func ensureStateBucket(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.KeyValue, error) {
	replicas := cfg.StateReplicas
	if replicas == 0 {
		var err error
		if replicas, err = autoStateReplicas(ctx, js, cfg); err != nil {
			return nil, fmt.Errorf("host: state bucket %q: %w", cfg.StateBucket, err)
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.StateBucket,
		Description: "troupe actor state: one key per actor, written with compare-and-set",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("host: state bucket %q: %w", cfg.StateBucket, err)
	}
	return kv, nil
}

// autoStateReplicas is the state bucket's replica count when Config leaves
// it at 0: an existing bucket keeps its own, and a new one takes the
// membership bucket's, which placement.EnsureBucket (called just before)
// chose from what the JetStream cluster can place: 3 on a cluster of 3 or
// more JetStream servers, else 1.
func autoStateReplicas(ctx context.Context, js jetstream.JetStream, cfg Config) (int, error) {
	s, err := js.Stream(ctx, protocol.KVStream(cfg.StateBucket))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		members := cfg.Membership.Name
		if members == "" {
			members = placement.DefaultBucket
		}
		s, err = js.Stream(ctx, protocol.KVStream(members))
	}
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().Config.Replicas, nil
}

// StateKey is protocol.StateKey: the state-bucket key of an actor,
// <type>.<escaped id>, where the id keeps [A-Za-z0-9_-] and every other byte
// becomes =XX (upper-case hex). The escaping is one-to-one, so no two actors
// share a key.
func StateKey(typ placement.ActorType, id placement.ActorID) string {
	return protocol.StateKey(typ, id)
}

// saveAttempt bounds one try of a state save. A save caught by a stream
// leader change gets no answer; rather than wait out the whole SaveTimeout,
// the host asks again after this long.
const saveAttempt = 500 * time.Millisecond

// saveRetryPause is the wait before trying again a save refused at once.
const saveRetryPause = 20 * time.Millisecond

// stateStore reads and writes actors' state entries in the state bucket,
// one entry per actor, written with compare-and-set. Saves pass the fence.
// Its methods are safe to call from any goroutine.
type stateStore struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	gate    saveGate
	timeout time.Duration // bounds one save, every try included (Config.SaveTimeout)

	mu     sync.Mutex
	stream jetstream.Stream // the bucket's stream, opened on first load
}

// saveGate lets a save try be sent, or not: the host's fence.
type saveGate interface {
	// beginSave reports whether a try of an activation of epoch e may be
	// sent; if so, endSave follows once it is answered or abandoned.
	beginSave(e epoch) bool
	endSave()
	// errFenced is the error of a save the gate refused.
	errFenced() *protocol.Error
}

// stateEntry is an actor's stored state entry.
type stateEntry struct {
	rev     uint64 // compare-and-set against this when saving; 0 when none
	data    []byte
	hdr     nats.Header
	deleted bool // a delete or purge marker: no state, but rev counts
}

// load reads the latest entry of key, with its headers (the KV API returns
// values only): a direct get, like the KV API's. A key never written gives
// the zero stateEntry. A read that gets no answer is asked again (ask), so a
// reply lost with a dropped connection costs one try, not the caller's
// deadline.
func (s *stateStore) load(ctx context.Context, key string) (stateEntry, error) {
	s.mu.Lock()
	st := s.stream
	s.mu.Unlock()
	if st == nil {
		var err error
		st, err = ask(ctx, func(ctx context.Context) (jetstream.Stream, error) {
			return s.js.Stream(ctx, protocol.KVStream(s.kv.Bucket()))
		})
		if err != nil {
			return stateEntry{}, err
		}
		s.mu.Lock()
		s.stream = st
		s.mu.Unlock()
	}
	msg, err := ask(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return st.GetLastMsgForSubject(ctx, s.subject(key))
	})
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return stateEntry{}, nil
	case err != nil:
		return stateEntry{}, err
	}
	e := stateEntry{rev: msg.Sequence, data: msg.Data, hdr: msg.Header}
	e.deleted = msg.Header.Get(protocol.HeaderKVOperation) != ""
	return e, nil
}

func (s *stateStore) subject(key string) string { return protocol.KVSubject(s.kv.Bucket(), key) }

// maxPayload is the largest message the server takes, 0 when unknown.
func (s *stateStore) maxPayload() int64 { return s.nc.MaxPayload() }

// save writes state with compare-and-set on rev (0: the key must not
// exist) and returns the new revision. A stale write is refused with
// CodeStateConflict.
//
// A try that gets no answer may still have landed, so the next try can meet
// its own earlier write as a conflict. A conflict after an unanswered try is
// therefore checked against the stream leader: if the latest state is ours,
// byte for byte, at a newer revision, the save succeeded. Only when no try
// is answered before the store's timeout is the outcome reported as unknown.
func (s *stateStore) save(e epoch, key string, state []byte, hdr nats.Header, rev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	subject := s.subject(key)
	unanswered := false
	for {
		sent := time.Now()
		ack, err := s.try(ctx, e, subject, state, hdr, rev)
		switch {
		case err == nil:
			return ack.Sequence, nil
		case errors.Is(err, errFencedSave) && !unanswered:
			return 0, s.gate.errFenced()
		case jsutil.NotSent(err) && !unanswered:
			return 0, protocol.Errorf(protocol.CodeUnavailable, "saving the state of %s: not connected to NATS; the turn was discarded: %w", key, err)
		case jsutil.IsConflict(err):
			if unanswered {
				seq, ours, err := s.landed(ctx, subject, state, rev)
				switch {
				case err != nil:
					// Reporting a conflict would let the caller retry a
					// change that may have been stored.
					return 0, protocol.Errorf(protocol.CodeOutcomeUnknown, "saving the state of %s: a try got no answer and the stream could not say whether it landed: %w", key, err)
				case ours:
					return seq, nil
				}
			}
			return 0, protocol.Errorf(protocol.CodeStateConflict, "state of %s changed under this activation; the turn was discarded", key)
		case errors.Is(err, nats.ErrMaxPayload) || isMessageTooLarge(err):
			return 0, protocol.Errorf(protocol.CodeStateTooLarge, "state of %d bytes exceeds the state bucket's limit; the turn was discarded", len(state))
		case ctx.Err() == nil && noAnswer(err):
			unanswered = true
			if time.Since(sent) < saveAttempt/2 {
				// Refused at once (no responders while a stream leader
				// is elected): pause rather than spin.
				select {
				case <-ctx.Done():
				case <-time.After(saveRetryPause):
				}
			}
			continue
		}
		return 0, protocol.Errorf(protocol.CodeOutcomeUnknown, "saving the state of %s got no answer; the turn may or may not have taken effect: %w", key, err)
	}
}

// ask runs read, a read of the store, bounding each try by saveAttempt,
// and asks again while a try gets no answer or finds the connection down,
// until ctx ends. A reply lost when the connection dropped (the request
// went out, the answer did not come back) would otherwise hold the read
// until ctx's deadline, which for an activation's load is its first call's.
// Reads change nothing, so asking again is safe.
func ask[T any](ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	for {
		sent := time.Now()
		tctx, cancel := context.WithTimeout(ctx, saveAttempt)
		v, err := read(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || !noAnswer(err) && !jsutil.NotSent(err) {
			return v, err
		}
		if time.Since(sent) < saveAttempt/2 {
			// Refused at once (not connected, no responders while a
			// stream leader is elected): pause rather than spin.
			select {
			case <-ctx.Done():
				return v, err
			case <-time.After(saveRetryPause):
			}
		}
	}
}

// errFencedSave is the error of a save the fence kept from being sent.
var errFencedSave = errors.New("host: lease not valid; save not sent")

// try sends one try of a save, if the fence allows it. The fence counts
// the tries in flight, so that a host giving up its lease can wait for them.
func (s *stateStore) try(ctx context.Context, e epoch, subject string, state []byte, hdr nats.Header, rev uint64) (*jetstream.PubAck, error) {
	if !s.gate.beginSave(e) {
		return nil, errFencedSave
	}
	defer s.gate.endSave()
	ctx, cancel := context.WithTimeout(ctx, saveAttempt)
	defer cancel()
	return s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: state, Header: hdr}, jetstream.WithExpectLastSequencePerSubject(rev))
}

// noAnswer reports whether a publish failed without a word from the
// stream: it may or may not have been stored.
func noAnswer(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// landed reports whether the latest message on subject, as the stream
// leader has it, is state at a revision after rev. It asks until the stream
// answers or ctx ends; err is set when it never learned.
func (s *stateStore) landed(ctx context.Context, subject string, state []byte, rev uint64) (seq uint64, ours bool, err error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": subject})
	for {
		var resp *nats.Msg
		tctx, cancel := context.WithTimeout(ctx, saveAttempt)
		resp, err = s.nc.RequestWithContext(tctx, protocol.StreamMsgGetSubject(protocol.KVStream(s.kv.Bucket())), req)
		cancel()
		if err == nil {
			var got struct {
				Message *struct {
					Seq  uint64 `json:"seq"`
					Data []byte `json:"data"`
				} `json:"message"`
			}
			if err = json.Unmarshal(resp.Data, &got); err == nil && got.Message != nil {
				m := got.Message
				return m.Seq, m.Seq > rev && bytes.Equal(m.Data, state), nil
			}
			if err == nil {
				err = fmt.Errorf("no message in the answer: %s", resp.Data)
			}
		}
		select {
		case <-ctx.Done():
			return 0, false, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isMessageTooLarge(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}
