package placement

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// Lease defaults: the server drops a host that has not renewed for
// DefaultLeaseTTL; a host renews DefaultRenewals times per TTL (every TTL/2,
// as Consul's clients renew their sessions). Renewals are most of what
// membership costs the server at rest (docs/SCALE.md), so the period is
// long, and a renewal that fails is retried sooner: see LeaseConfig.Renew.
const (
	DefaultLeaseTTL = 4 * time.Second
	DefaultRenewals = 2
)

// ErrHostIDInUse is returned by Join when a live host already holds the id.
var ErrHostIDInUse = errors.New("placement: host id is held by a live host")

// LeaseConfig sets the lease timing. The zero value means the defaults.
type LeaseConfig struct {
	// TTL is the per-message TTL of the record, in whole seconds (the server's
	// granularity), at least 1s.
	TTL time.Duration
	// Renew is the renewal period; 0 means TTL/DefaultRenewals. A try that
	// fails, or lands without an answer, is followed by another a retry
	// interval after it started rather than a whole period, and a try times
	// out after that interval: half of what is left of the lease's validity
	// a period after a renewal, (TTL − Margin − Renew)/2, and at most
	// Renew/2. With the defaults (4 s TTL, 1 s margin) a host tries 2, 2.5
	// and 3 s after its last successful renewal, the last as its lease
	// stops being Valid (at TTL − Margin): a server that does not answer
	// for less than 2.5 s leaves the lease valid throughout.
	Renew time.Duration
	// MarkerTTL is the TTL of the purge marker Leave writes; 0 means
	// DefaultMarkerTTL. Use the bucket's BucketConfig.MarkerTTL.
	MarkerTTL time.Duration
	// OnRenew, if set, is called from the renewal goroutine after each
	// renewal of a held lease, with how long it took and its error (nil on
	// success). It must not block. Metrics use it.
	OnRenew func(took time.Duration, err error)
	// Margin is how long before the lease can expire on the server the host
	// stops trusting it (see Lease.Valid); 0 means TTL/4.
	Margin time.Duration
	// OnValid, if set, is called with the record's incarnation and the new
	// ValidUntil each time a write extends the lease, before Valid reports
	// the extension: an audit log written from it never shows less than
	// the host may act on. It runs with the lease locked and must be quick.
	OnValid func(incarnation string, until time.Time)
	// Liveness is the bucket of the liveness key (EnsureLivenessBucket); nil
	// means the membership bucket itself, where hosts kept it before the
	// liveness bucket. With a liveness bucket the host also keeps its
	// incarnation, without a TTL, under alive.<id> in the membership bucket,
	// which tells monitors that still look there that it lives (PROTOCOL.md,
	// "Membership bucket").
	Liveness jetstream.KeyValue
	// EnsureLiveness, if set, creates the liveness bucket again; the lease
	// calls it when a liveness write finds no bucket (a single server that
	// restarted forgets a bucket kept in memory).
	EnsureLiveness func(context.Context) error
}

func (c LeaseConfig) withDefaults() (LeaseConfig, error) {
	if c.TTL == 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.TTL < time.Second || c.TTL%time.Second != 0 {
		return c, fmt.Errorf("placement: lease TTL %v must be a whole number of seconds, at least 1s", c.TTL)
	}
	if c.Renew == 0 {
		c.Renew = c.TTL / DefaultRenewals
	}
	if c.Renew <= 0 || c.Renew > c.TTL/2 {
		return c, fmt.Errorf("placement: renewal period %v must be positive and at most half the TTL %v", c.Renew, c.TTL)
	}
	if c.MarkerTTL == 0 {
		c.MarkerTTL = DefaultMarkerTTL
	}
	if c.Margin == 0 {
		c.Margin = c.TTL / 4
	}
	if c.Margin < 0 || c.Margin >= c.TTL-c.Renew {
		return c, fmt.Errorf("placement: lease margin %v must be positive and below the TTL less one renewal period (%v)", c.Margin, c.TTL-c.Renew)
	}
	return c, nil
}

