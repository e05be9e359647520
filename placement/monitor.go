package placement

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// MonitorPeers is how many hosts each host monitors: one, the next on the
// ring. A crashed host's record is removed once its liveness key expired if
// the host before it on the ring is alive; when that one crashed too, its
// own monitor removes it, the ring closes over it, and the host after it,
// now watched by a live monitor, goes at once. Each monitor more would cost
// one delivery per host per renewal (a third of the traffic at rest) to
// save that round in the rare case of neighbours crashing together.
const MonitorPeers = 1

// monitorRetry is how long a monitor waits before watching again after its
// watch could not start or ended.
const monitorRetry = time.Second

// Monitor removes the records of crashed hosts. Hosts of protocol version 2
// renew only their liveness key alive.<id>, which nobody but their monitors
// watches, so that N hosts renewing cost O(N) deliveries rather than O(N²).
// The hosts of protocol version 2 in the current table, ordered by their
// host hash (fmix64(FNV-1a-64(id)), as in the placement hash; ties by id),
// form a ring; each watches the liveness keys of the next MonitorPeers hosts
// on it (Watched), in the bucket each host's record names (the liveness
// bucket, or for hosts before it the membership bucket). When a watched key
// is removed (the server's marker for an expired TTL, or a delete), the
// monitor purges the host's record, with the record's own revision as the
// expected last revision, and only if the record belongs to an incarnation
// whose liveness key is gone: a host that joined again meanwhile keeps its
// record. Every watcher then sees the host leave, as after a graceful leave.
//
// A key of the liveness bucket that is missing without a marker went with
// a server that kept the bucket in memory and restarted: its host may still
// be acting on its lease, so the monitor looks again only after the host's
// lease TTL, by when the host has either written its key again or stopped.
//
// A Monitor owns one goroutine, started by StartMonitor and ended by Stop.
type Monitor struct {
	kv        jetstream.KeyValue
	live      jetstream.KeyValue // nil: no liveness bucket
	w         *Watcher
	self      HostID
	markerTTL time.Duration
	onPurge   func(HostID)
	life      context.Context
	end       context.CancelFunc
	done      chan struct{}
	rewatch   chan struct{} // Rewatch asks; buffered, 1
}

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// MarkerTTL is the TTL of the purge marker; use the bucket's.
	MarkerTTL time.Duration
	// OnPurge, if set, is called after the monitor removed a host's record.
	OnPurge func(HostID)
	// Liveness is the liveness bucket (EnsureLivenessBucket), where hosts
	// whose records name it keep their liveness keys; nil means none: such
	// hosts go unmonitored.
	Liveness jetstream.KeyValue
}

// StartMonitor starts monitoring, for host self, the hosts after it on the
// ring of w's current table, following the table as it changes. kv is the
// membership bucket.
func StartMonitor(kv jetstream.KeyValue, w *Watcher, self HostID, cfg MonitorConfig) *Monitor {
	if cfg.MarkerTTL == 0 {
		cfg.MarkerTTL = DefaultMarkerTTL
	}
	m := &Monitor{kv: kv, live: cfg.Liveness, w: w, self: self, markerTTL: cfg.MarkerTTL, onPurge: cfg.OnPurge, done: make(chan struct{}), rewatch: make(chan struct{}, 1)}
	m.life, m.end = context.WithCancel(context.Background())
	go m.loop()
	return m
}

// Stop ends the monitor and waits for its goroutine.
func (m *Monitor) Stop() {
	m.end()
	<-m.done
}

// Rewatch makes the monitor start its watches again, reading the keys it
// monitors afresh. A host calls it when its lease was lost: the liveness
// bucket may have been lost and created again (a single server that
// restarted keeps no memory stream), which took every host's key and which
// a running watch does not notice. It does not block.
func (m *Monitor) Rewatch() {
	select {
	case m.rewatch <- struct{}{}:
	default:
	}
}

