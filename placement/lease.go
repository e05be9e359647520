package placement

import (
	"context"
	"errors"
	"fmt"
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
// DefaultLeaseTTL; a host renews DefaultLeaseTTL/DefaultRenewals times per TTL.
const (
	DefaultLeaseTTL = 4 * time.Second
	DefaultRenewals = 4
)

// ErrHostIDInUse is returned by Join when a live host already holds the id.
var ErrHostIDInUse = errors.New("placement: host id is held by a live host")

// LeaseConfig sets the lease timing. The zero value means the defaults.
type LeaseConfig struct {
	// TTL is the per-message TTL of the record, in whole seconds (the server's
	// granularity), at least 1s.
	TTL time.Duration
	// Renew is the renewal period; 0 means TTL/DefaultRenewals.
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

// Lease keeps a host's record alive in the membership bucket. Join writes
// the record and starts a renewal loop owned by the Lease; Leave stops the
// loop and removes the record. All methods are safe for concurrent use.
type Lease struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	cfg    LeaseConfig
	key    string
	stop   chan struct{}
	done   chan struct{}
	onLost func(error)

	// epoch anchors validUntil on the monotonic clock.
	epoch time.Time
	// validUntil is, in nanoseconds since epoch, the send time of the last
	// successful write plus TTL minus Margin; 0 when the lease is not held.
	validUntil atomic.Int64
	// lastValid is validUntil as the last successful write set it; giving
	// the lease up does not clear it.
	lastValid atomic.Int64

	mu       sync.Mutex
	rec      *pb.HostRecord // what the next renewal publishes
	rev      uint64         // revision of our last write; 0 when not held
	renewed  time.Time      // send time of the last successful write
	stopOnce sync.Once
}

// Join writes rec under hosts.<rec.HostId> with the lease TTL and starts
// renewing it. It fails with ErrHostIDInUse when another live host holds the
// id. onLost, if not nil, is called from the renewal goroutine whenever the
// lease is found lost (the record expired or was overwritten); the Lease then
// keeps trying to join again with the same record.
//
// Join makes one try. After a transient error (jsutil.Transient) the caller
// may call it again with the same record: a record of the same incarnation
// that an earlier try stored without its answer arriving is taken over, not
// met as another host's.
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
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		onLost: onLost,
		rec:    proto.Clone(rec).(*pb.HostRecord),
		epoch:  time.Now(),
	}
	l.rec.ChangedRevision = 0
	err = l.create(ctx)
	if jsutil.IsConflict(err) {
		err = l.adopt(ctx, err)
	}
	if err != nil {
		if jsutil.IsConflict(err) {
			return nil, fmt.Errorf("%w: %s", ErrHostIDInUse, rec.GetHostId())
		}
		return nil, fmt.Errorf("placement: join as %s: %w", rec.GetHostId(), err)
	}
	go l.loop()
	return l, nil
}

// Withdraw removes rec's host record if the bucket holds that very
// incarnation: the cleanup of a join given up after a try whose answer was
// lost, which may have stored the record. Another incarnation's record is
// left alone.
func Withdraw(ctx context.Context, kv jetstream.KeyValue, rec *pb.HostRecord, markerTTL time.Duration) error {
	if markerTTL == 0 {
		markerTTL = DefaultMarkerTTL
	}
	key := HostKey(HostID(rec.GetHostId()))
	e, err := ownEntry(ctx, kv, key, rec)
	if err != nil || e == nil {
		return err
	}
	err = kv.Purge(ctx, key, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
	if err != nil && !jsutil.IsConflict(err) {
		return fmt.Errorf("placement: withdraw %s: %w", rec.GetHostId(), err)
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

// Revision is the bucket revision of the lease's last successful write, 0
// while the lease is not held.
func (l *Lease) Revision() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev
}

// Renewed is the time the last successful write was sent. The server cannot
// expire the record before Renewed plus the TTL (assuming clock rates agree).
func (l *Lease) Renewed() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed
}

// TTL is the lease's time to live.
func (l *Lease) TTL() time.Duration { return l.cfg.TTL }

// Valid reports whether the host may still act on the lease: it is held, and
// less than TTL minus Margin has passed since the send time of the last write
// that succeeded. The server cannot expire the record before that send time
// plus the TTL, so a host that stops running turns when Valid turns false
// has stopped Margin before any other host can take its actors — provided
// the host's clock and the server's run at the same rate, and what the host
// sent before reaches the server within Margin or not at all.
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
	l.rec = proto.Clone(rec).(*pb.HostRecord)
	l.rec.ChangedRevision = 0
}

// Invalidate makes Valid false until the next successful write; Leave and
// Stop do it first. A host calls it to stop acting on a lease it is giving up.
func (l *Lease) Invalidate() { l.validUntil.Store(0) }

// held records a successful write sent at sent with revision rev. l.mu is held.
func (l *Lease) held(rev uint64, sent time.Time) {
	l.rev, l.renewed = rev, sent
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
	next.ChangedRevision = 0
	rev, err := l.publishLocked(ctx, next)
	if err != nil {
		return 0, err
	}
	next.ChangedRevision = rev
	l.rec = next
	return rev, nil
}