// retry is the interval after a try that did not extend the lease, and the
// time a try may take (see Renew); c has its defaults.
func (c LeaseConfig) retry() time.Duration {
	return min(c.Renew/2, (c.TTL-c.Margin-c.Renew)/2)
}

// Lease keeps a host in the membership bucket. Join writes the host record
// hosts.<id>, which carries no TTL and changes only on join, drain and leave,
// and the liveness key alive.<id> in the liveness bucket, which carries the
// lease TTL and which the Lease renews in a loop it owns. Only the host's
// monitors (see Monitor) watch alive.<id>; when it expires they remove
// hosts.<id>, which every watcher sees. Leave stops the loop and removes the
// keys. All methods are safe for concurrent use.
type Lease struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue // the membership bucket
	live   jetstream.KeyValue // the liveness bucket: kv when it has none
	cfg    LeaseConfig
	key    string // hosts.<id>
	alive  string // alive.<id>
	stop   chan struct{}
	done   chan struct{}
	onLost func(error)

	// epoch anchors validUntil on the monotonic clock.
	epoch time.Time
	// validUntil is, in nanoseconds since epoch, the send time of the last
	// successful liveness write plus TTL minus Margin; 0 when the lease is
	// not held.
	validUntil atomic.Int64
	// lastValid is validUntil as the last successful write set it; giving
	// the lease up does not clear it.
	lastValid atomic.Int64

	mu       sync.Mutex
	rec      *pb.HostRecord // the record as last written
	rev      uint64         // revision of our last write of hosts.<id>; 0 when not held
	aliveRev uint64         // revision of our last write of alive.<id>
	// stubRev is the revision of our incarnation's alive.<id> in the
	// membership bucket, kept there when live is apart; 0 when none.
	stubRev uint64
	renewed time.Time // send time of the last successful liveness write
	// forfeited is the revision of the liveness key Forfeit left behind,
	// which the next join removes first; 0 when none.
	forfeited uint64
	// replacing is set by Forfeit until onLost calls Replace: the renewal
	// loop must not join again with the forfeited incarnation's record.
	replacing bool
	// gaveUp holds the last incarnations Replace took the place of: this
	// process's own, given up after a lost lease, so no longer acting.
	gaveUp   []string
	stopOnce sync.Once
}

// errInUse is the conflict of a join with a live host of the same id.
var errInUse = errors.New("placement: the id's liveness key or record is held")

// Join writes rec under hosts.<rec.HostId>, after taking alive.<rec.HostId>
// with the lease TTL, and starts renewing the latter. It fails with
// ErrHostIDInUse when another live host holds the id. onLost, if not nil, is
// called from the renewal goroutine whenever the lease is found lost (the
// liveness key expired or was overwritten); the Lease then keeps trying to
// join again with the same record.
//
// A record of the same id left by an earlier incarnation whose liveness key
// has expired (a crashed process, not yet removed by its monitors) is
// replaced. A record of a protocol-1 host, which renews the record itself,
// holds the id until it expires.
//
// The record announces at least protocol version 2 (HostRecord.protocol):
// the version whose hosts renew the liveness key rather than the record.
//
// Join makes one try. After a transient error (jsutil.Transient) the caller
// may call it again with the same record: keys of the same incarnation that
// an earlier try stored without its answer arriving are taken over, not met
// as another host's.
func Join(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, rec *pb.HostRecord, cfg LeaseConfig, onLost func(error)) (*Lease, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := HostID(rec.GetHostId()).Validate(); err != nil {
		return nil, err
	}
	l := &Lease{
		js: js, kv: kv, cfg: cfg,
		key:    HostKey(HostID(rec.GetHostId())),
		alive:  AliveKey(HostID(rec.GetHostId())),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		onLost: onLost,
		rec:    proto.Clone(rec).(*pb.HostRecord),
		epoch:  time.Now(),
		live:   cfg.Liveness,
	}
	if l.live == nil {
		l.live = kv
	}
	l.stamp(l.rec)
	if err := l.create(ctx); err != nil {
		if errors.Is(err, errInUse) {
			return nil, fmt.Errorf("%w: %s", ErrHostIDInUse, rec.GetHostId())
		}
		return nil, fmt.Errorf("placement: join as %s: %w", rec.GetHostId(), err)
	}
	go l.loop()
	return l, nil
}

