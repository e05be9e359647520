package host

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/internal/telemetry"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// observer reports a host's work as Prometheus metrics (Config.Metrics) and
// trace spans (Config.TracerProvider). A host with neither has a nil
// observer: every hook below is a method that returns at once on nil, so
// the hot path pays one nil check. The metrics are listed in metrics.go.
//
// Traces: a turn continues the trace context its request carries
// (traceparent, tracestate) with a server span "turn <type>.<method>" that
// starts when the call enters the mailbox; the turn's ctx carries the span,
// so calls the actor makes through Self.Router() with that ctx are its
// children. The gateway continues the caller's trace when it forwards.
type observer struct {
	h      *Host
	tracer trace.Tracer // nil: no tracing
	m      *metrics     // nil: no metrics
}

func newObserver(h *Host) (*observer, error) {
	if h.cfg.Metrics == nil && h.cfg.TracerProvider == nil {
		return nil, nil
	}
	o := &observer{h: h, tracer: telemetry.Tracer(h.cfg.TracerProvider)}
	if h.cfg.Metrics != nil {
		var err error
		if o.m, err = newMetrics(h); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// addType prepares the per-type metrics of a registered type.
func (o *observer) addType(typ placement.ActorType) {
	if o != nil && o.m != nil {
		o.m.addType(typ)
	}
}

// start registers the collector that reads the host's state at scrape time.
func (o *observer) start() error {
	if o == nil || o.m == nil {
		return nil
	}
	return o.m.register()
}

// stop unregisters what start registered.
func (o *observer) stop() {
	if o != nil && o.m != nil {
		o.m.unregister()
	}
}

// routerConfig gives the host's router the same metrics and tracing.
func (o *observer) routerConfig(cfg router.Config) router.Config {
	if o != nil {
		cfg.Metrics, cfg.TracerProvider = o.h.cfg.Metrics, o.h.cfg.TracerProvider
	}
	return cfg
}

// now is the time, or zero when there is nothing to time.
func (o *observer) now() time.Time {
	if o == nil {
		return time.Time{}
	}
	return time.Now()
}

// turnStart is called before a call's turn: it observes the time the call
// waited in the mailbox and, when tracing, starts the turn's span and puts
// it in the turn's context. It returns the turn's start time.
func (o *observer) turnStart(env *envelope) time.Time {
	if o == nil {
		return time.Time{}
	}
	now := time.Now()
	if o.m != nil && !env.admitted.IsZero() {
		o.m.types[env.t.name].wait.Observe(now.Sub(env.admitted).Seconds())
	}
	if o.tracer != nil {
		start := env.admitted
		if start.IsZero() {
			start = now
		}
		ctx := telemetry.Extract(context.Background(), env.msg.Header)
		ctx, span := o.tracer.Start(ctx, "turn "+string(env.t.name)+"."+env.method,
			trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("troupe.host.id", string(o.h.cfg.ID)),
				attribute.String("troupe.actor.type", string(env.t.name)),
				attribute.String("troupe.actor.id", protocol.EncodeID(string(env.id))),
				attribute.String("troupe.actor.method", env.method))
			span.AddEvent("turn started", trace.WithTimestamp(now))
		}
		env.ctx.values = ctx
	}
	return now
}

// turnEnd is called with a turn's reply.
func (o *observer) turnEnd(env *envelope, reply *nats.Msg, start time.Time) {
	if o == nil {
		return
	}
	code := replyCode(reply)
	if o.m != nil {
		o.m.calls.Observe(string(env.t.name), env.method, code, true, time.Since(start))
	}
	if env.ctx.values != nil {
		endSpan(trace.SpanFromContext(env.ctx.values), code)
	}
}

// failCall answers a call that never reached its turn (moved, busy, late),
// counting it; a gateway call that moved is followed instead (forward.go).
func (h *Host) failCall(env *envelope, e *protocol.Error) {
	if o := h.obs; o != nil && o.m != nil {
		o.m.calls.Observe(string(env.t.name), env.method, int32(e.Code), true, 0)
	}
	if follows(env, e.Code) {
		h.followEnv(env)
		return
	}
	h.fail(env.msg, e)
}

// How a gateway call was followed to its owner (forward.go, probe.go).
const (
	forwardDirect  = "direct"
	forwardRelayed = "relayed"
	forwardLost    = "lost"
)

// forwarded counts a gateway call followed to another host.
func (o *observer) forwarded(how string) {
	if o != nil && o.m != nil {
		o.m.forwards[how].Inc()
	}
}

// rejected counts a request refused before it named an actor this host
// serves.
func (o *observer) rejected(e *protocol.Error) {
	if o != nil && o.m != nil {
		o.m.rejected.WithLabelValues(telemetry.Outcome(int32(e.Code))).Inc()
	}
}

// extract continues the trace a request carries, for a call the host makes
// on its behalf (the gateway forwarding it).
func (o *observer) extract(ctx context.Context, h nats.Header) context.Context {
	if o == nil || o.tracer == nil {
		return ctx
	}
	return telemetry.Extract(ctx, h)
}

func endSpan(span trace.Span, code int32) {
	if code != 0 {
		c := protocol.Code(code).String()
		span.SetStatus(codes.Error, c)
		span.SetAttributes(attribute.String("troupe.error.code", c))
	}
	span.End()
}

// replyCode is the error code of a reply, 0 for success.
func replyCode(reply *nats.Msg) int32 {
	if reply == nil || reply.Header == nil {
		return 0
	}
	s := reply.Header.Get(protocol.HeaderErrorCode)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return int32(protocol.CodeInternal)
	}
	return int32(n)
}

