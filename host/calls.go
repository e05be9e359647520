package host

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// Idempotent calls.
//
// A call may carry an id (protocol.HeaderCallID, or the sixth field of
// protocol.HeaderCall); the Go router gives every logical call one. When a
// turn of a stateful actor changes the state, the host records the call's
// id and reply in the actor's state entry, saved in the same
// compare-and-set write as the state itself (with group commit, every turn
// a save covers has its record in that save). So the store holds a change
// exactly when it holds the record of the call that made it. A call whose id
// the window holds is answered with the recorded reply without running the
// turn; it takes the mailbox's turn like any call, so a repeat that arrives
// while the first is still running waits behind it, and one that arrives
// while the first's save is in flight has its reply held by the output gate
// until that save is acknowledged (group.go), exactly like a read-only turn.
// A new activation (after a crash, a failover, idle deactivation) reads the
// window with the state.
//
// Only turns that changed the state are saved in the window: a turn that
// changed nothing is, on a new activation, simply run again, which has the
// same effect. A turn that failed changed nothing and is not recorded.
// Types declared with NoState keep no window: every attempt runs. Types
// whose saved window is off keep only the memory tier: a repeat runs again
// once the activation that ran the first attempt has ended.
//
// The window is bounded per type (CallWindow): by count, by age and by the
// bytes of its records, oldest dropped first. A repeat that comes after its
// record was dropped runs again, so a caller must stop retrying well within
// the window's age (the Go router stops at the call's deadline).
//
// Beside the saved window each activation keeps the replies of its most
// recent calls in memory (MemoryWindowCalls, MemoryWindowAge): the recorded
// ones, so that a busy actor, whose saved window turns over within a second,
// still knows a call its caller retries after a lost reply, and the
// read-only ones, so that a repeat of a read-only call while the first is
// held by the output gate gets the same reply. The records read with the
// state on activation enter it too, so that a new activation's own calls do
// not push them out of reach before the callers whose replies the old one
// lost have retried. The memory tier ends with the activation; the saved
// window does not.

// Defaults of CallWindow.
const (
	DefaultCallWindowCalls = 128
	DefaultCallWindowAge   = 10 * time.Minute
	DefaultCallWindowBytes = 64 << 10
)

// CallWindow bounds the calls an actor of the type remembers for
// idempotency: at most calls records, none older than age, and at most bytes
// of ids and replies in all; oldest dropped first. Zero for any of them
// keeps its default (128 calls, 10 minutes, 64 KiB). The records are saved
// with the state, so every save of a busy actor writes them too: a smaller
// window costs less per save. A negative calls value turns the window off
// (no call of the type is deduplicated).
func CallWindow(calls int, age time.Duration, bytes int) TypeOption {
	return typeOptionFunc(func(t *actorType) {
		if calls != 0 {
			t.window.calls = calls
		}
		if age != 0 {
			t.window.age = age
		}
		if bytes != 0 {
			t.window.bytes = bytes
		}
	})
}

// The in-memory tier of an activation's call window: its most recent calls,
// at most this many and none older than this. The age outlasts the retries
// of a call with any usual deadline: the router's attempts wait 1, 2, 4, 8,
// 16 s, so a repeat can come that long after the first attempt ran.
const (
	MemoryWindowCalls = 1024
	MemoryWindowAge   = time.Minute
)

// windowLimits are a type's CallWindow.
type windowLimits struct {
	calls int
	age   time.Duration
	bytes int
}

var defaultWindow = windowLimits{calls: DefaultCallWindowCalls, age: DefaultCallWindowAge, bytes: DefaultCallWindowBytes}

// callRecord is one recorded call: its id and the reply its caller got.
type callRecord = pb.CallRecord

// callWindow is an activation's recent recorded calls, oldest first. It is
// owned by the goroutine running the activation's turns.
//
// It keeps the saved records encoded too, as the ActorState.calls field
// they make (wire): each record is encoded once, when it is recorded, and a
// save appends wire to the encoded entries instead of encoding up to 128
// records again. wire only ever grows at its end or drops records from its
// front, never changes a byte in place, so the saver may hold a snapshot of
// it while the next turns record more.
type callWindow struct {
	recs []*callRecord
	lens []int  // the encoded length of each of recs in wire
	wire []byte // recs encoded as repeated ActorState.calls
	size int    // bytes of ids and replies in recs

	// The in-memory tier: recent calls by id, and the calls in the order
	// they were remembered, with when.
	mem   map[string]*callRecord
	order []remembered
}

