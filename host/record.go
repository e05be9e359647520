package host

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
)

// hostRecord is the record the host's lease publishes, shared by the
// goroutines that read it (admin, activations) and change it (drain, a new
// incarnation).
type hostRecord struct {
	mu  sync.Mutex
	rec *pb.HostRecord // nil until Start makes it
}

func (r *hostRecord) set(rec *pb.HostRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rec = rec
}

// get returns a copy of the record, nil before Start made it.
func (r *hostRecord) get() *pb.HostRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rec == nil {
		return nil
	}
	return proto.Clone(r.rec).(*pb.HostRecord)
}

func (r *hostRecord) incarnation() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec.GetIncarnation()
}

// update changes the record with f and returns a copy of the result.
func (r *hostRecord) update(f func(*pb.HostRecord)) *pb.HostRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.rec)
	return proto.Clone(r.rec).(*pb.HostRecord)
}

// watermark is the generation the host last released at (its last release
// record, or a later generation that record implies), with a wait for it to
// reach a generation.
type watermark struct {
	v  atomic.Uint64
	mu sync.Mutex
	ch chan struct{} // closed and replaced by set
}

func newWatermark() *watermark { return &watermark{ch: make(chan struct{})} }

func (w *watermark) set(v uint64) {
	w.v.Store(v)
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// changed returns a channel closed at the next set.
func (w *watermark) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

// wait returns once the mark is at v or above, or ctx ends.
func (w *watermark) wait(ctx context.Context, v uint64) error {
	for {
		w.mu.Lock()
		ch := w.ch
		w.mu.Unlock()
		if w.v.Load() >= v {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
