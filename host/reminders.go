package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Reminders are kept by the NATS server, not by hosts. Each is a JetStream
// message schedule (Nats-Schedule) in the reminder stream; when it fires, the
// server stores a message on the reminder's fire subject in the same stream.
// A few hosts (placement.ReminderPullers of the current table) read fired
// messages from one shared durable pull consumer and deliver each as an
// ordinary call through their routers, so the call runs on
// whichever host owns the actor at that moment (activating it if needed),
// as a turn in its mailbox; the message is acknowledged after the call's
// reply. When the delivering host owns the actor itself, the call goes
// straight into the mailbox, without the NATS request (firing.go). A host
// holds no memory per reminder: only the firings it is delivering right
// now.
//
// A new reminder stream keeps one message per subject: firings that wait
// for a host coalesce into the latest per reminder by that limit, which
// costs the server a lookup, where a rollup header on each firing (what an
// older troupe's stream still relies on) costs it a subject purge that
// also rewrites the shared consumer's state, under the stream's lock.
//
// Delivery is at least once. A firing whose call fails in a way that may be
// retried (no host, the owner died or moved, busy, deadline) is delivered
// again after a backoff; a host that dies while delivering leaves the firing
// unacknowledged, and the server redelivers it after the consumer's ack
// wait. So a reminder can fire twice when its turn completed but the
// acknowledgement was lost; the call carries the stream sequence of the
// firing (protocol.HeaderReminderSeq), the same on every redelivery, for an
// actor that must not act twice.
//
// Why one shared consumer rather than one per host or per actor: a consumer
// per actor would be per-reminder state in the server and in hosts; a
// consumer per host would have to follow the placement table. One work
// queue with any host pulling needs neither, and the router already knows
// how to reach the owner through table changes and crashes. Which hosts
// pull follows the table only for economy: every host pulling would cost
// the server a waiting pull request and its heartbeats per host, so the
// pullers are a few hosts the table names, and any other host pulling (an
// older one, or one whose table lags) is harmless.

// Delivery settings of fired reminders.
const (
	// fireTimeout bounds one delivery attempt (the call to the owner).
	fireTimeout = 10 * time.Second
	// fireAckWait is how long the server waits for a delivering host before
	// it hands the firing to another. A host delivering a firing tells the
	// server it is still at it at least every fireAckWait/2 (firing.go), so
	// a dead host's firings move on within fireAckWait, and a slow turn is
	// not delivered twice.
	fireAckWait = 10 * time.Second
	// firesInFlight bounds the firings one host delivers at once. Turns of
	// firings are short as a rule, so this is what keeps the host's
	// mailboxes busy while the server delivers and removes firings: with
	// 256 (and 64 per pull), 100,000 due firings drained at 12,500/s, with
	// 1024 at 19,700/s (BenchmarkReminderFire, same load on the machine).
	firesInFlight = 1024
	// firesPerPull is how many firings a host asks the server for at once;
	// at most firesInFlight, so that a firing does not wait in the client's
	// buffer behind the ones being delivered for long enough for the ack
	// wait to run out (the host tells the server about a firing only once
	// it holds it).
	firesPerPull = firesInFlight / 4
	// maxFireBackoff caps the wait before a failed firing is delivered again.
	maxFireBackoff = 30 * time.Second
)

// pullRetry is how long a host among the reminder pullers waits before it
// tries again to pull, after a try failed.
const pullRetry = time.Second

// reminders delivers fired reminders on one host.
type reminders struct {
	cons    jetstream.Consumer
	mu      sync.Mutex
	consume jetstream.ConsumeContext // while this host pulls firings
	stopped bool                     // by stopReminders: pulls no more
	gw      *nats.Subscription       // the reminder gateway; nil when disabled
	ctx     context.Context          // ends when the host stops hard
	cancel  context.CancelFunc
	slots   chan struct{}
	held    *heldFirings // the firings being delivered
	once    sync.Once
}

// ensureReminders makes sure the reminder stream and its consumer exist; nil
// when reminders are disabled. Safe to repeat.
func (h *Host) ensureReminders(ctx context.Context) (jetstream.Consumer, error) {
	if h.cfg.DisableReminders {
		return nil, nil
	}
	stream, err := ensureReminderStream(ctx, h.js, h.cfg)
	if err != nil {
		return nil, err
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       protocol.ReminderConsumer,
		Description:   "troupe: fired reminders, delivered by any host",
		FilterSubject: protocol.FireSubjects(h.cfg.SubjectPrefix),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       h.fireAckWait(),
		MaxDeliver:    -1,
		MaxAckPending: 4 * firesInFlight,
	})
	if err != nil {
		return nil, fmt.Errorf("host: reminder consumer: %w", err)
	}
	return cons, nil
}

// startReminders starts delivering the firings cons (from ensureReminders)
// reads while the table names this host among the reminder pullers, and
// answers the reminder gateway.
func (h *Host) startReminders(cons jetstream.Consumer) error {
	if cons == nil {
		return nil
	}
	rem := &reminders{cons: cons, slots: make(chan struct{}, firesInFlight), held: newHeldFirings()}
	rem.ctx, rem.cancel = context.WithCancel(context.Background())
	h.rem = rem
	h.goLoop(func() { rem.held.keepInProgress(h.fireAckWait(), h.stop) })
	h.goLoop(h.followPullers)
	if h.cfg.DisableGateway {
		return nil
	}
	subject := protocol.ReminderGatewaySubjects(h.cfg.SubjectPrefix)
	var err error
	if rem.gw, err = h.nc.QueueSubscribe(subject, protocol.GatewayQueue(h.cfg.SubjectPrefix), h.serveReminderGateway); err != nil {
		return fmt.Errorf("host: subscribe %s: %w", subject, err)
	}
	return nil
}