// remembered is a call of the in-memory tier and when it entered it (Unix
// milliseconds): the tier's age counts from then, so a record read with the
// state on activation stays for MemoryWindowAge after it. saved tells a
// record of a turn that changed the state (one the saved window took) from
// a read-only one.
type remembered struct {
	rec   *callRecord
	at    int64
	saved bool
}

// recordSize is what a record counts against the window's bytes.
func recordSize(r *callRecord) int {
	return len(r.Id) + len(r.Body) + len(r.Message) + len(r.AppCode) + 16
}

// find returns the record of id, or nil.
func (w *callWindow) find(id string) *callRecord {
	if w == nil {
		return nil
	}
	if r, ok := w.mem[id]; ok {
		return r
	}
	for i := len(w.recs) - 1; i >= 0; i-- {
		if w.recs[i].Id == id {
			return w.recs[i]
		}
	}
	return nil
}

// add records r, then drops the oldest records beyond lim at now.
func (w *callWindow) add(r *callRecord, lim windowLimits, now time.Time) {
	w.push(r)
	oldest := now.Add(-lim.age).UnixMilli()
	drop, cut := 0, 0
	for drop < len(w.recs) && (len(w.recs)-drop > lim.calls || w.size > lim.bytes || w.recs[drop].UnixMs < oldest) {
		w.size -= recordSize(w.recs[drop])
		cut += w.lens[drop]
		w.recs[drop] = nil
		drop++
	}
	if drop > 0 {
		w.recs, w.lens, w.wire = w.recs[drop:], w.lens[drop:], w.wire[cut:]
	}
}

// push appends r to the window and its encoding to wire.
func (w *callWindow) push(r *callRecord) {
	n := len(w.wire)
	w.wire = appendRecord(w.wire, r)
	w.recs, w.lens = append(w.recs, r), append(w.lens, len(w.wire)-n)
	w.size += recordSize(r)
}

// appendRecord appends r to b as one ActorState.calls field.
func appendRecord(b []byte, r *callRecord) []byte {
	b = protowire.AppendTag(b, callsField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(proto.Size(r)))
	b, _ = proto.MarshalOptions{}.MarshalAppend(b, r) // a CallRecord always encodes
	return b
}

// callsField is the field number of ActorState.calls.
const callsField = 2

// remember keeps r in the in-memory tier, dropping the oldest calls beyond
// its bounds at now. saved is set for the record of a turn that changed the
// state.
func (w *callWindow) remember(r *callRecord, saved bool, now time.Time) {
	if w.mem == nil {
		w.mem = make(map[string]*callRecord)
	}
	w.mem[r.Id] = r
	w.order = append(w.order, remembered{r, now.UnixMilli(), saved})
	oldest := now.Add(-MemoryWindowAge).UnixMilli()
	drop := 0
	for drop < len(w.order) && (len(w.order)-drop > MemoryWindowCalls || w.order[drop].at < oldest) {
		if old := w.order[drop].rec; w.mem[old.Id] == old {
			delete(w.mem, old.Id)
		}
		w.order[drop] = remembered{}
		drop++
	}
	if drop > 0 {
		w.order = w.order[drop:]
		if cap(w.order) > 4*MemoryWindowCalls {
			w.order = append([]remembered(nil), w.order...)
		}
	}
}

// snapshot is the saved window encoded as ActorState.calls fields, nil when
// it is empty. The bytes never change: the saver may keep them.
func (w *callWindow) snapshot() []byte {
	if w == nil || len(w.recs) == 0 {
		return nil
	}
	return w.wire[:len(w.wire):len(w.wire)]
}

// loadWindow makes the window of records read with the state at now. They
// all enter the in-memory tier: a busy actor's new activation may record
// more calls than its saved window holds before the callers whose replies
// the old one lost have retried. The saved window takes the newest of them
// within lim: the entry may hold more (farewell).
func loadWindow(recs []*callRecord, lim windowLimits, now time.Time) *callWindow {
	if len(recs) == 0 {
		return nil
	}
	w := &callWindow{}
	first, size := len(recs), 0
	for first > 0 && len(recs)-first < lim.calls && size+recordSize(recs[first-1]) <= lim.bytes {
		first--
		size += recordSize(recs[first])
	}
	for i, r := range recs {
		w.remember(r, true, now)
		if i >= first {
			w.push(r)
		}
	}
	return w
}

