package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/jsutil"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Version is reported in host records.
const Version = "0.1.0"

// Errors of the host's lifecycle.
var (
	ErrStarted    = errors.New("host: already started")
	ErrNotStarted = errors.New("host: not started")
	ErrHostClosed = errors.New("host: closed")
)

// Host serves actors: it holds a lease in the membership bucket, takes calls
// on its own subject for the actors the table gives it, and runs each actor's
// calls one turn at a time.
//
// A Host owns every goroutine it starts (the membership watcher, the lease
// renewal, the table follower, the idle sweeper and the actors' turns);
// Shutdown drains and waits for them, Close stops them without draining.
type Host struct {
	nc  *nats.Conn
	cfg Config
	log *slog.Logger

	types catalog

	// Set by Start.
	js      jetstream.JetStream
	members jetstream.KeyValue
	// liveness is the liveness bucket (placement.EnsureLivenessBucket).
	liveness jetstream.KeyValue
	store    *stateStore
	w        *placement.Watcher
	// monitor removes the records of crashed peers; nil until joined. The
	// lease's goroutine reads it when the lease is lost.
	monitor atomic.Pointer[placement.Monitor]
	// collect writes the settled record while this host is a collector; nil
	// until joined. Release notices reach it from the subscription's
	// goroutine, which starts first.
	collect atomic.Pointer[placement.Collector]
	router  *router.Router
	sub     *nats.Subscription // the host's own subject
	gw      *nats.Subscription // the gateway; nil when disabled
	subject string

	replies *replies
	probe   *prober    // checks that directly forwarded calls were taken (probe.go)
	obs     *observer  // metrics and tracing; nil when off
	rem     *reminders // delivers fired reminders; nil when disabled
	ops     ops        // admin and service discovery (admin.go, discovery.go)

	rec hostRecord // the record the lease publishes

	subsMu sync.Mutex
	subs   map[string]*subStats // stream subscriptions' counts by "<type>/<name>" (puller.go)

	fence    *fence        // whether activations may act; holds the lease
	eng      *engine       // what the activations share (engine.go)
	sweeper  *sweeper      // deactivates idle activations; nil until joined
	released *watermark    // the generation the host last released at
	recorded atomic.Uint64 // the generation of its last release record, or of one the settled record covered
	// unrecorded is the generation of the host's latest release that it
	// told the collectors of without writing its record (recordReleases).
	unrecorded *watermark
	// drainedAt is the revision of the host's drain (0 before): every table
	// from it on gives the host nothing, so from then on it owns nothing,
	// whatever table its watch has brought so far.
	drainedAt atomic.Uint64

	started  atomic.Bool
	joined   atomic.Bool // Start succeeded
	stop     chan struct{}
	loops    sync.WaitGroup // the host's own loops
	intake   *intake        // reads sub (intake.go)
	stopOnce sync.Once
}

// New returns a host that will serve on nc once started. Register actor
// types, then call Start.
func New(nc *nats.Conn, cfg Config) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	h := &Host{
		nc:    nc,
		cfg:   cfg,
		log:   cfg.Logger.With("host", string(cfg.ID)),
		types: make(catalog),
		stop:  make(chan struct{}),

		fence:      newFence(cfg.ID),
		released:   newWatermark(),
		unrecorded: newWatermark(),
	}
	h.eng = &engine{
		rt:           hostRuntime{h},
		clock:        clockOf(cfg.Clock),
		host:         cfg.ID,
		log:          h.log,
		callTimeout:  cfg.CallTimeout,
		saveTimeout:  cfg.SaveTimeout,
		onActivation: cfg.OnActivation,
	}
	h.replies = newReplies(nc, func(err error) { h.log.Debug("reply not sent", "err", err) })
	var err error
	if h.obs, err = newObserver(h); err != nil {
		return nil, err
	}
	h.eng.obs = h.obs
	return h, nil
}

// ID is the host's id.
func (h *Host) ID() placement.HostID { return h.cfg.ID }

// Subject is where the host takes calls.
func (h *Host) Subject() string { return protocol.HostSubject(h.cfg.SubjectPrefix, h.cfg.ID) }

// Router calls actors through the host's membership watcher. Valid after
// Start.
func (h *Host) Router() *router.Router { return h.router }

// Register adds an actor type with the factory that makes its activations.
// It must be called before Start.
func (h *Host) Register(typ placement.ActorType, factory Factory, opts ...TypeOption) error {
	if h.started.Load() {
		return ErrStarted
	}
	t, err := newActorType(h.cfg, h.types, typ, factory, opts)
	if err != nil {
		return err
	}
	h.types[typ] = t
	h.obs.addType(typ)
	return nil
}