// AliveKey is protocol.AliveKey: the liveness key of a host.
func AliveKey(id HostID) string { return protocol.AliveKey(id) }

// apart reports whether the liveness key lives in a bucket of its own.
func (l *Lease) apart() bool { return l.live != l.kv }

// stamp sets what the lease writes into every record it writes: the
// protocol version of liveness keys, the liveness bucket and the lease TTL,
// and changed_revision 0 (it never renews the record itself).
func (l *Lease) stamp(rec *pb.HostRecord) {
	rec.ChangedRevision = 0
	rec.Protocol = max(rec.GetProtocol(), protocol.AliveRenewalVersion)
	rec.LivenessBucket = ""
	if l.apart() {
		rec.LivenessBucket = l.live.Bucket()
	}
	rec.LeaseTtlMs = uint64(l.cfg.TTL.Milliseconds())
}

// Withdraw removes rec's host record and liveness keys if the buckets hold
// that very incarnation's: the cleanup of a join given up after a try whose
// answer was lost, which may have stored them. Another incarnation's keys
// are left alone. live is the liveness bucket, nil when it is kv itself.
func Withdraw(ctx context.Context, kv, live jetstream.KeyValue, rec *pb.HostRecord, markerTTL time.Duration) error {
	if markerTTL == 0 {
		markerTTL = DefaultMarkerTTL
	}
	id := HostID(rec.GetHostId())
	e, err := ownEntry(ctx, kv, HostKey(id), rec)
	if err != nil {
		return err
	}
	if e != nil {
		if err := purgeIfLatest(ctx, kv, HostKey(id), e.Revision(), markerTTL); err != nil {
			return fmt.Errorf("placement: withdraw %s: %w", id, err)
		}
	}
	buckets := []jetstream.KeyValue{kv}
	if live != nil && live != kv {
		buckets = append(buckets, live)
	}
	for _, b := range buckets {
		a, err := ownAlive(ctx, b, AliveKey(id), rec.GetIncarnation())
		if err != nil {
			return err
		}
		if a == nil {
			continue
		}
		if err := purgeIfLatest(ctx, b, AliveKey(id), a.Revision(), markerTTL); err != nil {
			return fmt.Errorf("placement: withdraw %s: %w", id, err)
		}
	}
	return nil
}

// purgeIfLatest purges key if rev is still its latest revision; a conflict
// (someone wrote it since) is not an error.
func purgeIfLatest(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64, markerTTL time.Duration) error {
	err := kv.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(markerTTL))
	if err != nil && !jsutil.IsConflict(err) {
		return err
	}
	return nil
}