// Bounds of the records a farewell adds to the saved window.
const (
	farewellBytes = 256 << 10
	// farewellShare is the part of the server's max payload the added
	// records may take, so that they never keep the state itself from
	// fitting.
	farewellShare = 4
)

// farewell is what an activation ending gracefully saves as its call
// records: the saved window, preceded by the calls of the in-memory tier
// recorded within MemoryWindowAge that the saved window no longer holds,
// the newest of them within farewellBytes and maxPayload's share (0:
// unknown). more reports whether there are any such calls. A busy actor's
// saved window turns over in seconds; with these the next activation, on
// whichever host, still knows the calls whose callers may be about to retry
// after a lost reply.
func (w *callWindow) farewell(maxPayload int64, now time.Time) (calls []byte, more bool) {
	if w == nil {
		return nil, false
	}
	budget := farewellBytes
	if maxPayload > 0 {
		budget = min(budget, int(maxPayload/farewellShare))
	}
	oldest := now.Add(-MemoryWindowAge).UnixMilli()
	var held map[string]bool // the saved window's ids
	var extra []*callRecord  // newest first
	for i := len(w.order) - 1; i >= 0 && w.order[i].at >= oldest; i-- {
		m := w.order[i]
		if !m.saved || w.mem[m.rec.Id] != m.rec || m.rec.UnixMs < oldest {
			continue // read-only, remembered again since, or recorded over a minute ago (read with the state)
		}
		if held == nil {
			held = make(map[string]bool, len(w.recs))
			for _, r := range w.recs {
				held[r.Id] = true
			}
		}
		if held[m.rec.Id] {
			continue
		}
		if budget -= recordSize(m.rec); budget < 0 {
			break
		}
		held[m.rec.Id] = true
		extra = append(extra, m.rec)
	}
	if len(extra) == 0 {
		return w.snapshot(), false
	}
	for i := len(extra) - 1; i >= 0; i-- {
		calls = appendRecord(calls, extra[i])
	}
	return append(calls, w.wire...), true
}

// window is the activation's call window, nil when it has none.
func (a *activation) window() *callWindow {
	if r := a.rare.Load(); r != nil {
		return r.calls
	}
	return nil
}

// repeat is the recorded outcome of env's call if the actor has already
// run it: ok is false when env carries no id or the window does not hold it.
func (a *activation) repeat(env *envelope) (reply []byte, err error, ok bool) {
	if env.callID == "" || a.t.stateless {
		return nil, nil, false
	}
	r := a.window().find(env.callID)
	if r == nil {
		return nil, nil, false
	}
	a.t.counters.repeats.Add(1)
	if r.Code != 0 {
		return nil, &protocol.Error{Code: protocol.Code(r.Code), AppCode: r.AppCode, Message: r.Message}, true
	}
	return r.Body, nil, true
}

// recordCall records env's call and its reply after a turn that succeeded:
// in memory, and, when the turn changed the state of a type with a saved
// window, in the saved window, so that the save that stores the change
// stores the record too. Types with the saved window off keep the memory
// tier: an attempt the router sends again because the first ran longer than
// its attempt timeout waits behind it in the mailbox and gets its reply,
// instead of running again. Types without state record nothing: their calls
// are the hot path, and a turn that changes no state can run again.
func (a *activation) recordCall(env *envelope, reply []byte, changed bool) {
	if env.callID == "" || a.t.stateless {
		return
	}
	r := a.extra()
	if r.calls == nil {
		r.calls = &callWindow{}
	}
	now := a.e.clock.Now()
	rec := &callRecord{Id: env.callID, Body: reply, UnixMs: now.UnixMilli()}
	saved := changed && a.t.window.calls >= 1
	if saved {
		r.calls.add(rec, a.t.window, now)
	}
	r.calls.remember(rec, saved, now)
}

// checkCallID checks a call id from a request.
func checkCallID(id string) *protocol.Error {
	if !protocol.ValidCallID(id) {
		return protocol.Errorf(protocol.CodeBadRequest, "malformed call id %q: want 1–%d printable ASCII characters without spaces", id, protocol.MaxCallID)
	}
	return nil
}
