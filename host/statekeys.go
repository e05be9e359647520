package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Named state keys.
//
// An actor may keep several named keys besides (or instead of) its unnamed
// state. They are read and written within a turn and saved together at its
// end, in the actor's one entry of the state bucket, with the same
// compare-and-set on its revision: the keys of one actor change together
// or not at all, with no extra round trip.
//
// We measured the other layout JetStream allows, one entry per key saved
// with an atomic batch publish (BenchmarkStateKeysAB in bench/, numbers in
// docs/decisions.md): a turn that changes one 1 KiB key of 16 saves up to
// 4× more often that way, but a turn that changes two or more keys is
// 250–1,250× slower (the server stages each atomic batch on a file-backed
// R1 stream in a file store of its own), and loading needs a multi-subject
// read. One value keeps the common case fast and the guarantee simple.
//
// The entry is the unnamed state's bytes alone for an actor that never set
// a named key, exactly as before named keys existed, and a pb.ActorState
// marked with the header Troupe-State: keys otherwise (PROTOCOL.md, "State
// bucket").

// MaxKeyName is protocol.MaxStateKeyName: the longest state key name, in
// bytes.
const MaxKeyName = protocol.MaxStateKeyName

// ErrInvalidKey is returned for a state key name that is empty, too long or
// not UTF-8.
var ErrInvalidKey = errors.New("host: invalid state key name")

func validKeyName(name string) error {
	if name == "" || len(name) > MaxKeyName || !utf8.ValidString(name) {
		return fmt.Errorf("%w %q: want 1–%d bytes of UTF-8", ErrInvalidKey, name, MaxKeyName)
	}
	return nil
}

// Key is the value of the named state key, or nil when the actor has none.
// The bytes must not be modified.
func (s *Self) Key(name string) []byte { return s.a.keys()[name] }

// SetKey sets a named state key. It is saved with the rest of the actor's
// state at the end of the turn, before the reply. The host keeps value; do
// not modify it after.
func (s *Self) SetKey(name string, value []byte) error {
	if err := validKeyName(name); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	a := s.a
	keys := a.writeKeys()
	if keys == nil {
		keys = make(map[string][]byte)
		a.setKeys(keys)
	}
	keys[name] = value
	a.markChanged()
	return nil
}

// DeleteKey removes a named state key, if the actor has it.
func (s *Self) DeleteKey(name string) {
	a := s.a
	if _, ok := a.keys()[name]; ok {
		delete(a.writeKeys(), name)
		a.markChanged()
	}
}

// writeKeys returns the keys, ready for a write: a map handed to the saver
// (group.go) is copied first.
func (a *activation) writeKeys() map[string][]byte {
	if a.keysShared {
		a.keysShared = false
		a.setKeys(maps.Clone(a.keys()))
	}
	return a.keys()
}

// Keys lists the actor's named state keys, sorted.
func (s *Self) Keys() []string {
	keys := s.a.keys()
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// GetKey decodes the named state key with codec. ok is false, and v the
// zero value, when the actor has no such key.
func GetKey[T any](s *Self, name string, codec router.Codec) (v T, ok bool, err error) {
	b, ok := s.a.keys()[name]
	if !ok {
		return v, false, nil
	}
	if err := codec.Unmarshal(b, &v); err != nil {
		return v, true, fmt.Errorf("state key %q: %w", name, err)
	}
	return v, true, nil
}

// SetKeyOf encodes v with codec and sets it as the named state key.
func SetKeyOf[T any](s *Self, name string, codec router.Codec, v T) error {
	b, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("state key %q: %w", name, err)
	}
	return s.SetKey(name, b)
}

// load reads the actor's state entry: its unnamed state, its named keys
// and the revision to compare against when saving.
func (a *activation) load(ctx context.Context) error {
	msg, err := a.e.rt.load(ctx, StateKey(a.t.name, a.id))
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "loading state: %w", err)
	}
	a.rev = msg.rev
	state, keys, calls, streams, err := msg.decodeAll()
	if err != nil {
		return protocol.Errorf(protocol.CodeInternal, "state of %s: %v", StateKey(a.t.name, a.id), err)
	}
	a.state = state
	a.setKeys(keys)
	if w := loadWindow(calls, a.t.window, a.e.clock.Now()); w != nil || a.window() != nil {
		a.extra().calls = w
	}
	a.setCursors(streams)
	return nil
}

