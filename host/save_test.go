package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/protocol"
)

// gate is a saveGate the test opens and closes.
type gate struct{ open bool }

func (g *gate) beginSave(epoch) bool { return g.open }
func (g *gate) endSave()             {}
func (g *gate) errFenced() *protocol.Error {
	return protocol.Errorf(protocol.CodeUnavailable, "fenced")
}

// newStore returns a state store on a bucket of its own server, behind g.
func newStore(t *testing.T, g saveGate, timeout time.Duration) *stateStore {
	t.Helper()
	return newStoreOn(t, natstest.Connect(t, natstest.Server(t)), g, timeout)
}

// newStoreOn is newStore over nc.
func newStoreOn(t *testing.T, nc *nats.Conn, g saveGate, timeout time.Duration) *stateStore {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := ensureStateBucket(ctx, js, Config{StateBucket: DefaultStateBucket, StateReplicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &stateStore{nc: nc, js: js, kv: kv, gate: g, timeout: timeout}
}

func TestStateStoreComparesAndSets(t *testing.T) {
	s := newStore(t, &gate{open: true}, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := StateKey("counter", "x")
	if e, err := s.load(ctx, key); err != nil || e.rev != 0 || e.data != nil {
		t.Fatalf("load of a key never written = %+v, %v; want the zero entry", e, err)
	}
	first, err := s.save(0, key, []byte("1"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := nats.Header{"Troupe-State": []string{"keys"}}
	second, err := s.save(0, key, []byte("2"), hdr, first)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.load(ctx, key); err != nil || e.rev != second || string(e.data) != "2" || e.hdr.Get("Troupe-State") != "keys" || e.deleted {
		t.Fatalf("load = %+v, %v; want revision %d, \"2\" and its header", e, err, second)
	}
	_, err = s.save(0, key, []byte("9"), nil, first)
	if !errors.Is(err, protocol.ErrStateConflict) {
		t.Fatalf("a save at a stale revision: %v; want STATE_CONFLICT", err)
	}
	if _, err := s.save(0, key, []byte("9"), nil, 0); !errors.Is(err, protocol.ErrStateConflict) {
		t.Fatalf("a first save over an existing key: %v; want STATE_CONFLICT", err)
	}
	if err := s.kv.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if e, err := s.load(ctx, key); err != nil || !e.deleted || e.rev <= second {
		t.Fatalf("load after a delete = %+v, %v; want a deleted entry after %d", e, err, second)
	}
}

func TestStateStoreLandedRecognisesOnlyOurOwnNewerWrite(t *testing.T) {
	s := newStore(t, &gate{open: true}, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := StateKey("counter", "x")
	first, err := s.save(0, key, []byte("1"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.save(0, key, []byte("2"), nil, first)
	if err != nil {
		t.Fatal(err)
	}
	subject := s.subject(key)
	if seq, ok, err := s.landed(ctx, subject, []byte("2"), first); err != nil || !ok || seq != second {
		t.Fatalf("landed(our write) = %d, %v, %v; want %d, true", seq, ok, err, second)
	}
	if _, ok, err := s.landed(ctx, subject, []byte("3"), first); err != nil || ok {
		t.Fatalf("someone else's bytes were taken for our write (err %v)", err)
	}
	if _, ok, err := s.landed(ctx, subject, []byte("2"), second); err != nil || ok {
		t.Fatalf("a write at the expected revision itself was taken as newer (err %v)", err)
	}
}

func TestStateStoreSendsNothingPastTheGate(t *testing.T) {
	g := &gate{}
	s := newStore(t, g, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := StateKey("counter", "x")
	if _, err := s.save(0, key, []byte("1"), nil, 0); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("a fenced save: %v; want UNAVAILABLE", err)
	}
	if e, err := s.load(ctx, key); err != nil || e.rev != 0 {
		t.Fatalf("a fenced save was stored: %+v, %v", e, err)
	}
}

// TestStateStoreNeverGuessesAnUnansweredSave: a save no stream answers
// before the timeout ends in OUTCOME_UNKNOWN, never in a conflict the caller
// would retry.
func TestStateStoreNeverGuessesAnUnansweredSave(t *testing.T) {
	s := newStore(t, &gate{open: true}, 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.js.DeleteStream(ctx, protocol.KVStream(s.kv.Bucket())); err != nil {
		t.Fatal(err)
	}
	_, err := s.save(0, StateKey("counter", "x"), []byte("1"), nil, 0)
	if !errors.Is(err, protocol.ErrOutcomeUnknown) {
		t.Fatalf("a save nobody answered: %v; want OUTCOME_UNKNOWN", err)
	}
}

// A state load whose answer is lost (the link drops right after the direct
// get went out, as in a blip) is asked again once the host reconnects,
// rather than holding the activation, and every call queued for it, until
// the first call's deadline.
func TestStateStoreLoadAsksAgainAfterALostAnswer(t *testing.T) {
	proxy, nc := natstest.ConnectProxied(t, natstest.Server(t))
	store := newStoreOn(t, nc, &gate{open: true}, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := StateKey("counter", "x")
	if _, err := store.save(0, key, []byte("1"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := store.load(ctx, key); err != nil { // opens the stream
		t.Fatal(err)
	}

	cut := proxy.CutOn("$JS.API.DIRECT.GET.", 100*time.Millisecond)
	e, err := store.load(ctx, key)
	if err != nil || string(e.data) != "1" {
		t.Fatalf("load after a lost answer: %q, %v; want \"1\" before the 10 s deadline", e.data, err)
	}
	select {
	case <-cut:
	default:
		t.Fatal("the link was never cut during the load")
	}
}