// Leave stops renewing and removes the record, leaving a purge marker that
// every watcher sees. It is safe to call more than once.
func (l *Lease) Leave(ctx context.Context) error {
	l.Invalidate()
	l.halt()
	l.mu.Lock()
	l.Invalidate()
	rev := l.rev
	l.rev = 0
	l.mu.Unlock()
	if rev == 0 {
		return nil
	}
	err := l.kv.Purge(ctx, l.key, jetstream.LastRevision(rev), jetstream.PurgeTTL(l.cfg.MarkerTTL))
	if err != nil && !jsutil.IsConflict(err) {
		return fmt.Errorf("placement: leave: %w", err)
	}
	return nil
}

// Stop stops renewing without removing the record; the server expires it
// after the TTL, as if the host had crashed.
func (l *Lease) Stop() {
	l.Invalidate()
	l.halt()
	l.Invalidate()
}

func (l *Lease) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

func (l *Lease) loop() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.Renew)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.tick()
	}
}

// tick renews a held lease, or tries to take it again after it was lost.
func (l *Lease) tick() {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Renew)
	defer cancel()
	if l.Revision() == 0 {
		if err := l.create(ctx); jsutil.IsConflict(err) {
			_ = l.adopt(ctx, err) // on failure, the next tick tries again
		}
		return
	}
	sent := time.Now()
	err := l.renew(ctx)
	if l.cfg.OnRenew != nil {
		l.cfg.OnRenew(time.Since(sent), err)
	}
	if err == nil {
		return
	}
	if jsutil.IsConflict(err) && l.ownLatest(ctx) {
		return // an earlier renewal landed unanswered; the next one succeeds
	}
	lost := jsutil.IsConflict(err) || time.Since(l.Renewed()) >= l.cfg.TTL
	if !lost {
		return // transient: the next tick tries again
	}
	l.mu.Lock()
	l.rev = 0
	l.Invalidate()
	l.mu.Unlock()
	if l.onLost != nil {
		l.onLost(err)
	}
}

// ownLatest reports whether the key's latest entry is a record of this
// lease's own incarnation, newer than the last write it saw acknowledged: a
// renewal whose answer was lost (a stream leader change, a cut connection)
// but that was stored. The lease then adopts that revision. Valid keeps
// counting from the last acknowledged send, which is earlier, so the fence
// stays conservative.
func (l *Lease) ownLatest(ctx context.Context) bool {
	e, err := l.kv.Get(ctx, l.key)
	if err != nil || e.Operation() != jetstream.KeyValuePut {
		return false
	}
	rec := new(pb.HostRecord)
	if proto.Unmarshal(e.Value(), rec) != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 || e.Revision() <= l.rev || rec.GetIncarnation() != l.rec.GetIncarnation() || rec.GetHostId() != l.rec.GetHostId() {
		return false
	}
	l.rev = e.Revision()
	return true
}

// adopt takes over a record that an earlier try of create stored without
// its answer reaching us, and renews it at once; otherwise every later try
// would meet it as a conflict until it expired, and a slow server or a cut
// link could keep a host out for good. The renewal makes the lease Valid
// from its own send time, since the earlier try's is unknown. conflict is
// the create's error, returned when the key holds anything else.
func (l *Lease) adopt(ctx context.Context, conflict error) error {
	l.mu.Lock()
	rec := l.rec
	l.mu.Unlock()
	e, err := ownEntry(ctx, l.kv, l.key, rec)
	if err != nil {
		return err
	}
	if e == nil {
		return conflict
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev != 0 {
		return nil
	}
	next := proto.Clone(l.rec).(*pb.HostRecord)
	next.ChangedRevision = e.Revision()
	l.rev = e.Revision()
	if _, err := l.publishLocked(ctx, next); err != nil {
		l.rev = 0
		return err
	}
	l.rec = next
	return nil
}

func (l *Lease) create(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := proto.Clone(l.rec).(*pb.HostRecord)
	rec.ChangedRevision = 0
	data, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	sent := time.Now()
	rev, err := l.kv.Create(ctx, l.key, data, jetstream.KeyTTL(l.cfg.TTL))
	if err != nil {
		return err
	}
	rec.ChangedRevision = rev
	l.rec = rec
	l.held(rev, sent)
	return nil
}

func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rev == 0 {
		return errors.New("placement: lease not held")
	}
	_, err := l.publishLocked(ctx, l.rec)
	return err
}

// publishLocked re-publishes rec with the lease TTL, expecting our own last
// write to be the key's latest: KV Update cannot carry a TTL, so this goes to
// the key's subject directly.
func (l *Lease) publishLocked(ctx context.Context, rec *pb.HostRecord) (uint64, error) {
	data, err := proto.Marshal(rec)
	if err != nil {
		return 0, err
	}
	sent := time.Now()
	ack, err := l.js.Publish(ctx, protocol.KVSubject(l.kv.Bucket(), l.key), data,
		jetstream.WithMsgTTL(l.cfg.TTL),
		jetstream.WithExpectLastSequencePerSubject(l.rev))
	if err != nil {
		return 0, err
	}
	l.held(ack.Sequence, sent)
	return ack.Sequence, nil
}
