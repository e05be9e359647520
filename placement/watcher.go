package placement

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// ErrWatcherStopped is returned by WaitApplied after the watcher stopped.
var ErrWatcherStopped = errors.New("placement: watcher stopped")

// Watcher follows the membership bucket and keeps the current Table.
//
// The table's generation is the revision of the last entry that changed the
// member set: a host joining, leaving, expiring or changing what its record
// means. Lease renewals change nothing and leave the generation alone. A
// renewal carries the revision of the write that last changed its record
// (HostRecord.changed_revision), so a watcher that starts late, and sees only
// the latest renewal, derives the same generation as one that saw every
// write. Departures are seen through purge markers, kept for the bucket's
// marker TTL.
//
// A host's watcher (Watch) also answers MayActivate: whether the host may
// activate an actor it gained (see handoff). It learns which members have
// released from the settled record, which a few collector hosts write once
// every member has released at a generation (Collector), and from the
// release notices of the hosts it gained actors from (NoteRelease); it does
// not watch the release records themselves, up to one per host per table
// change, which would make every change cost O(N²) deliveries. WatchReleases follows
// those records instead, for a collector.
//
// A Watcher owns one goroutine, started by Watch and ended by Stop.
type Watcher struct {
	kv      jetstream.KeyValue
	follows follows
	kw      jetstream.KeyWatcher // owned by the goroutine after Watch
	table   atomic.Pointer[Table]
	settled atomic.Uint64 // the generation, once every member released at it
	stop    chan struct{}
	life    context.Context // ends when Stop is called
	end     context.CancelFunc
	resync  chan struct{}
	done    chan struct{}
	stopMu  sync.Once

	followers sync.WaitGroup // FollowReconnects goroutines

	// snap is the handoff state MayActivate reads without the lock.
	snap atomic.Pointer[snap]

	mu      sync.Mutex
	view    view
	handoff handoff
	applied uint64
	changed chan struct{} // closed and replaced after every applied entry
	stopped bool
	// early holds, per member, the newest release notice of a generation
	// past the watcher's table, until the table reaches it (NoteRelease).
	early map[HostID]*pb.ReleaseRecord
	// settling is applySettled's buffer of the members a settled record
	// counts as released.
	settling []HostID
	// wakes holds, per member, a channel closed when its release changes,
	// or when anything every waiter cares about does (a new table or
	// snapshot, a higher settled generation, the watcher's end); see
	// ActivationWait.
	wakes map[HostID]chan struct{}
}

// follows says which keys of the bucket a watcher follows besides hosts.*.
type follows uint8

const (
	followMembers  follows = iota // hosts.* alone: a router's watcher
	followSettled                 // and the settled record: a host's watcher
	followReleases                // and every release record: a collector's watcher
)

// view is the member set and release state read from the bucket.
type view struct {
	members  map[HostID]*member
	order    []*member           // the members, sorted by ID: a table is built from it
	ring     []*member           // the members on the table's ring, in its order
	releases map[HostID]*release // changed in place
	// settled is the generation of the latest settled record: every member
	// of that table had released at it. markApplied is the settled
	// generation last folded into releases.
	settled, markApplied uint64
	gen                  uint64
	rev                  uint64 // the highest revision folded in
	live                 bool   // the initial entries are in: entries now are news
}

type member struct {
	rec     *pb.HostRecord
	inc     string // rec's incarnation, read for every member on every settled record
	m       Member // rec as a table member, its Types sorted (newTable)
	raw     []byte // the entry's value, as last written
	changed uint64 // revision at which the record's meaning last changed
	// since is the revision at which the record's incarnation joined: the
	// write that introduced it, when the watcher saw it, else (a record read
	// at the start) changed, which is no earlier.
	since uint64
	pos   int // the member's place in order, as of the last table built
}

// effect is what applying an entry changed.
type effect uint8