// ownEntry returns key's latest entry if it is a record of rec's host and
// incarnation, else nil. A record without an incarnation is nobody's own.
func ownEntry(ctx context.Context, kv jetstream.KeyValue, key string, rec *pb.HostRecord) (jetstream.KeyValueEntry, error) {
	if rec.GetIncarnation() == "" {
		return nil, nil
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	stored := new(pb.HostRecord)
	if e.Operation() != jetstream.KeyValuePut || proto.Unmarshal(e.Value(), stored) != nil ||
		stored.GetIncarnation() != rec.GetIncarnation() || stored.GetHostId() != rec.GetHostId() {
		return nil, nil
	}
	return e, nil
}

// ownAlive returns the liveness key's latest entry if it holds incarnation
// inc, else nil.
func ownAlive(ctx context.Context, kv jetstream.KeyValue, key, inc string) (jetstream.KeyValueEntry, error) {
	if inc == "" {
		return nil, nil
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if e.Operation() != jetstream.KeyValuePut || string(e.Value()) != inc {
		return nil, nil
	}
	return e, nil
}

// Revision is the bucket revision of the lease's last write of the host
// record (the join, or a change such as draining), 0 while the lease is not
// held. Liveness renewals do not change it.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// Renewed is the time the last successful liveness write was sent. The
// server cannot expire the liveness key before Renewed plus the TTL
// (assuming clock rates agree).
func (l *Lease) Renewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

// TTL is the lease's time to live.
func (l *Lease) TTL() time.Duration { return l.cfg.TTL }

// Overdue reports whether the last successful liveness write was sent more
// than a renewal period and a retry interval ago (see LeaseConfig.Renew):
// a renewal was missed and the retry after it has not succeeded either.
// The lease may still be Valid.
func (l *Lease) Overdue() bool {
	return time.Since(l.Renewed()) > l.cfg.Renew+l.cfg.retry()
}

// Valid reports whether the host may still act on the lease: it is held, and
// less than TTL minus Margin has passed since the send time of the last
// liveness write that succeeded. The server cannot expire the liveness key
// before that send time plus the TTL, and no monitor removes the host's
// record before the key expired, so a host that stops running turns when
// Valid turns false has stopped Margin before any other host can take its
// actors — provided the host's clock and the server's run at the same rate,
// and what the host sent before reaches the server within Margin or not at
// all.
//
// It reads the monotonic clock and one atomic: cheap enough for every turn.
func (l *Lease) Valid() bool {
	return int64(time.Since(l.epoch)) < l.validUntil.Load()
}

// ValidUntil is the time the last successful write made Valid turn false,
// unless renewed; the zero Time before the first. A lease given up or found
// lost stopped being valid no later than that.
func (l *Lease) ValidUntil() time.Time {
	v := l.lastValid.Load()
	if v == 0 {
		return time.Time{}
	}
	return l.epoch.Add(time.Duration(v))
}

// Replace sets the record the next join writes after the lease was lost,
// for example with a new incarnation. Call it from onLost.
func (l *Lease) Replace(rec *pb.HostRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.rec.GetIncarnation(); old != "" && old != rec.GetIncarnation() {
		l.gaveUp = append(l.gaveUp[max(0, len(l.gaveUp)-7):], old)
	}
	l.rec = proto.Clone(rec).(*pb.HostRecord)
	l.replacing = false
	l.stamp(l.rec)
}

// Invalidate makes Valid false until the next successful write; Leave and
// Stop do it first. A host calls it to stop acting on a lease it is giving up.
func (l *Lease) Invalidate() { l.validUntil.Store(0) }

// held records a successful liveness write sent at sent. l.mu is held.
func (l *Lease) held(sent time.Time) {
	l.renewed = sent
	until := int64(sent.Sub(l.epoch) + l.cfg.TTL - l.cfg.Margin)
	if l.cfg.OnValid != nil {
		l.cfg.OnValid(l.rec.GetIncarnation(), l.epoch.Add(time.Duration(until)))
	}
	l.lastValid.Store(until)
	l.validUntil.Store(until)
}

// Update publishes a record whose meaning changed (for example, draining)
// and returns its revision. It fails if the lease is not held.
func (l *Lease) Update(ctx context.Context, rec *pb.HostRecord) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return 0, errors.New("placement: lease not held")
	}
	next := proto.Clone(rec).(*pb.HostRecord)
	l.stamp(next)
	data, err := proto.Marshal(next)
	if err != nil {
		return 0, err
	}
	rev, err := l.kv.Update(ctx, l.key, data, l.rev)
	if err != nil {
		return 0, err
	}
	l.rev, l.rec = rev, next
	return rev, nil
}