// Watched returns the hosts whose liveness keys self monitors in table t:
// the next k hosts of protocol version 2 after self on the ring (fewer when
// the table has fewer others). self need not be a member.
func Watched(t *Table, self HostID, k int) []HostID {
	return t.walkRing(ringPoint{hash: hostHash(self), id: self}, k, func(m *Member) bool { return m.ID != self })
}

// bucketOf is the bucket holding the liveness key of a host whose record
// names the bucket liveness, nil when this monitor has no such bucket.
func (m *Monitor) bucketOf(liveness string) jetstream.KeyValue {
	switch {
	case liveness == "":
		return m.kv
	case m.live != nil && m.live.Bucket() == liveness:
		return m.live
	}
	return nil
}

// peerWatch is the watch of one monitored host's liveness key.
type peerWatch struct {
	id    HostID
	inMem bool          // the key is in the liveness bucket
	grace time.Duration // the host's lease TTL
	stop  context.CancelFunc
	seen  bool // an entry of the key arrived
}

// peerEvent is an entry (nil: the initial entries are in) of watch w, or
// its end.
type peerEvent struct {
	w     *peerWatch
	e     jetstream.KeyValueEntry
	ended bool
}

func (m *Monitor) loop() {
	defer close(m.done)
	var (
		table   *Table
		targets []HostID
		buckets []string // of targets' liveness keys, as their records name them
		watches []*peerWatch
		events  = make(chan peerEvent)
		due     = make(map[HostID]time.Time) // checks to make, and when
		timer   = time.NewTimer(time.Hour)
		rewatch bool // start the watches again, from rewatchAt on
		// rewatchAt delays a start after one that failed or a watch that
		// ended, so that a server refusing watches is not asked in a loop.
		rewatchAt time.Time
	)
	defer timer.Stop()
	at := func(id HostID, when time.Time) {
		if old, ok := due[id]; !ok || when.Before(old) {
			due[id] = when
		}
	}
	stopWatches := func() {
		for _, pw := range watches {
			pw.stop()
		}
		watches = nil
	}
	defer stopWatches()
	for {
		changed := m.w.Changed()
		if t := m.w.Table(); t != table || (rewatch && !time.Now().Before(rewatchAt)) {
			table = t
			next := Watched(t, m.self, MonitorPeers)
			nextBuckets := make([]string, len(next))
			for i, id := range next {
				mem, _ := t.Member(id)
				nextBuckets[i] = mem.Liveness
			}
			// A host that joined again may keep its key elsewhere now.
			if !slices.Equal(next, targets) || !slices.Equal(nextBuckets, buckets) || rewatch {
				stopWatches()
				targets, buckets, rewatch = next, nextBuckets, false
				for _, id := range targets {
					pw, err := m.watch(t, id, events)
					switch {
					case err != nil:
						rewatch, rewatchAt = true, time.Now().Add(monitorRetry)
					case pw != nil:
						watches = append(watches, pw)
					}
				}
			}
		}
		for id := range due {
			if !slices.Contains(targets, id) {
				delete(due, id) // no longer ours: its new monitor checks it
			}
		}
		next := time.Hour
		if rewatch {
			next = time.Until(rewatchAt)
		}
		for _, when := range due {
			next = min(next, time.Until(when))
		}
		timer.Reset(max(next, 0))
		select {
		case <-m.life.Done():
			return
		case <-changed:
		case <-m.rewatch:
			rewatch, rewatchAt = true, time.Time{}
		case <-timer.C:
			now := time.Now()
			for id, when := range due {
				if !when.After(now) {
					delete(due, id)
					if !m.check(id) {
						at(id, now.Add(monitorRetry))
					}
				}
			}
		case ev := <-events:
			if !slices.Contains(watches, ev.w) {
				continue // from a watch stopped since
			}
			pw := ev.w
			switch {
			case ev.ended:
				rewatch, rewatchAt = true, time.Now().Add(monitorRetry)
			case ev.e == nil: // the initial entries are in
				switch {
				case pw.seen:
				case pw.inMem:
					// No entry, not even a marker: the bucket lost it
					// with a server's restart, not by expiry.
					at(pw.id, time.Now().Add(pw.grace))
				default:
					at(pw.id, time.Now())
				}
			default:
				pw.seen = true
				if ev.e.Operation() != jetstream.KeyValuePut || len(ev.e.Value()) == 0 {
					at(pw.id, time.Now())
				}
			}
		}
	}
}

