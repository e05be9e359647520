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
// on it (Watched). When a watched key is removed (the server's marker for
// an expired TTL, or a delete), the monitor purges the host's record, with
// the record's own revision as the expected last revision, and only if the
// record belongs to an incarnation whose liveness key is gone: a host that
// joined again meanwhile keeps its record. Every watcher then sees the host
// leave, as after a graceful leave.
//
// A Monitor owns one goroutine, started by StartMonitor and ended by Stop.
type Monitor struct {
	kv        jetstream.KeyValue
	w         *Watcher
	self      HostID
	markerTTL time.Duration
	onPurge   func(HostID)
	life      context.Context
	end       context.CancelFunc
	done      chan struct{}
}

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// MarkerTTL is the TTL of the purge marker; use the bucket's.
	MarkerTTL time.Duration
	// OnPurge, if set, is called after the monitor removed a host's record.
	OnPurge func(HostID)
}

// StartMonitor starts monitoring, for host self, the hosts after it on the
// ring of w's current table, following the table as it changes.
func StartMonitor(kv jetstream.KeyValue, w *Watcher, self HostID, cfg MonitorConfig) *Monitor {
	if cfg.MarkerTTL == 0 {
		cfg.MarkerTTL = DefaultMarkerTTL
	}
	m := &Monitor{kv: kv, w: w, self: self, markerTTL: cfg.MarkerTTL, onPurge: cfg.OnPurge, done: make(chan struct{})}
	m.life, m.end = context.WithCancel(context.Background())
	go m.loop()
	return m
}

// Stop ends the monitor and waits for its goroutine.
func (m *Monitor) Stop() {
	m.end()
	<-m.done
}

// Watched returns the hosts whose liveness keys self monitors in table t:
// the next k hosts of protocol version 2 after self on the ring (fewer when
// the table has fewer others). self need not be a member.
func Watched(t *Table, self HostID, k int) []HostID {
	return t.walkRing(ringPoint{hash: hostHash(self), id: self}, k, func(m *Member) bool { return m.ID != self })
}

func (m *Monitor) loop() {
	defer close(m.done)
	var (
		table   *Table
		targets []HostID
		kw      jetstream.KeyWatcher
		updates <-chan jetstream.KeyValueEntry
		seen    map[HostID]bool
		retry   <-chan time.Time
		pending = make(map[HostID]bool) // checks that could not finish
	)
	check := func(id HostID) {
		if m.check(id) {
			delete(pending, id)
			return
		}
		pending[id] = true
		if retry == nil {
			retry = time.After(monitorRetry)
		}
	}
	stopWatch := func() {
		if kw != nil {
			old := kw
			go func() { _ = old.Stop() }()
		}
		kw, updates = nil, nil
	}
	defer stopWatch()
	for {
		changed := m.w.Changed()
		if t := m.w.Table(); t != table || (kw == nil && retry == nil && len(targets) > 0) {
			table = t
			if next := Watched(t, m.self, MonitorPeers); !slices.Equal(next, targets) || kw == nil {
				stopWatch()
				targets, seen = next, make(map[HostID]bool)
				if len(targets) > 0 {
					var err error
					if kw, err = m.watch(targets); err != nil {
						retry = time.After(monitorRetry)
					} else {
						updates = kw.Updates()
					}
				}
			}
		}
		select {
		case <-m.life.Done():
			return
		case <-changed:
		case <-retry:
			retry = nil
			for id := range pending {
				check(id)
			}
		case e, ok := <-updates:
			switch {
			case !ok:
				stopWatch()
				retry = time.After(monitorRetry)
			case e == nil: // the initial entries are in: a key never seen is gone
				for _, id := range targets {
					if !seen[id] {
						check(id)
					}
				}
			default:
				id, ok := protocol.ParseAliveKey(e.Key())
				if !ok {
					continue
				}
				seen[id] = true
				if e.Operation() != jetstream.KeyValuePut || len(e.Value()) == 0 {
					check(id)
				}
			}
		}
	}
}

// watch starts a watch of the liveness keys of ids.
func (m *Monitor) watch(ids []HostID) (jetstream.KeyWatcher, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = AliveKey(id)
	}
	wctx, cancel := context.WithCancel(m.life)
	kw, err := m.kv.WatchFiltered(wctx, keys)
	if err != nil {
		cancel()
		return nil, err
	}
	return keyWatch{kw, cancel}, nil
}

// check removes id's record if it is a protocol-2 record whose incarnation
// no longer holds the liveness key. It returns false when it could not tell
// (the server did not answer), so that the caller tries again.
func (m *Monitor) check(id HostID) bool {
	ctx, cancel := context.WithTimeout(m.life, 5*time.Second)
	defer cancel()
	e, err := m.kv.Get(ctx, HostKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true // gone already
	}
	if err != nil {
		return m.life.Err() != nil
	}
	rec := new(pb.HostRecord)
	if proto.Unmarshal(e.Value(), rec) != nil || rec.GetProtocol() < protocol.AliveRenewalVersion || rec.GetChangedRevision() != 0 {
		// A protocol-1 record expires by its own TTL. So does a record
		// with changed_revision set: only a renewal of the record itself
		// sets it, which a host renewing a liveness key never writes.
		return true
	}
	a, err := m.kv.Get(ctx, AliveKey(id))
	switch {
	case err == nil && string(a.Value()) == rec.GetIncarnation():
		return true // alive
	case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
		return m.life.Err() != nil
	}
	err = m.kv.Purge(ctx, HostKey(id), jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(m.markerTTL))
	switch {
	case err == nil:
		if m.onPurge != nil {
			m.onPurge(id)
		}
		return true
	case jsutil.IsConflict(err):
		return true // the record changed meanwhile: a join or leave of its own
	default:
		return m.life.Err() != nil
	}
}