// Leave stops renewing and removes the record, leaving a purge marker that
// every watcher sees, then the liveness keys. It is safe to call more than
// once.
func (l *Lease) Leave(ctx context.Context) error {
	l.Invalidate()
	l.halt()
	l.mu.Lock()
	l.Invalidate()
	rev, alive, stub := l.rev, l.aliveRev, l.stubRev
	l.rev, l.aliveRev, l.stubRev = 0, 0, 0
	l.mu.Unlock()
	if rev == 0 {
		return nil
	}
	if err := purgeIfLatest(ctx, l.kv, l.key, rev, l.cfg.MarkerTTL); err != nil {
		return fmt.Errorf("placement: leave: %w", err)
	}
	if err := purgeIfLatest(ctx, l.live, l.alive, alive, l.cfg.MarkerTTL); err != nil {
		return fmt.Errorf("placement: leave: %w", err)
	}
	if stub != 0 {
		if err := purgeIfLatest(ctx, l.kv, l.alive, stub, l.cfg.MarkerTTL); err != nil {
			return fmt.Errorf("placement: leave: %w", err)
		}
	}
	return nil
}

// Stop stops renewing without removing anything; the liveness key expires
// after the TTL and the host's monitors remove its record, as if the host
// had crashed.
func (l *Lease) Stop() {
	l.Invalidate()
	l.halt()
	l.Invalidate()
}

func (l *Lease) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// loop renews the lease a period after each renewal that extended it, and
// a retry interval after each try that did not.
func (l *Lease) loop() {
	defer close(l.done)
	t := time.NewTimer(l.cfg.Renew)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		next := l.cfg.retry()
		if l.tick() {
			next = l.cfg.Renew
		}
		t.Reset(max(0, next-time.Since(start)))
	}
}

// tick renews a held lease, or tries to take it again after it was lost. It
// reports whether the try extended the lease.
func (l *Lease) tick() bool {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.retry())
	defer cancel()
	if l.Revision() == 0 {
		return l.create(ctx) == nil // on failure, the next tick tries again
	}
	sent := time.Now()
	err := l.renew(ctx)
	if l.cfg.OnRenew != nil {
		l.cfg.OnRenew(time.Since(sent), err)
	}
	if err == nil {
		return true
	}
	if jsutil.IsConflict(err) && l.ownLatest(ctx) {
		// An earlier try landed unanswered: the next one succeeds, but
		// Valid still counts from the last answered one.
		return false
	}
	// No bucket means no key: a server that kept the liveness bucket in
	// memory restarted, and the key went with it.
	gone := l.bucketGone(err)
	if gone {
		err = fmt.Errorf("placement: the liveness bucket %s is gone (a server that kept it in memory restarted?): %w", l.live.Bucket(), err)
	}
	lost := jsutil.IsConflict(err) || gone || time.Since(l.Renewed()) >= l.cfg.TTL
	if !lost {
		return false // transient: the next tick tries again
	}
	l.mu.Lock()
	l.rev, l.aliveRev = 0, 0
	l.Invalidate()
	l.mu.Unlock()
	if l.onLost != nil {
		l.onLost(err)
	}
	return false
}

// Forfeit gives the lease up because the host record written at revision
// rev was removed or replaced by someone else (an operator's purge, say):
// every other host now counts this host as gone, so it must stop acting at
// once. It then behaves as a lost lease: onLost is called (from the caller's
// goroutine) and the renewal loop joins again with the record Replace sets.
// It does nothing if the lease has written the record again since rev.
func (l *Lease) Forfeit(rev uint64, cause error) {
	l.mu.Lock()
	if rev == 0 || l.rev != rev {
		l.mu.Unlock()
		return
	}
	l.Invalidate()
	l.rev, l.forfeited, l.aliveRev = 0, l.aliveRev, 0
	l.replacing = l.onLost != nil
	l.mu.Unlock()
	if l.onLost != nil {
		l.onLost(cause)
	}
}

