package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// CollectorHosts is how many hosts collect the release records: two, so that
// a crashed collector delays nothing while the other lives, and the ring
// closes over both as their records are removed.
const CollectorHosts = 2

// Collectors returns the hosts that collect releases in table t: the first
// CollectorHosts active hosts of protocol version 2 on the ring that Watched
// orders (by host hash).
func Collectors(t *Table) []HostID {
	return t.walkRing(ringPoint{}, CollectorHosts, func(m *Member) bool { return !m.Draining })
}

// Collector turns the hosts' release records into the settled record, so
// that a table change costs O(N) deliveries rather than O(N²). A host writes
// a release record when a change took actors from it; only the collectors
// watch them (WatchReleases), and once every member of a table has released
// at its generation (by its record, or by an earlier record that implies it:
// see releaseBounds), they raise the settled record (protocol.SettledKey) to it,
// unless the generation it holds implies that one (Watcher.SettledNews). Every
// host's watcher follows that one key (Watch), and counts each member whose
// record is unchanged since that table as released at it.
//
// A host runs one Collector, which collects only while the host is among
// Collectors of its watcher's current table. A Collector owns one goroutine,
// started by StartCollector and ended by Stop.
type Collector struct {
	kv   jetstream.KeyValue
	w    *Watcher
	self HostID
	nc   *nats.Conn
	rw   atomic.Pointer[Watcher] // the release watcher, while self collects
	life context.Context
	end  context.CancelFunc
	done chan struct{}
}

// StartCollector starts collecting, for host self, whenever w's current table
// names it among Collectors. nc, when not nil, is the connection whose
// reconnects make the collector's own watcher read the bucket again
// (Watcher.FollowReconnects).
func StartCollector(kv jetstream.KeyValue, w *Watcher, self HostID, nc *nats.Conn) *Collector {
	c := &Collector{kv: kv, w: w, self: self, nc: nc, done: make(chan struct{})}
	c.life, c.end = context.WithCancel(context.Background())
	go c.loop()
	return c
}

// NoteRelease counts a release notice (protocol.HeaderReleased) as the
// sender's release record while self collects: hosts send their notices to
// the collectors of their table too, and write the record itself only when
// the settled record does not follow them soon. A nil Collector ignores it.
func (c *Collector) NoteRelease(id HostID, incarnation string, gen uint64) {
	if c == nil {
		return
	}
	if rw := c.rw.Load(); rw != nil {
		rw.NoteRelease(id, incarnation, gen)
	}
}

// Stop ends the collector and waits for its goroutine.
func (c *Collector) Stop() {
	c.end()
	<-c.done
}

func (c *Collector) loop() {
	defer close(c.done)
	var (
		rw      *Watcher // follows every release record while self collects
		written uint64   // the highest generation this collector wrote
		retry   <-chan time.Time
	)
	defer func() {
		if rw != nil {
			c.rw.Store(nil)
			rw.Stop()
		}
	}()
	var (
		table    *Table
		collects bool
	)
	for {
		changed := c.w.Changed()
		if t := c.w.Table(); t != table {
			table, collects = t, slices.Contains(Collectors(t), c.self)
		}
		switch {
		case collects && rw == nil && retry == nil:
			var err error
			if rw, err = WatchReleases(c.life, c.kv); err != nil {
				rw, retry = nil, time.After(monitorRetry)
				break
			}
			if c.nc != nil {
				rw.FollowReconnects(c.nc)
			}
			c.rw.Store(rw)
		case !collects && rw != nil:
			c.rw.Store(nil)
			rw.Stop()
			rw = nil
		}
		var released <-chan struct{}
		if rw != nil {
			released = rw.Changed()
			if s, news := rw.SettledNews(); s > written && retry == nil {
				if !news {
					written = s // every host counts it settled already
				} else if err := WriteSettled(c.life, c.kv, c.self, s); err != nil {
					retry = time.After(monitorRetry)
				} else {
					written = s
				}
			}
		}
		select {
		case <-c.life.Done():
			return
		case <-changed:
		case <-released:
		case <-retry:
			retry = nil
		}
	}
}

// WriteSettled raises the settled record to generation gen, with a
// compare-and-set on the record's revision so that two collectors never
// lower it. It does nothing when the record is at gen or later already.
func WriteSettled(ctx context.Context, kv jetstream.KeyValue, self HostID, gen uint64) error {
	data, err := proto.Marshal(&pb.SettledRecord{Generation: gen, HostId: string(self)})
	if err != nil {
		return err
	}
	for {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		e, err := kv.Get(ctx, protocol.SettledKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = kv.Create(ctx, protocol.SettledKey, data)
		case err == nil:
			old := new(pb.SettledRecord)
			if proto.Unmarshal(e.Value(), old) == nil && old.GetGeneration() >= gen {
				cancel()
				return nil
			}
			_, err = kv.Update(ctx, protocol.SettledKey, data, e.Revision())
		}
		cancel()
		switch {
		case err == nil:
			return nil
		case jsutil.IsConflict(err) || errors.Is(err, jetstream.ErrKeyExists):
			continue // the other collector wrote first: read it again
		default:
			return fmt.Errorf("placement: settled record at generation %d: %w", gen, err)
		}
	}
}