// followPullers keeps the host pulling firings while its table names it
// among the reminder pullers (placement.ReminderPullers), and only then.
func (h *Host) followPullers() {
	var (
		table *placement.Table
		retry <-chan time.Time
		said  string
	)
	for {
		changed := h.w.Changed()
		if t := h.w.Table(); t != table && retry == nil {
			table = t
			if err := h.rem.pull(h, slices.Contains(placement.ReminderPullers(t), h.cfg.ID)); err != nil {
				if msg := err.Error(); msg != said {
					said = msg // once per kind of failure, not per try
					h.log.Warn("cannot pull fired reminders; trying again", "err", err)
				}
				table, retry = nil, time.After(pullRetry)
			}
		}
		select {
		case <-h.stop:
			return
		case <-changed:
		case <-retry:
			retry = nil
		}
	}
}

// pull starts or stops pulling firings; once the reminders stopped it does
// nothing.
func (rem *reminders) pull(h *Host, on bool) error {
	rem.mu.Lock()
	defer rem.mu.Unlock()
	switch {
	case rem.stopped || on == (rem.consume != nil):
		return nil
	case !on:
		// The firings the client holds are delivered; the server hands
		// the rest to the hosts that pull now.
		rem.consume.Drain()
		rem.consume = nil
		return nil
	}
	consume, err := rem.cons.Consume(h.fire, jetstream.PullMaxMessages(firesPerPull),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			h.log.Debug("reminder consumer", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("host: reminder consumer: %w", err)
	}
	rem.consume = consume
	return nil
}

// fireAckWait is the reminder consumer's ack wait: fireAckWait, unless a
// test set its own.
func (h *Host) fireAckWait() time.Duration {
	if h.cfg.fireAckWait > 0 {
		return h.cfg.fireAckWait
	}
	return fireAckWait
}

// ensureReminderStream creates the reminder stream, or checks an existing
// one. A new stream gets the state bucket's replica count. An existing
// stream is left as it is: one made before the stream kept one message per
// subject still works, with schedules that carry a rollup header instead
// (router.SetReminder).
func ensureReminderStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	if s, err := js.Stream(ctx, cfg.ReminderStream); err == nil {
		if c := s.CachedInfo().Config; !c.AllowMsgSchedules || c.Retention != jetstream.WorkQueuePolicy {
			return nil, fmt.Errorf("host: stream %q exists but is not a reminder stream (needs message schedules and work-queue retention)", cfg.ReminderStream)
		}
		return s, nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("host: reminder stream %q: %w", cfg.ReminderStream, err)
	}
	state, err := js.Stream(ctx, protocol.KVStream(cfg.StateBucket))
	if err != nil {
		return nil, fmt.Errorf("host: reminder stream: %w", err)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              cfg.ReminderStream,
		Description:       fmt.Sprintf("troupe reminders: schedules (%s) and their firings (%s)", protocol.ScheduleSubjects(cfg.SubjectPrefix), protocol.FireSubjects(cfg.SubjectPrefix)),
		Subjects:          []string{protocol.ReminderStreamSubjects(cfg.SubjectPrefix)},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          state.CachedInfo().Config.Replicas,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardOld,
		// One message per subject: a schedule replaces the last one, and
		// firings that wait for a host coalesce into the latest, without
		// the subject purge per firing a rollup header costs the server.
		MaxMsgsPerSubject: 1,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return ensureReminderStream(ctx, js, cfg) // another host made it first
	}
	if err != nil {
		return nil, fmt.Errorf("host: reminder stream %q: %w", cfg.ReminderStream, err)
	}
	return s, nil
}

// stopReminders stops taking firings; hard also abandons those being
// delivered (the server delivers them again after the ack wait).
func (h *Host) stopReminders(hard bool) {
	rem := h.rem
	if rem == nil {
		return
	}
	rem.once.Do(func() {
		rem.mu.Lock()
		rem.stopped = true
		if rem.consume != nil {
			rem.consume.Stop()
		}
		rem.mu.Unlock()
		if rem.gw != nil {
			_ = rem.gw.Unsubscribe()
		}
	})
	if hard {
		rem.cancel()
	}
}

// SetReminder registers a durable reminder for this actor; see
// router.Router.SetReminder. It takes effect at once, not at the end of the
// turn, and outlives the activation.
func (s *Self) SetReminder(ctx context.Context, r router.Reminder) error {
	return s.a.e.rt.router().SetReminder(ctx, s.Type(), s.ID(), r)
}

// DeleteReminder removes this actor's reminder name; see
// router.Router.DeleteReminder.
func (s *Self) DeleteReminder(ctx context.Context, name string) error {
	return s.a.e.rt.router().DeleteReminder(ctx, s.Type(), s.ID(), name)
}

// Reminders lists this actor's reminders.
func (s *Self) Reminders(ctx context.Context) ([]router.Reminder, error) {
	return s.a.e.rt.router().Reminders(ctx, s.Type(), s.ID())
}

// Host is the id of the host running this activation.
func (s *Self) Host() placement.HostID { return s.a.e.host }

// ReminderName returns the name of the reminder whose firing c is, and
// whether it is one.
func ReminderName(c Call) (string, bool) {
	name := c.Header.Get(protocol.HeaderReminder)
	return name, name != ""
}