// Start creates the buckets if needed, starts following the membership,
// subscribes to the host's subject and joins the member set. It returns once
// the host's own table includes it and the server has all its subscriptions.
//
// Start rides out what time cures, retrying with backoff until ctx ends: no
// JetStream yet, a link cut or a reply lost while it creates the buckets,
// reads the member set or joins, and a record of the host's id still held by
// its previous process (Start waits for that lease to expire). Each change
// of what it waits for is logged once. It fails at once on what time does
// not cure (see jsutil.Transient): a closed connection, a bucket made for
// another placement function, a stream of another shape. When ctx ends
// first, the error wraps ctx's and the last thing it waited for, and
// nothing of the host is left in the buckets.
func (h *Host) Start(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	if err := h.start(ctx); err != nil {
		h.abandonStart()
		return err
	}
	h.joined.Store(true)
	h.log.Info("host joined", "subject", h.subject, "types", h.types.names(), "generation", h.w.Table().Generation())
	if h.nc.Opts.ReconnectBufSize >= 0 {
		h.log.Warn("the NATS connection buffers messages while reconnecting (nats.ReconnectBufSize); " +
			"a state save buffered past the host's lease can land after another host took the actor. Use nats.ReconnectBufSize(-1)")
	}
	return nil
}

// startTryTimeout bounds one try of a start step, so that a request whose
// reply was lost is sent again instead of waiting for Start's context.
const startTryTimeout = 5 * time.Second

func (h *Host) start(ctx context.Context) error {
	if err := h.obs.start(); err != nil {
		return err
	}
	var err error
	if h.js, err = jetstream.New(h.nc); err != nil {
		return err
	}
	var reminders jetstream.Consumer
	err = h.startStep(ctx, "create the buckets", nil, func(ctx context.Context) (err error) {
		if h.members, err = placement.EnsureBucket(ctx, h.js, h.cfg.Membership); err != nil {
			return err
		}
		if h.liveness, err = placement.EnsureLivenessBucket(ctx, h.js, h.cfg.Membership); err != nil {
			return err
		}
		state, err := ensureStateBucket(ctx, h.js, h.cfg)
		if err != nil {
			return err
		}
		h.store = &stateStore{nc: h.nc, js: h.js, kv: state, gate: h.fence, timeout: h.cfg.SaveTimeout}
		reminders, err = h.ensureReminders(ctx)
		return err
	})
	if err != nil {
		return err
	}
	err = h.startStep(ctx, "read the member set", nil, func(ctx context.Context) (err error) {
		h.w, err = placement.Watch(ctx, h.members)
		return err
	})
	if err != nil {
		return err
	}
	h.w.FollowReconnects(h.nc)
	if h.router, err = router.New(ctx, h.nc, h.obs.routerConfig(router.Config{Watcher: h.w, SubjectPrefix: h.cfg.SubjectPrefix, ReminderStream: h.cfg.ReminderStream})); err != nil {
		return err
	}
	h.goLoop(func() { h.replies.loop(h.stop) })
	if h.probe, err = newProber(h); err != nil {
		return fmt.Errorf("host: subscribe for probes: %w", err)
	}
	h.goLoop(func() { h.probe.loop(h.stop) })
	h.subject = h.Subject()
	h.intake = newIntake(h)
	if h.sub, err = h.nc.ChanSubscribe(h.subject, h.intake.msgs); err != nil {
		return fmt.Errorf("host: subscribe %s: %w", h.subject, err)
	}
	h.intake.start()
	if !h.cfg.DisableGateway {
		gateway := protocol.GatewaySubjects(h.cfg.SubjectPrefix)
		if h.gw, err = h.nc.QueueSubscribe(gateway, protocol.GatewayQueue(h.cfg.SubjectPrefix), h.serveGateway); err != nil {
			return fmt.Errorf("host: subscribe %s: %w", gateway, err)
		}
		_ = h.gw.SetPendingLimits(-1, -1)
	}
	leaseCfg := h.cfg.Lease
	if leaseCfg.MarkerTTL == 0 {
		leaseCfg.MarkerTTL = h.cfg.Membership.MarkerTTL
	}
	leaseCfg.Liveness = h.liveness
	leaseCfg.EnsureLiveness = func(ctx context.Context) error {
		_, err := placement.EnsureLivenessBucket(ctx, h.js, h.cfg.Membership)
		return err
	}
	report, joined := h.cfg.OnLeaseValid, ""
	leaseCfg.OnValid = func(inc string, until time.Time) {
		if report != nil {
			report(LeaseRecord{Host: h.cfg.ID, Incarnation: inc, ValidUntil: until})
		}
		if inc != joined {
			if joined != "" { // after "lease lost; ... joining again"
				h.log.Info("host joined again", "incarnation", inc)
			}
			joined = inc
		}
	}
	h.rec.set(&pb.HostRecord{
		HostId:        string(h.cfg.ID),
		Subject:       h.Subject(),
		ActorTypes:    h.types.names(),
		State:         pb.HostState_HOST_STATE_ACTIVE,
		Incarnation:   randomIncarnation(),
		StartedUnixMs: time.Now().UnixMilli(),
		Version:       Version,
		Protocol:      protocol.Version,
		Reminders:     !h.cfg.DisableReminders,
	})
	h.obs.watchLease(&leaseCfg)
	if err := h.join(ctx, leaseCfg); err != nil {
		return err
	}
	if err := h.w.WaitApplied(ctx, h.lease().Revision()); err != nil {
		return fmt.Errorf("host: waiting to see own join: %w", err)
	}
	h.monitor.Store(placement.StartMonitor(h.members, h.w, h.cfg.ID, placement.MonitorConfig{
		MarkerTTL: h.markerTTL(),
		Liveness:  h.liveness,
		OnPurge: func(id placement.HostID) {
			h.log.Info("removed the record of a host whose lease expired", "peer", id)
		},
	}))
	h.collect.Store(placement.StartCollector(h.members, h.w, h.cfg.ID, h.nc))
	h.goLoop(h.followTable)
	h.goLoop(h.recordReleases)
	h.sweeper = startSweeper(h.types, h.eng.clock)
	if err := h.startOps(); err != nil {
		return err
	}
	if err := h.startReminders(reminders); err != nil {
		return err
	}
	h.goLoop(h.followSubs)
	// Subscribing only sends SUB: one round trip makes sure the server has
	// every subscription above, so that a client calling the moment Start
	// returns does not meet "no responders". A link that drops now takes
	// nothing away: the client subscribes again when it reconnects.
	fctx, cancel := context.WithTimeout(ctx, startTryTimeout) // Flush wants a deadline
	defer cancel()
	if err := h.nc.FlushWithContext(fctx); err != nil && ctx.Err() != nil {
		return fmt.Errorf("host: confirming subscriptions: %w", err)
	}
	return nil
}