// ownLatest reports whether the liveness key's latest entry is this lease's
// own incarnation's, newer than the last write it saw acknowledged: a
// renewal whose answer was lost (a stream leader change, a cut connection)
// but that was stored. The lease then adopts that revision. Valid keeps
// counting from the last acknowledged send, which is earlier, so the fence
// stays conservative.
func (l *Lease) ownLatest(ctx context.Context) bool {
	l.mu.Lock()
	inc := l.rec.GetIncarnation()
	l.mu.Unlock()
	e, err := ownAlive(ctx, l.live, l.alive, inc)
	if err != nil || e == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || e.Revision() <= l.aliveRev || l.rec.GetIncarnation() != inc {
		return false
	}
	l.aliveRev = e.Revision()
	return true
}

// create joins: it takes the liveness key, then writes the host record. The
// lease is Valid from the send time of the liveness write once both landed.
// A failure after the liveness write leaves the key to a retry of the same
// incarnation, which takes it over; errInUse undoes it.
func (l *Lease) create(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.replacing {
		return nil // Forfeit's onLost has not set the next record yet: the next tick
	}
	rec := proto.Clone(l.rec).(*pb.HostRecord)
	l.stamp(rec)
	if l.forfeited != 0 {
		if err := purgeIfLatest(ctx, l.live, l.alive, l.forfeited, l.cfg.MarkerTTL); err != nil && !l.bucketGone(err) {
			return err
		}
		l.forfeited = 0
	}
	sent, fresh, err := l.takeAliveLocked(ctx, rec.GetIncarnation())
	if err != nil && l.cfg.EnsureLiveness != nil && l.bucketGone(err) {
		// A context of its own for the rest: the failed write may have
		// used up ctx.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.Background(), l.cfg.TTL)
		defer cancel()
		if eerr := l.cfg.EnsureLiveness(ctx); eerr != nil {
			return fmt.Errorf("%w; creating the liveness bucket again: %w", err, eerr)
		}
		sent, fresh, err = l.takeAliveLocked(ctx, rec.GetIncarnation())
	}
	if err != nil {
		return err
	}
	if l.apart() {
		err = l.takeStubLocked(ctx, rec.GetIncarnation())
	}
	var rev uint64
	if err == nil {
		rev, err = l.writeRecordLocked(ctx, rec, fresh)
	}
	if errors.Is(err, errInUse) && l.aliveRev != 0 {
		_ = l.live.Purge(ctx, l.alive, jetstream.LastRevision(l.aliveRev), jetstream.PurgeTTL(l.cfg.MarkerTTL))
		l.aliveRev = 0
	}
	if err != nil {
		return err
	}
	l.rec, l.rev = rec, rev
	l.held(sent)
	return nil
}

// takeAliveLocked creates the liveness key with value inc, or takes over
// one an earlier try of the same incarnation stored without its answer
// arriving, renewing it at once (that try's send time is unknown). It
// returns the send time of the write that succeeded. l.mu is held.
func (l *Lease) takeAliveLocked(ctx context.Context, inc string) (sent time.Time, fresh bool, err error) {
	if l.apart() {
		if fresh, err = l.holdLostLocked(ctx, inc); err != nil {
			return time.Now(), false, err
		}
	}
	sent = time.Now()
	rev, err := l.live.Create(ctx, l.alive, []byte(inc), jetstream.KeyTTL(l.cfg.TTL))
	if err == nil {
		l.aliveRev = rev
		return sent, fresh, nil
	}
	if !jsutil.IsConflict(err) {
		return sent, false, err
	}
	e, gerr := ownAlive(ctx, l.live, l.alive, inc)
	if gerr != nil {
		return sent, false, gerr
	}
	if e == nil {
		return sent, false, fmt.Errorf("%w: %w", errInUse, err)
	}
	l.aliveRev = e.Revision()
	sent = time.Now()
	if err := l.renewAliveLocked(ctx, inc); err != nil {
		l.aliveRev = 0
		return sent, false, err
	}
	return sent, false, nil
}