// watch starts a watch of the liveness key of member id of t, sending its
// entries to events; nil when this monitor cannot watch it (its key is in a
// bucket the monitor does not know).
func (m *Monitor) watch(t *Table, id HostID, events chan<- peerEvent) (*peerWatch, error) {
	mem, _ := t.Member(id)
	kv := m.bucketOf(mem.Liveness)
	if kv == nil {
		return nil, nil
	}
	wctx, cancel := context.WithCancel(m.life)
	kw, err := kv.WatchFiltered(wctx, []string{AliveKey(id)})
	if err != nil {
		cancel()
		return nil, err
	}
	pw := &peerWatch{id: id, inMem: kv != m.kv, grace: mem.LeaseTTL, stop: cancel}
	go func() {
		defer func() { _ = kw.Stop() }()
		for {
			var ev peerEvent
			select {
			case e, ok := <-kw.Updates():
				ev = peerEvent{w: pw, e: e, ended: !ok}
			case <-wctx.Done():
				return
			}
			select {
			case events <- ev:
			case <-wctx.Done():
				return
			}
			if ev.ended {
				return
			}
		}
	}()
	return pw, nil
}

// check removes id's record if it is a protocol-2 record whose incarnation
// no longer holds the liveness key. It returns false when it could not tell
// (the server did not answer), so that the caller tries again.
func (m *Monitor) check(id HostID) bool {
	ctx, cancel := context.WithTimeout(m.life, 5*time.Second)
	defer cancel()
	// A purge that meets a newer record looks again: a new incarnation's
	// join keeps it, but so would a write of the dead one (a drain it sent
	// as its key expired), and nothing else would bring the check back.
	for range 3 {
		if done, again := m.checkOnce(ctx, id); !again {
			return done
		}
	}
	return false
}

// checkOnce is one try of check; again says that the record changed
// between its read and the purge.
func (m *Monitor) checkOnce(ctx context.Context, id HostID) (done, again bool) {
	e, err := m.kv.Get(ctx, HostKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, false // gone already
	}
	if err != nil {
		return m.life.Err() != nil, false
	}
	rec := new(pb.HostRecord)
	if proto.Unmarshal(e.Value(), rec) != nil || rec.GetProtocol() < protocol.AliveRenewalVersion || rec.GetChangedRevision() != 0 {
		// A protocol-1 record expires by its own TTL. So does a record
		// with changed_revision set: only a renewal of the record itself
		// sets it, which a host renewing a liveness key never writes.
		return true, false
	}
	live := m.bucketOf(rec.GetLivenessBucket())
	if live == nil {
		return true, false // a liveness bucket this monitor does not know
	}
	a, err := live.Get(ctx, AliveKey(id))
	switch {
	case err == nil && string(a.Value()) == rec.GetIncarnation():
		return true, false // alive
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return m.life.Err() != nil, false
	}
	err = m.kv.Purge(ctx, HostKey(id), jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(m.markerTTL))
	switch {
	case err == nil:
		if m.onPurge != nil {
			m.onPurge(id)
		}
	case jsutil.IsConflict(err):
		return false, true // the record changed meanwhile: look again
	default:
		return m.life.Err() != nil, false
	}
	if live != m.kv {
		// The incarnation's own alive.<id> in the membership bucket, which
		// tells monitors that look there that the host lives.
		if s, err := ownAlive(ctx, m.kv, AliveKey(id), rec.GetIncarnation()); err == nil && s != nil {
			_ = purgeIfLatest(ctx, m.kv, AliveKey(id), s.Revision(), m.markerTTL)
		}
	}
	return true, false
}