// join takes the host's lease. A record of the same id that is still live
// is most often this host's previous process, killed before its lease ran
// out: join waits for it to expire, until ctx ends. A try whose answer was
// lost is safe to repeat: placement.Join takes over the record an earlier
// try of this incarnation stored.
func (h *Host) join(ctx context.Context, cfg placement.LeaseConfig) error {
	held := func(err error) bool { return errors.Is(err, placement.ErrHostIDInUse) }
	return h.startStep(ctx, "join", held, func(ctx context.Context) error {
		l, err := placement.Join(ctx, h.js, h.members, h.rec.get(), cfg, h.leaseLost)
		if err == nil {
			h.fence.joined(l)
		}
		return err
	})
}

// startStep runs one step of Start through jsutil.Retry: again while it
// fails with a transient error, or one for which also returns true. A try
// in flight when the connection drops ends at once and is tried again after
// the reconnect, rather than after its timeout. It logs
// once per change of what it waits for, and once when it got through after
// waiting.
func (h *Host) startStep(ctx context.Context, step string, also func(error) bool, try func(context.Context) error) error {
	var waited string
	err := jsutil.Retry(ctx, startTryTimeout, func(ctx context.Context) error {
		tctx, cancel := jsutil.UntilDisconnected(ctx, h.nc)
		defer cancel()
		err := try(tctx)
		switch {
		case err == nil:
		case ctx.Err() == nil && errors.Is(context.Cause(tctx), nats.ErrDisconnected):
			return fmt.Errorf("%w (%v)", nats.ErrDisconnected, err) // its answer is lost: try again
		case also != nil && also(err):
			return jsutil.Retryable(err)
		}
		return err
	}, func(err error) {
		if msg := err.Error(); msg != waited {
			waited = msg
			h.log.Warn("host start: waiting", "step", step, "for", err)
		}
	})
	if err != nil {
		return fmt.Errorf("host: %s: %w", step, err)
	}
	if waited != "" {
		h.log.Info("host start: done waiting", "step", step)
	}
	return nil
}