// decode reads an entry's unnamed state and named keys (nil if it never
// had any). A delete or purge marker holds neither.
func (e stateEntry) decode() (state []byte, keys map[string][]byte, err error) {
	state, keys, _, _, err = e.decodeAll()
	return state, keys, err
}

// decodeAll is decode, with the recorded calls (calls.go) and the stream
// cursors (streams.go).
func (e stateEntry) decodeAll() (state []byte, keys map[string][]byte, calls []*callRecord, streams cursors, err error) {
	switch {
	case e.rev == 0 || e.deleted:
		return nil, nil, nil, nil, nil
	case e.hdr.Get(protocol.HeaderStateFormat) != protocol.StateFormatKeys:
		return e.data, nil, nil, nil, nil
	}
	var st pb.ActorState
	if err := proto.Unmarshal(e.data, &st); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("named keys do not decode: %w", err)
	}
	keys = make(map[string][]byte, len(st.Entries))
	for _, en := range st.Entries {
		if en.Name == "" {
			state = en.Value
			continue
		}
		keys[en.Name] = en.Value
	}
	return state, keys, st.Calls, decodeCursors(st.Streams), nil
}

// encodeState is what save writes: the unnamed state alone when the actor
// has never had named keys, recorded calls nor consumed a stream, else every
// key, the recorded calls and every stream cursor in a pb.ActorState. It
// refuses state that cannot fit in one message with CodeStateTooLarge,
// naming the largest keys.
func (a *activation) encodeState(state []byte, keys map[string][]byte, calls []byte, streams cursors) ([]byte, nats.Header, error) {
	value, hdr := state, nats.Header(nil)
	if keys != nil || calls != nil || streams != nil {
		st := &pb.ActorState{Streams: streams.encode()}
		if state != nil {
			st.Entries = append(st.Entries, &pb.StateEntry{Value: state})
		}
		for _, name := range slices.Sorted(maps.Keys(keys)) {
			st.Entries = append(st.Entries, &pb.StateEntry{Name: name, Value: keys[name]})
		}
		var err error
		// The recorded calls follow, encoded already (calls.go): fields of
		// a message may be concatenated in any order.
		if value, err = (proto.MarshalOptions{}).MarshalAppend(make([]byte, 0, proto.Size(st)+len(calls)), st); err != nil {
			return nil, nil, protocol.Errorf(protocol.CodeInternal, "encoding state keys: %v", err)
		}
		value = append(value, calls...)
		hdr = nats.Header{protocol.HeaderStateFormat: []string{protocol.StateFormatKeys}}
	}
	if max := a.e.rt.maxPayload(); max > 0 && int64(len(value))+stateOverhead > max {
		return nil, nil, protocol.Errorf(protocol.CodeStateTooLarge,
			"state of %s is %d bytes%s; one actor's state must fit in the server's max payload of %d bytes; the turn was discarded",
			StateKey(a.t.name, a.id), len(value), largestKeys(state, keys), max)
	}
	return value, hdr, nil
}

// stateOverhead is room for the subject and headers of a state save.
const stateOverhead = 512

// largestKeys describes the largest parts of the state, for an error.
func largestKeys(state []byte, keys map[string][]byte) string {
	type part struct {
		name string
		size int
	}
	parts := []part{{"(unnamed)", len(state)}}
	for n, v := range keys {
		parts = append(parts, part{n, len(v)})
	}
	slices.SortFunc(parts, func(x, y part) int { return y.size - x.size })
	var b strings.Builder
	b.WriteString(" (largest: ")
	for i, p := range parts[:min(3, len(parts))] {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %d bytes", p.name, p.size)
	}
	b.WriteString(")")
	return b.String()
}