// Lifecycle and state hooks.

func (o *observer) activated(typ placement.ActorType) {
	if o != nil && o.m != nil {
		o.m.types[typ].activations.Inc()
	}
}

func (o *observer) deactivated(typ placement.ActorType) {
	if o != nil && o.m != nil {
		o.m.types[typ].deactivations.Inc()
	}
}

func (o *observer) stateLoaded(typ placement.ActorType, start time.Time) {
	if o != nil && o.m != nil {
		o.m.types[typ].load.Observe(time.Since(start).Seconds())
	}
}

func (o *observer) stateSaved(typ placement.ActorType, start time.Time, err error) {
	if o == nil || o.m == nil {
		return
	}
	t := o.m.types[typ]
	t.save.Observe(time.Since(start).Seconds())
	if e := protocol.AsError(err); e != nil && e.Code == protocol.CodeStateConflict {
		t.conflicts.Inc()
	}
}

// ReminderFired counts a reminder firing this host delivered to an actor
// of type typ (which may live on another host); a type this host does not
// serve counts as "other". It does nothing when metrics are off.
func (o *observer) ReminderFired(typ placement.ActorType) {
	if o == nil || o.m == nil {
		return
	}
	if t, ok := o.m.types[typ]; ok {
		t.reminders.Inc()
		return
	}
	o.m.byType["troupe_reminders_fired_total"].WithLabelValues(telemetry.Other).Inc()
}

// TimerFired counts a timer tick of an actor of type typ, as its turn
// starts. It does nothing when metrics are off.
func (o *observer) TimerFired(typ placement.ActorType) {
	if o != nil && o.m != nil {
		o.m.types[typ].timers.Inc()
	}
}

// tableChanged counts a new table after prev (nil: the first one, not a
// change).
func (o *observer) tableChanged(prev *placement.Table) {
	if o != nil && o.m != nil && prev != nil {
		o.m.tableChanges.Inc()
	}
}

func (o *observer) leaseLost() {
	if o != nil && o.m != nil {
		o.m.leaseLost.Inc()
	}
}

// watchLease makes cfg report lease renewals.
func (o *observer) watchLease(cfg *placement.LeaseConfig) {
	if o == nil || o.m == nil {
		return
	}
	next := cfg.OnRenew
	cfg.OnRenew = func(took time.Duration, err error) {
		o.m.leaseRenewed(took, err)
		if next != nil {
			next(took, err)
		}
	}
}