// writeRecordLocked writes the host record once the liveness key is ours,
// and returns its revision. It replaces the record of an earlier
// incarnation (dead: its liveness key expired, or this create would have
// failed) and takes over its own incarnation's record from an earlier try;
// a protocol-1 host's record, which renews itself, means the id is in use.
// fresh says that the liveness key had no message at all before this join
// created it: a record of another incarnation written since then (it
// joined as the bucket was lost) is waited out as holdLostLocked does.
// l.mu is held.
func (l *Lease) writeRecordLocked(ctx context.Context, rec *pb.HostRecord, fresh bool) (uint64, error) {
	data, err := proto.Marshal(rec)
	if err != nil {
		return 0, err
	}
	for range 3 {
		rev, err := l.kv.Create(ctx, l.key, data)
		if err == nil || !jsutil.IsConflict(err) {
			return rev, err
		}
		e, err := l.kv.Get(ctx, l.key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile: create again
		}
		if err != nil {
			return 0, err
		}
		stored := new(pb.HostRecord)
		if proto.Unmarshal(e.Value(), stored) == nil && stored.GetHostId() == rec.GetHostId() {
			if rec.GetIncarnation() != "" && stored.GetIncarnation() == rec.GetIncarnation() {
				return e.Revision(), nil // our own earlier try
			}
			if stored.GetProtocol() < protocol.AliveRenewalVersion {
				return 0, fmt.Errorf("%w: a protocol-1 host holds the record", errInUse)
			}
			if fresh && l.apart() && l.mayActOn(stored, rec.GetIncarnation()) {
				err := l.holdForLocked(ctx, stored, l.aliveRev)
				if errors.Is(err, errInUse) {
					l.aliveRev = 0 // the key is the other incarnation's now
				}
				return 0, err
			}
		}
		rev, err = l.kv.Update(ctx, l.key, data, e.Revision())
		if err == nil || !jsutil.IsConflict(err) {
			return rev, err
		}
	}
	return 0, fmt.Errorf("placement: the record of %s kept changing while joining", rec.GetHostId())
}

func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return errors.New("placement: lease not held")
	}
	sent := time.Now()
	if err := l.renewAliveLocked(ctx, l.rec.GetIncarnation()); err != nil {
		return err
	}
	l.held(sent)
	return nil
}

// renewAliveLocked re-publishes the liveness key with the lease TTL,
// expecting our own last write to be the key's latest: KV Update cannot
// carry a TTL, so this goes to the key's subject directly. l.mu is held.
func (l *Lease) renewAliveLocked(ctx context.Context, inc string) error {
	ack, err := l.js.Publish(ctx, protocol.KVSubject(l.live.Bucket(), l.alive), []byte(inc),
		jetstream.WithMsgTTL(l.cfg.TTL),
		jetstream.WithExpectLastSequencePerSubject(l.aliveRev))
	if err != nil {
		return err
	}
	l.aliveRev = ack.Sequence
	return nil
}

// holdLostLocked refuses the id while another incarnation may still act on
// it. A liveness key with no message at all, not even an expiry marker, was
// lost with its bucket (a server that kept it in memory restarted) rather
// than expired, and the incarnation whose record still stands may be acting
// on its lease: holdLostLocked writes that incarnation's key again (see
// holdForLocked) and refuses the join as in use. A try after the server
// expired the key finds its marker and goes ahead. It reports whether the
// key had no message at all (fresh), which writeRecordLocked needs too.
// l.mu is held.
func (l *Lease) holdLostLocked(ctx context.Context, inc string) (fresh bool, err error) {
	_, err = lastMsg(ctx, l.js, l.live.Bucket(), l.alive)
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, err // nil: the key or its marker is there, and Create decides
	}
	e, err := l.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, nil
	}
	if err != nil {
		return true, err
	}
	stored := new(pb.HostRecord)
	if proto.Unmarshal(e.Value(), stored) != nil || !l.mayActOn(stored, inc) {
		return true, nil
	}
	return true, l.holdForLocked(ctx, stored, 0)
}