// abandonStart undoes a Start that failed: it stops what Start started, and
// removes the host's record if it had joined, so that a start given up
// leaves nothing behind in the buckets.
func (h *Host) abandonStart() {
	ctx, cancel := context.WithTimeout(context.Background(), startTryTimeout)
	defer cancel()
	var err error
	switch {
	case h.lease() != nil:
		err = h.lease().Leave(ctx)
	case h.rec.get() != nil: // a join try whose answer was lost may have stored it
		err = placement.Withdraw(ctx, h.members, h.liveness, h.rec.get(), h.cfg.Membership.MarkerTTL)
	}
	if err != nil {
		h.log.Warn("host start: could not remove the record; the hosts monitoring it remove it once its lease expires", "err", err)
	}
	h.Close()
}

// lease is the host's lease, nil until it has joined. It is read
// atomically: a turn can run between the lease's first write and Start
// storing it.
func (h *Host) lease() *placement.Lease { return h.fence.lease.Load() }

func (h *Host) goLoop(f func()) {
	h.loops.Add(1)
	go func() {
		defer h.loops.Done()
		f()
	}()
}

// Shutdown leaves gracefully. It marks the host draining, so the table moves
// its actors to other hosts; hands them off (running turns finish, state is
// saved, calls queued for them are answered MOVED and the callers follow the
// actors); then removes its record and unsubscribes. If ctx ends first, it
// stops running turns and leaves anyway: other hosts take over the actors
// either way, and no turn of this host runs after it left.
func (h *Host) Shutdown(ctx context.Context) error {
	if !h.started.Load() {
		return ErrNotStarted
	}
	if !h.eng.closing.CompareAndSwap(false, true) {
		return ErrHostClosed
	}
	h.log.Info("host draining")
	h.stopReminders(false) // take no new firings; those running finish below
	err := h.drainActors(ctx)
	if err != nil {
		h.log.Warn("actors not handed off; leaving anyway", "err", err)
	}
	h.fence.close(ctx)
	if lerr := h.lease().Leave(ctx); lerr == nil {
		err = errors.Join(err, h.waitLeft(ctx))
	} else {
		err = errors.Join(err, lerr)
	}
	h.log.Info("host left")
	h.drain(ctx, h.gw) // other hosts take the gateway's calls from here on
	h.types.each((*activation).deactivate)
	err = errors.Join(err, h.waitTurns(ctx))
	h.drain(ctx, h.sub)
	h.intake.waitDrained(ctx) // late requests were answered MOVED
	err = errors.Join(err, h.waitTurns(ctx))
	h.halt()
	return err
}

// waitTurns waits for running turns and forwarded calls to finish.
func (h *Host) waitTurns(ctx context.Context) error {
	select {
	case <-h.eng.turns.idle():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("host: shutdown: turns still running: %w", ctx.Err())
	}
}

// drain stops a subscription and waits until the requests it had already
// received have been handled.
func (h *Host) drain(ctx context.Context, sub *nats.Subscription) {
	if sub == nil {
		return
	}
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if err := sub.Drain(); err != nil {
		return
	}
	select {
	case <-closed:
	case <-ctx.Done():
	}
}

// Close stops the host at once: it unsubscribes and stops renewing its lease
// without removing it (other hosts take its actors once the lease expires, as
// after a crash) and does not wait for running turns or save state.
func (h *Host) Close() {
	h.eng.closing.Store(true)
	for _, sub := range []*nats.Subscription{h.gw, h.sub} {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	if h.lease() != nil {
		h.lease().Stop()
	}
	h.stopReminders(true)
	h.halt()
}

// halt stops the host's loops and its watcher.
func (h *Host) halt() {
	h.stopOnce.Do(func() {
		close(h.stop)
		h.sweeper.stop()
		h.loops.Wait()
		if m := h.monitor.Load(); m != nil {
			m.Stop()
		}
		if c := h.collect.Load(); c != nil {
			c.Stop()
		}
		if h.w != nil {
			h.w.Stop()
		}
		h.obs.stop()
		h.log.Info("host stopped")
	})
}

// waitLeft waits until the host's own table no longer lists it.
func (h *Host) waitLeft(ctx context.Context) error {
	for {
		changed := h.w.Changed()
		if _, in := h.w.Table().Member(h.cfg.ID); !in {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (h *Host) owns(t *placement.Table, typ placement.ActorType, id placement.ActorID) bool {
	if h.drainedAt.Load() != 0 {
		return false
	}
	m, ok := t.Owner(typ, id)
	return ok && m.ID == h.cfg.ID
}

// ActiveActors counts the activations of each type.
func (h *Host) ActiveActors() map[placement.ActorType]int {
	n := make(map[placement.ActorType]int, len(h.types))
	for name, t := range h.types {
		n[name] = t.dir.len()
	}
	return n
}
