package placement

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
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
// A Watcher owns one goroutine, started by Watch and ended by Stop.
type Watcher struct {
	kw     jetstream.KeyWatcher
	table  atomic.Pointer[Table]
	stop   chan struct{}
	done   chan struct{}
	stopMu sync.Once

	mu      sync.Mutex
	members map[HostID]member
	gen     uint64
	applied uint64
	changed chan struct{} // closed and replaced after every applied entry
	stopped bool
}

type member struct {
	rec     *pb.HostRecord
	changed uint64 // revision at which the record's meaning last changed
}

// Watch starts following kv and returns once the current member set has
// been read, or ctx ends.
//
// It fails with ErrHashVersion when the bucket was made for another
// placement function.
func Watch(ctx context.Context, kv jetstream.KeyValue) (*Watcher, error) {
	if err := checkBucketHashVersion(ctx, kv); err != nil {
		return nil, err
	}
	kw, err := kv.Watch(context.Background(), hostKeyPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("placement: watch %q: %w", kv.Bucket(), err)
	}
	w := &Watcher{
		kw:      kw,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		members: make(map[HostID]member),
		changed: make(chan struct{}),
	}
	w.table.Store(NewTable(0, nil))
	if err := w.readInitial(ctx); err != nil {
		_ = kw.Stop()
		return nil, err
	}
	go w.loop()
	return w, nil
}

func (w *Watcher) readInitial(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("placement: reading the member set: %w", ctx.Err())
		case e, ok := <-w.kw.Updates():
			if !ok {
				return ErrWatcherStopped
			}
			if e == nil {
				w.publish()
				return nil
			}
			w.apply(e)
		}
	}
}

func (w *Watcher) loop() {
	defer close(w.done)
	for w.next() {
	}
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.notify()
}

// next applies the next entry; false when the watch ended.
func (w *Watcher) next() bool {
	select {
	case <-w.stop:
		return false
	case e, ok := <-w.kw.Updates():
		if !ok {
			return false
		}
		if e != nil && w.apply(e) {
			w.publish()
		}
		w.notify()
		return true
	}
}

// apply folds one entry into the member set and reports whether the set
// changed.
func (w *Watcher) apply(e jetstream.KeyValueEntry) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.applied = max(w.applied, e.Revision())
	id, ok := hostIDFromKey(e.Key())
	if !ok {
		return false
	}
	if e.Operation() != jetstream.KeyValuePut {
		_, had := w.members[id]
		delete(w.members, id)
		w.gen = max(w.gen, e.Revision())
		return had
	}
	rec := new(pb.HostRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil || rec.GetHostId() != string(id) {
		return false // not a record a host wrote; ignore rather than guess
	}
	if old, had := w.members[id]; had && sameMeaning(old.rec, rec) {
		w.members[id] = member{rec: rec, changed: old.changed}
		return false
	}
	changed := rec.GetChangedRevision()
	if changed == 0 || changed > e.Revision() {
		changed = e.Revision()
	}
	w.members[id] = member{rec: rec, changed: changed}
	w.gen = max(w.gen, changed)
	return true
}

func sameMeaning(a, b *pb.HostRecord) bool {
	a, b = proto.Clone(a).(*pb.HostRecord), proto.Clone(b).(*pb.HostRecord)
	a.ChangedRevision, b.ChangedRevision = 0, 0
	return proto.Equal(a, b)
}

// publish builds the table for the current member set.
func (w *Watcher) publish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := make([]Member, 0, len(w.members))
	for _, m := range w.members {
		ms = append(ms, memberOf(m.rec))
	}
	w.table.Store(NewTable(w.gen, ms))
}

func memberOf(rec *pb.HostRecord) Member {
	types := make([]ActorType, len(rec.GetActorTypes()))
	for i, t := range rec.GetActorTypes() {
		types[i] = ActorType(t)
	}
	return Member{
		ID:       HostID(rec.GetHostId()),
		Subject:  rec.GetSubject(),
		Types:    types,
		Draining: rec.GetState() == pb.HostState_HOST_STATE_DRAINING,
	}
}

func (w *Watcher) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.changed)
	w.changed = make(chan struct{})
}

// Table is the current placement table. It never returns nil.
func (w *Watcher) Table() *Table { return w.table.Load() }

// Applied is the highest bucket revision the watcher has applied.
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
	recs := make([]*pb.HostRecord, 0, len(w.members))
	for _, m := range w.members {
		recs = append(recs, m.rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].GetHostId() < recs[j].GetHostId() })
	return recs
}

// Stop ends the watch and waits for the watcher's goroutine. Removing the
// server-side consumer is a JetStream API request that can take the client's
// API timeout when the connection is down, so it finishes in the background.
func (w *Watcher) Stop() {
	w.stopMu.Do(func() {
		close(w.stop)
		go func() { _ = w.kw.Stop() }()
	})
	<-w.done
}