// mayActOn reports whether the record stored under the host's key belongs
// to another incarnation that keeps its liveness key in this lease's
// liveness bucket and that this lease did not give up itself (Replace):
// one that may still be acting when its key was lost rather than expired.
func (l *Lease) mayActOn(stored *pb.HostRecord, inc string) bool {
	return stored.GetHostId() == l.rec.GetHostId() && stored.GetIncarnation() != "" && stored.GetIncarnation() != inc &&
		!slices.Contains(l.gaveUp, stored.GetIncarnation()) &&
		stored.GetLivenessBucket() == l.live.Bucket() && stored.GetChangedRevision() == 0
}

// holdForLocked writes the liveness key of the incarnation of record stored
// again, with that record's lease TTL (as a monitor waits that long for a
// lost key, see Monitor), expecting the key's last revision to be expect,
// and returns the join's refusal as in use. l.mu is held.
func (l *Lease) holdForLocked(ctx context.Context, stored *pb.HostRecord, expect uint64) error {
	_, err := l.js.Publish(ctx, protocol.KVSubject(l.live.Bucket(), l.alive), []byte(stored.GetIncarnation()),
		jetstream.WithMsgTTL(leaseTTLOf(stored)), jetstream.WithExpectLastSequencePerSubject(expect))
	if err != nil && !jsutil.IsConflict(err) {
		return err
	}
	return fmt.Errorf("%w: the liveness key of incarnation %s was lost, not expired; it holds the id until the key, written again, expires",
		errInUse, stored.GetIncarnation())
}

// takeStubLocked keeps the incarnation inc, without a TTL, under alive.<id>
// in the membership bucket, once the liveness key in the liveness bucket is
// ours: monitors that look for liveness keys there (hosts before the
// liveness bucket) then find the host alive rather than remove it. It
// replaces what an earlier incarnation left there, unless that is a
// liveness key with a TTL: the key of a live host that renews it there.
// l.mu is held.
func (l *Lease) takeStubLocked(ctx context.Context, inc string) error {
	for range 3 {
		rev, err := l.kv.Create(ctx, l.alive, []byte(inc))
		if err == nil || !jsutil.IsConflict(err) {
			l.stubRev = rev
			return err
		}
		m, err := lastMsg(ctx, l.js, l.kv.Bucket(), l.alive)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // removed meanwhile: create again
		}
		if err != nil {
			return err
		}
		removed := m.Header.Get(protocol.HeaderKVOperation) != "" || m.Header.Get(jetstream.MarkerReasonHeader) != ""
		switch {
		case removed: // a delete or an expiry marker: nobody's
		case string(m.Data) == inc:
			l.stubRev = m.Sequence // our own earlier try
			return nil
		case m.Header.Get(jetstream.MsgTTLHeader) != "":
			return fmt.Errorf("%w: a host renews %s in the membership bucket", errInUse, l.alive)
		}
		rev, err = l.kv.Update(ctx, l.alive, []byte(inc), m.Sequence)
		if err == nil || !jsutil.IsConflict(err) {
			l.stubRev = rev
			return err
		}
	}
	return fmt.Errorf("placement: %s kept changing while joining", l.alive)
}

// lastMsg is the latest message of key in bucket, headers included (a KV
// entry has none).
func lastMsg(ctx context.Context, js jetstream.JetStream, bucket, key string) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, protocol.KVStream(bucket))
	if err != nil {
		return nil, err
	}
	return s.GetLastMsgForSubject(ctx, protocol.KVSubject(bucket, key))
}

// bucketGone reports whether the liveness write that failed with err found
// no liveness bucket. A write to a subject no stream takes fails with "no
// responders", which nats.go retries (a stream leader may be moving) until
// the try's deadline; only JetStream's own answer that the stream does not
// exist settles it.
func (l *Lease) bucketGone(err error) bool {
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return true
	}
	if !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.retry())
	defer cancel()
	_, err = l.js.Stream(ctx, protocol.KVStream(l.live.Bucket()))
	return errors.Is(err, jetstream.ErrStreamNotFound)
}