const (
	noEffect      effect = iota // a lease renewal, or an entry ignored
	releaseEffect               // a release record: the handoff state may change
	settledEffect               // the settled record: so may it
	memberEffect                // the member set: a new table
)

// Watch starts following kv for a host and returns once the current member
// set has been read, or ctx ends. It follows the host records and the
// settled record; feed it release notices with NoteRelease.
//
// It fails with ErrHashVersion when the bucket was made for another
// placement function.
func Watch(ctx context.Context, kv jetstream.KeyValue) (*Watcher, error) {
	return watch(ctx, kv, followSettled)
}

// WatchMembers is Watch without any release state, for a router: it routes
// by the table and never activates an actor. Its MayActivate is always false
// and its Settled always 0.
func WatchMembers(ctx context.Context, kv jetstream.KeyValue) (*Watcher, error) {
	return watch(ctx, kv, followMembers)
}

// WatchReleases is Watch following every host's release record instead of
// the settled record, for a collector (or a test that checks the records).
// Each table change delivers one record per host to it.
func WatchReleases(ctx context.Context, kv jetstream.KeyValue) (*Watcher, error) {
	return watch(ctx, kv, followReleases)
}

func watch(ctx context.Context, kv jetstream.KeyValue, f follows) (*Watcher, error) {
	if err := checkBucketHashVersion(ctx, kv); err != nil {
		return nil, err
	}
	w := &Watcher{
		kv:      kv,
		follows: f,
		stop:    make(chan struct{}),
		resync:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	w.life, w.end = context.WithCancel(context.Background())
	w.handoff.onPublish = func(s *snap) {
		w.snap.Store(s)
		w.wakeAll()
	}
	w.table.Store(NewTable(0, nil))
	kw, v, err := w.readAll(ctx)
	if err != nil {
		w.end()
		return nil, err
	}
	w.kw = kw
	w.install(v)
	w.notify()
	go w.loop()
	return w, nil
}

// readAll starts a new watch and reads the bucket's current entries into a
// fresh view.
func (w *Watcher) readAll(ctx context.Context) (jetstream.KeyWatcher, view, error) {
	v := view{members: make(map[HostID]*member), releases: make(map[HostID]*release)}
	wctx, cancel := context.WithCancel(context.Background())
	keys := []string{protocol.HostKeys}
	switch w.follows {
	case followSettled:
		keys = append(keys, protocol.SettledKey)
	case followReleases:
		keys = append(keys, protocol.ReleaseKeys, protocol.SettledKey)
	}
	watch, err := w.kv.WatchFiltered(wctx, keys)
	if err != nil {
		cancel()
		return nil, v, fmt.Errorf("placement: watch %q: %w", w.kv.Bucket(), err)
	}
	kw := keyWatch{watch, cancel}
	for {
		select {
		case <-ctx.Done():
			_ = kw.Stop()
			return nil, v, fmt.Errorf("placement: reading the member set: %w", ctx.Err())
		case e, ok := <-kw.Updates():
			if !ok {
				_ = kw.Stop()
				return nil, v, ErrWatcherStopped
			}
			if e == nil {
				return kw, v, nil
			}
			v.apply(e)
		}
	}
}

// keyWatch is a KV watch whose context ends when it is stopped: nats.go
// keeps a goroutine for each watch until its context ends, which for
// context.Background is never.
type keyWatch struct {
	jetstream.KeyWatcher
	cancel context.CancelFunc
}

func (k keyWatch) Stop() error {
	err := k.KeyWatcher.Stop()
	k.cancel()
	return err
}

// install makes v the watcher's view and publishes its table. A view read
// again after a connection gap keeps the generation monotonic: removals whose
// markers expired during the gap would otherwise lower it.
//
// A re-read that finds the member set unchanged keeps the current table, so
// hosts do not hand off and release again after every reconnect.
//
// Releases learnt before (from notices) still hold for the same incarnation,
// and the bucket holds no record of most of them (a host writes one only
// when the settled record did not follow its notices), so they are kept.
func (w *Watcher) install(v view) {
	w.mu.Lock()
	v.gen = max(v.gen, w.view.gen)
	v.settled = max(v.settled, w.view.settled)
	for id, rec := range w.view.releases {
		if was, ok := v.releases[id]; !ok || was.incarnation == rec.incarnation && was.gen < rec.gen {
			kept := *rec
			v.releases[id] = &kept
		}
	}
	same := w.handoff.current() != nil && w.table.Load().Generation() == v.gen && sameMembers(w.view.members, v.members)
	w.view = v
	w.view.live = true
	w.handoff.resetReleased(v.releasedAt())
	w.applySettled()
	w.applyEarly()
	w.mu.Unlock()
	if same {
		w.updateSettled()
		return
	}
	w.publish()
}

// sameMembers reports whether two member sets hold the same records, by
// meaning.
func sameMembers(a, b map[HostID]*member) bool {
	if len(a) != len(b) {
		return false
	}
	for id, m := range a {
		o, ok := b[id]
		if !ok || !sameMeaning(m.rec, o.rec) {
			return false
		}
	}
	return true
}

func (w *Watcher) loop() {
	defer close(w.done)
	for w.next() {
	}
	w.mu.Lock()
	w.stopped = true
	w.wakeAll()
	w.mu.Unlock()
	w.notify()
}

// next applies the next entry, or reads the bucket again when asked; false
// when the watch ended.
func (w *Watcher) next() bool {
	select {
	case <-w.stop:
		return false
	case <-w.resync:
		w.reread()
		w.notify()
		return true
	case e, ok := <-w.kw.Updates():
		if !ok {
			return false
		}
		if e != nil {
			w.applyEntry(e)
		}
		w.notify()
		return true
	}
}

// applyEntry folds one watched entry in: a new table when the member set
// changed, the release state when a release record did, nothing more for a
// lease renewal.
func (w *Watcher) applyEntry(e jetstream.KeyValueEntry) {
	w.mu.Lock()
	eff, id := w.view.apply(e)
	switch eff {
	case memberEffect, releaseEffect:
		gen, ok := w.view.releasedBy(id)
		w.setReleased(id, gen, ok)
	case settledEffect:
		w.applySettled()
	}
	w.mu.Unlock()
	switch eff {
	case memberEffect:
		w.publish()
	case releaseEffect, settledEffect:
		w.updateSettled()
	}
}

// applySettled folds the settled record into the release state, once the
// watcher's table has reached its generation s: every member of table s had
// released at s, so each current member whose incarnation was in table s
// (it joined at s or before) counts as released at s. A member that
// released later still counts at its own, later release; an incarnation
// that joined after s is not covered (it released at its join). Tables
// before the one in effect at s then decide nothing (handoff.trim) and are
// dropped. It is O(N) once per settled record, not per entry. w.mu is held.
func (w *Watcher) applySettled() {
	s, cur := w.view.settled, w.handoff.current()
	if s <= w.view.markApplied || cur == nil || s > cur.Generation() {
		return // nothing new, or a table this watcher has not reached yet
	}
	w.view.markApplied = s
	ids := w.settling[:0]
	for _, m := range w.view.order {
		if m.since > s {
			continue
		}
		if w.view.noteRelease(m.m.ID, m.inc, s) { // else released there or later already
			ids = append(ids, m.m.ID)
		}
	}
	w.handoff.settle(s, ids) // a new snapshot, which wakes every waiter
	clear(ids)
	w.settling = ids
}

// Resync asks the watcher to read the whole bucket again, as a new watcher
// would. Call it after the connection to NATS was lost and restored: a gap
// longer than the bucket's marker TTL loses removals, which a full read does
// not need.
func (w *Watcher) Resync() {
	select {
	case w.resync <- struct{}{}:
	default:
	}
}

// FollowReconnects calls Resync every time nc reconnects, until the watcher
// stops. The watch itself resumes after a reconnect, but a gap longer than
// the bucket's marker TTL would hide departures.
func (w *Watcher) FollowReconnects(nc *nats.Conn) {
	ch := nc.StatusChanged(nats.CONNECTED)
	w.followers.Add(1)
	go func() {
		defer w.followers.Done()
		defer nc.RemoveStatusListener(ch)
		for {
			select {
			case <-w.stop:
				return
			case <-ch:
				w.Resync()
			}
		}
	}()
}

func (w *Watcher) reread() {
	kw, v, err := w.readAll(w.life)
	if err != nil {
		return // stopping, or the bucket is unreachable: keep the old watch
	}
	old := w.kw
	w.kw = kw
	go func() { _ = old.Stop() }()
	w.install(v)
}

// apply folds one entry into the view and says what it changed, and for
// which host. A lease renewal that repeats a record's bytes, the bulk of the
// entries, costs a map lookup and a byte comparison.
func (v *view) apply(e jetstream.KeyValueEntry) (effect, HostID) {
	v.rev = max(v.rev, e.Revision())
	if e.Key() == protocol.SettledKey {
		if v.applySettled(e) {
			return settledEffect, ""
		}
		return noEffect, ""
	}
	if id, ok := protocol.ParseReleaseKey(e.Key()); ok {
		v.applyRelease(id, e)
		return releaseEffect, id
	}
	id, ok := protocol.ParseHostKey(e.Key())
	if !ok {
		return noEffect, ""
	}
	if e.Operation() != jetstream.KeyValuePut {
		_, had := v.members[id]
		v.remove(id)
		delete(v.releases, id) // gone, it holds nothing
		v.gen = max(v.gen, e.Revision())
		if had {
			return memberEffect, id
		}
		return noEffect, id
	}
	old, had := v.members[id]
	if had && bytes.Equal(old.raw, e.Value()) {
		return noEffect, id
	}
	rec := new(pb.HostRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil || rec.GetHostId() != string(id) {
		return noEffect, id // not a record a host wrote; ignore rather than guess
	}
	if had && sameMeaning(old.rec, rec) {
		old.rec, old.inc, old.raw = rec, rec.GetIncarnation(), e.Value()
		return noEffect, id
	}
	changed := rec.GetChangedRevision()
	if changed == 0 || changed > e.Revision() {
		changed = e.Revision()
	}
	joined := !had || old.inc != rec.GetIncarnation()
	since := changed
	if !joined {
		since = old.since
	}
	v.put(id, member{rec: rec, inc: rec.GetIncarnation(), m: memberOf(rec), raw: e.Value(), changed: changed, since: since})
	v.gen = max(v.gen, changed)
	if joined && v.live && rec.GetChangedRevision() == 0 {
		// The write that brings an incarnation in: it holds nothing yet (a
		// host activates only what its own table gives it, and no table
		// gave it anything before this one), so it has released at this
		// generation. Saying so spares every other host the wait for the
		// settled record before its next activation.
		v.noteRelease(id, rec.GetIncarnation(), changed)
	}
	return memberEffect, id
}

// put sets member id, keeping order and ring sorted.
func (v *view) put(id HostID, m member) {
	p, had := v.members[id]
	if had {
		v.leaveRing(p)
		*p = m
	} else {
		p = &m
		at, _ := v.position(id)
		v.order = slices.Insert(v.order, at, p)
		v.members[id] = p
	}
	if onRing(&p.m) {
		at, _ := slices.BinarySearchFunc(v.ring, p, compareRingMembers)
		v.ring = slices.Insert(v.ring, at, p)
	}
}

// remove deletes member id, keeping order and ring sorted.
func (v *view) remove(id HostID) {
	p, had := v.members[id]
	if !had {
		return
	}
	delete(v.members, id)
	v.leaveRing(p)
	if at, found := v.position(id); found {
		v.order = slices.Delete(v.order, at, at+1)
	}
}

// leaveRing takes member p off the ring, if it is on it.
func (v *view) leaveRing(p *member) {
	if at, found := slices.BinarySearchFunc(v.ring, p, compareRingMembers); found {
		v.ring = slices.Delete(v.ring, at, at+1)
	}
}

func compareRingMembers(a, b *member) int {
	return compareRing(ringPoint{hash: a.m.hash, id: a.m.ID}, ringPoint{hash: b.m.hash, id: b.m.ID})
}

// position is where member id is, or would be, in order.
func (v *view) position(id HostID) (int, bool) {
	return slices.BinarySearchFunc(v.order, id, func(m *member, id HostID) int { return cmp.Compare(m.m.ID, id) })
}

// applySettled reads the settled record; true when it raised the settled
// generation.
func (v *view) applySettled(e jetstream.KeyValueEntry) bool {
	if e.Operation() != jetstream.KeyValuePut {
		return false // removed by hand: what it said stays true
	}
	rec := new(pb.SettledRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil || rec.GetGeneration() <= v.settled {
		return false
	}
	v.settled = rec.GetGeneration()
	return true
}

// applyRelease reads a release record. One that expires (a host that lost
// nothing for the record's TTL writes no other) or is removed leaves what
// it said true: the incarnation did release there.
func (v *view) applyRelease(id HostID, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	rec := new(pb.ReleaseRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil || rec.GetHostId() != string(id) {
		return
	}
	v.noteRelease(id, rec.GetIncarnation(), rec.GetGeneration())
}

// release is what the view keeps of a member's release: the incarnation
// that released and the generation it released at.
type release struct {
	incarnation string
	gen         uint64
}

// noteRelease keeps the release of host id, as incarnation, at gen unless
// the view holds one of the same incarnation at gen or later (a release
// notice can come before the record it announces); it reports whether it
// kept it.
func (v *view) noteRelease(id HostID, incarnation string, gen uint64) bool {
	switch old := v.releases[id]; {
	case old == nil:
		v.releases[id] = &release{incarnation: incarnation, gen: gen}
	case old.incarnation != incarnation || old.gen < gen:
		*old = release{incarnation: incarnation, gen: gen}
	default:
		return false
	}
	return true
}

// NoteRelease applies a release notice (protocol.HeaderReleased): host id,
// as incarnation, has released at generation gen. It counts as the host's
// release record, which reaches the watch later, and wakes the waiters if
// it tells them something new. A notice of an incarnation other than the
// member's current one, or of a host that is not a member, is ignored.
//
// A notice of a generation newer than the watcher's table waits until the
// table reaches it: the rule that decides activations reads a release at
// generation r against the tables up to r, and a host that skipped from an
// older table to r may still hold an actor it owns again at r. The sender
// applied r's table before it released, so this watcher's table usually
// lags by a few entries at most; without the wait, the gainer would wait
// for the settled record instead.
func (w *Watcher) NoteRelease(id HostID, incarnation string, gen uint64) {
	w.mu.Lock()
	m, ok := w.view.members[id]
	cur := w.handoff.current()
	if !ok || m.inc != incarnation || cur == nil {
		w.mu.Unlock()
		return
	}
	rec := &pb.ReleaseRecord{HostId: string(id), Incarnation: incarnation, Generation: gen}
	if gen > cur.Generation() {
		if was := w.early[id]; was == nil || was.GetIncarnation() != incarnation || was.GetGeneration() < gen {
			if w.early == nil {
				w.early = make(map[HostID]*pb.ReleaseRecord)
			}
			w.early[id] = rec
		}
		w.mu.Unlock()
		return
	}
	changed := w.noteReleaseLocked(rec)
	w.mu.Unlock()
	if changed {
		w.updateSettled()
		w.notify()
	}
}

// noteReleaseLocked counts a release notice the table has reached, unless
// the member's current incarnation released at its generation or later
// already; it reports whether it did. w.mu is held.
func (w *Watcher) noteReleaseLocked(rec *pb.ReleaseRecord) bool {
	id := HostID(rec.GetHostId())
	if m, ok := w.view.members[id]; !ok || m.inc != rec.GetIncarnation() {
		return false
	}
	if was, ok := w.view.releasedBy(id); ok && was >= rec.GetGeneration() {
		return false
	}
	w.view.noteRelease(id, rec.GetIncarnation(), rec.GetGeneration())
	gen, ok := w.view.releasedBy(id)
	w.setReleased(id, gen, ok)
	return true
}

// applyEarly counts the release notices that waited for the current table
// (NoteRelease), and drops those of incarnations no longer members. w.mu is
// held.
func (w *Watcher) applyEarly() {
	cur := w.handoff.current()
	if len(w.early) == 0 || cur == nil {
		return
	}
	for id, rec := range w.early {
		if m, ok := w.view.members[id]; !ok || m.inc != rec.GetIncarnation() {
			delete(w.early, id)
		} else if rec.GetGeneration() <= cur.Generation() {
			delete(w.early, id)
			w.noteReleaseLocked(rec)
		}
	}
}

// releasedAt returns the generation each member has released at, counting
// only records of its current incarnation.
func (v *view) releasedAt() map[HostID]uint64 {
	r := make(map[HostID]uint64, len(v.members))
	for id := range v.members {
		if gen, ok := v.releasedBy(id); ok {
			r[id] = gen
		}
	}
	return r
}

// releasedBy returns the generation member id has released at, if its
// current incarnation has released.
func (v *view) releasedBy(id HostID) (uint64, bool) {
	m, ok := v.members[id]
	if !ok {
		return 0, false
	}
	rel, ok := v.releases[id]
	if !ok || rel.incarnation != m.inc {
		return 0, false
	}
	return rel.gen, true
}

func sameMeaning(a, b *pb.HostRecord) bool {
	a, b = proto.Clone(a).(*pb.HostRecord), proto.Clone(b).(*pb.HostRecord)
	a.ChangedRevision, b.ChangedRevision = 0, 0
	return proto.Equal(a, b)
}

// publish builds the table for the current member set.
func (w *Watcher) publish() {
	w.mu.Lock()
	ms := make([]Member, len(w.view.order))
	revs := make([]memberRevs, len(w.view.order))
	for i, m := range w.view.order {
		ms[i] = m.m
		revs[i] = memberRevs{since: m.since, changed: m.changed}
		m.pos = i
	}
	ring := make([]int32, len(w.view.ring))
	for i, m := range w.view.ring {
		ring[i] = int32(m.pos)
	}
	t := newTable(w.view.gen, ms, ring)
	w.handoff.push(t, revs)
	w.applySettled()
	w.applyEarly()
	w.table.Store(t)
	w.mu.Unlock()
	w.updateSettled()
}

// updateSettled advances Settled when every member has released at the
// current generation.
func (w *Watcher) updateSettled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cur := w.handoff.current(); cur != nil && w.handoff.settled() && cur.Generation() > w.settled.Load() {
		w.settled.Store(cur.Generation())
		w.wakeAll()
	}
}

// setReleased records member id's release in the handoff state and wakes
// the calls waiting for it. w.mu is held.
func (w *Watcher) setReleased(id HostID, gen uint64, ok bool) {
	if w.handoff.setReleased(id, gen, ok) {
		if ch, waited := w.wakes[id]; waited {
			close(ch)
			delete(w.wakes, id)
		}
	}
}

// wakeAll wakes every waiting call. w.mu is held.
func (w *Watcher) wakeAll() {
	for id, ch := range w.wakes {
		close(ch)
		delete(w.wakes, id)
	}
}

// MayActivate reports whether host self may activate (typ, id) in table t:
// t must be the current table and give the actor to self, and no other
// member may still hold the actor. That is true at once when every member
// has released at t's generation; before that, it is true for an actor whose
// previous owners have released it. Wait on Changed and ask again.
func (w *Watcher) MayActivate(self HostID, t *Table, typ ActorType, id ActorID) bool {
	ok, _, _ := w.check(self, t, typ, id)
	return ok
}

// check is MayActivate without registering anything: when the answer is no
// and t is current, it also returns the snapshot it read and the member
// that may still hold the actor (nil and "" otherwise).
func (w *Watcher) check(self HostID, t *Table, typ ActorType, id ActorID) (bool, *snap, HostID) {
	if o, ok := t.Owner(typ, id); !ok || o.ID != self || w.follows == followMembers || w.table.Load() != t {
		return false, nil, ""
	}
	if w.settled.Load() >= t.Generation() {
		return true, nil, ""
	}
	s := w.snap.Load()
	if s.current() != t {
		return false, nil, ""
	}
	ok, holder := s.mayActivate(self, typ, id)
	return ok, s, holder
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ActivationWait is MayActivate, for a call waiting to activate its actor:
// when the answer is false, it also returns a channel that is closed once
// the answer may have changed — the release of the member that may still
// hold the actor, a new table, a higher settled generation, or the
// watcher's end — so that a waiting call wakes for its own actor's
// releases, not for every entry. The check runs on an immutable snapshot,
// outside the watcher's lock, in O(tables kept).
func (w *Watcher) ActivationWait(self HostID, t *Table, typ ActorType, id ActorID) (bool, <-chan struct{}) {
	for {
		ok, s, holder := w.check(self, t, typ, id)
		switch {
		case ok:
			return true, nil
		case s == nil:
			// Not self's, or t is no longer current: wait for the next
			// table, unless it came already.
			ch := w.wake("")
			if w.table.Load() != t {
				return false, closedChan
			}
			return false, ch
		}
		ch := w.wakeIf(s, holder)
		if ch == nil {
			continue // the snapshot changed meanwhile
		}
		// Ask again now that a change would close ch: one that came between
		// the first answer and the registration is not lost.
		if ok, again := s.mayActivate(self, typ, id); ok || again != holder || w.settled.Load() >= t.Generation() {
			continue
		}
		return false, ch
	}
}

// wake returns the channel closed when member id's release changes, or on
// any change every waiter cares about ("" for those alone).
func (w *Watcher) wake(id HostID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.wakeLocked(id)
}

// wakeIf is wake, or nil when s is no longer the current snapshot.
func (w *Watcher) wakeIf(s *snap, id HostID) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.snap.Load() != s {
		return nil
	}
	return w.wakeLocked(id)
}

func (w *Watcher) wakeLocked(id HostID) <-chan struct{} {
	if w.stopped {
		return closedChan
	}
	if w.wakes == nil {
		w.wakes = make(map[HostID]chan struct{})
	}
	ch, ok := w.wakes[id]
	if !ok {
		ch = make(chan struct{})
		w.wakes[id] = ch
	}
	return ch
}

// ReleaseImplied reports whether host id, whose last release record is of
// generation written, may skip writing one for table t: t is the current
// table, every member of t reads releases as protocol version 2 does, and
// the changes since written took nothing from id, so every watcher that
// knows of that record counts id as released at t (releaseBounds).
func (w *Watcher) ReleaseImplied(id HostID, t *Table, written uint64) bool {
	if t.MinProtocol() < protocol.AliveRenewalVersion {
		return false // a protocol-1 host waits for every host's record
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return written > 0 && w.handoff.current() == t && w.handoff.snap.implied(id, written)
}

// Settled is the highest generation at which every member had released.
func (w *Watcher) Settled() uint64 { return w.settled.Load() }

// SettledRecord is the generation of the latest settled record the watcher
// read: what every host knows, where Settled also counts the release
// notices this one received.
func (w *Watcher) SettledRecord() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view.settled
}

// SettledNews returns Settled, for a collector, and whether the settled
// record needs raising to it: false when the record the watcher read last,
// of generation r, holds it already or implies it to every host. It
// implies the current generation when every member of the current table
// joined at r or before (so a host counts it as released at r) and that
// release implies one at the current generation (releaseBounds), as after
// a departure or a crashed host's purge that followed a settled table. Every
// host's watcher then counts the table as settled on its own, and the
// record would cost N deliveries and N snapshots to say what they know.
// O(N) per settled generation.
func (w *Watcher) SettledNews() (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, r := w.settled.Load(), w.view.settled
	cur := w.handoff.current()
	if s <= r {
		return s, false
	}
	if r == 0 || cur.Generation() != s {
		return s, true
	}
	for i, m := range cur.Members() {
		if vm, ok := w.view.members[m.ID]; !ok || vm.since > r || !w.handoff.snap.impliedAt(i, r) {
			return s, true
		}
	}
	return s, false
}

// memberOf is rec as a table member, its Types sorted and deduplicated.
func memberOf(rec *pb.HostRecord) Member {
	types := make([]ActorType, len(rec.GetActorTypes()))
	for i, t := range rec.GetActorTypes() {
		types[i] = ActorType(t)
	}
	slices.Sort(types)
	types = slices.Compact(types)
	id := HostID(rec.GetHostId())
	return Member{
		ID:        id,
		hash:      hostHash(id),
		Subject:   rec.GetSubject(),
		Types:     types,
		Draining:  rec.GetState() == pb.HostState_HOST_STATE_DRAINING,
		Protocol:  max(rec.GetProtocol(), 1),
		Reminders: rec.GetReminders(),
		Liveness:  rec.GetLivenessBucket(),
		LeaseTTL:  leaseTTLOf(rec),
	}
}

// maxLeaseTTLMs bounds a record's lease_ttl_ms (a day), so that it converts
// to a time.Duration without overflow.
const maxLeaseTTLMs = 24 * 3600 * 1000

// leaseTTLOf is the TTL of the liveness key of the host that wrote rec, as
// the server keeps it: lease_ttl_ms rounded up to whole seconds (at most a
// day), DefaultLeaseTTL when the record does not say.
func leaseTTLOf(rec *pb.HostRecord) time.Duration {
	ms := rec.GetLeaseTtlMs()
	if ms == 0 {
		return DefaultLeaseTTL
	}
	d := time.Duration(min(ms, maxLeaseTTLMs)) * time.Millisecond
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}

// notify marks the view's entries applied and wakes the waiters. It runs
// after the table for those entries is published, so that a caller of
// WaitApplied finds them in Table.
func (w *Watcher) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applied = max(w.applied, w.view.rev)
	close(w.changed)
	w.changed = make(chan struct{})
}

// Table is the current placement table. It never returns nil.
func (w *Watcher) Table() *Table { return w.table.Load() }

// Applied is the highest bucket revision the watcher has applied: Table
// reflects every entry up to it.
func (w *Watcher) Applied() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

// Changed returns a channel closed after the next entry is applied (or the
// watcher stops). Use it to wait for a table change without polling.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// WaitApplied blocks until the watcher has applied revision rev, ctx ends,
// or the watcher stops.
func (w *Watcher) WaitApplied(ctx context.Context, rev uint64) error {
	for {
		w.mu.Lock()
		applied, stopped, ch := w.applied, w.stopped, w.changed
		w.mu.Unlock()
		switch {
		case applied >= rev:
			return nil
		case stopped:
			return ErrWatcherStopped
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Records returns the live host records, sorted by host id.
func (w *Watcher) Records() []*pb.HostRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs := make([]*pb.HostRecord, len(w.view.order))
	for i, m := range w.view.order {
		recs[i] = m.rec
	}
	return recs
}

// Stop ends the watch and waits for the watcher's goroutine. Removing the
// server-side consumer is a JetStream API request that can take the client's
// API timeout when the connection is down, so it finishes in the background.
func (w *Watcher) Stop() {
	w.stopMu.Do(func() {
		close(w.stop)
		w.end()
	})
	<-w.done
	w.followers.Wait()
	go func() { _ = w.kw.Stop() }()
}
