package router

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/internal/telemetry"
)

// observer reports a router's calls as metrics and trace spans. A Router
// without either has a nil observer, and a call then costs one nil check.
//
// Metrics (registered with Config.Metrics):
//
//	troupe_router_calls_total{type,method,outcome}
//	troupe_router_call_duration_seconds{type,method}
//	troupe_router_retries_total{type,reason}
//
// The type label is the actor type once a host has served it, else
// "other"; the method label is the method once an actor has accepted it
// (the call succeeded or the actor returned APPLICATION or
// INVALID_ARGUMENT), else "other"; both are capped (telemetry.MaxTypes,
// telemetry.MaxMethodsPerType), so random names sent by a caller cannot grow
// the number of series. Actor ids are never labels.
//
// Traces (Config.TracerProvider): one client span per Call, named
// "call <type>.<method>", parented by the span in the caller's ctx; each
// request carries its W3C trace context in the traceparent and tracestate
// headers. Retries are span events.
type observer struct {
	calls   *telemetry.Calls
	retries *prometheus.CounterVec
	tracer  trace.Tracer
}

func newObserver(cfg Config) (*observer, error) {
	if cfg.Metrics == nil && cfg.TracerProvider == nil {
		return nil, nil
	}
	o := &observer{tracer: telemetry.Tracer(cfg.TracerProvider)}
	if cfg.Metrics == nil {
		return o, nil
	}
	var err error
	o.calls, err = telemetry.NewCalls(cfg.Metrics, "troupe_router",
		"Calls made through routers, by actor type, method and outcome (ok or the error code in lower case).",
		"call_duration", "End-to-end latency of calls at the router, retries included.")
	if err != nil {
		return nil, err
	}
	o.retries, err = telemetry.Register(cfg.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "troupe_router_retries_total",
		Help: "Requests a router sent again, by actor type and reason (moved, no_responders, no_answer, not_sent, unavailable, state_conflict).",
	}, []string{"type", "reason"}))
	if err != nil {
		return nil, err
	}
	return o, nil
}

// call runs c with metrics and a span.
func (o *observer) call(ctx context.Context, c *call) ([]byte, error) {
	var start time.Time
	if o.calls != nil {
		start = time.Now()
	}
	var span trace.Span
	if o.tracer != nil {
		ctx, span = o.tracer.Start(ctx, "call "+string(c.typ)+"."+c.method, trace.WithSpanKind(trace.SpanKindClient))
		if span.IsRecording() {
			span.SetAttributes(
				attribute.String("troupe.actor.type", string(c.typ)),
				attribute.String("troupe.actor.id", EncodeID(string(c.id))),
				attribute.String("troupe.actor.method", c.method))
		}
		c.trace = ctx
	}
	reply, err := c.run(ctx)
	var code Code
	if err != nil {
		code = AsError(err).Code
	}
	if o.calls != nil {
		served := code != CodeNoHost && code != CodeUnknownType
		o.calls.Observe(string(c.typ), c.method, int32(code), served, time.Since(start))
	}
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, code.String())
			span.SetAttributes(attribute.String("troupe.error.code", code.String()))
		}
		span.End()
	}
	return reply, err
}

// inject writes the call's trace context, if traced, into a request's
// headers.
func (c *call) inject(h nats.Header) {
	if c.trace != nil {
		telemetry.Inject(c.trace, h)
	}
}

// retried records that the call is sent again for reason.
func (c *call) retried(reason string) {
	o := c.r.obs
	if o == nil {
		return
	}
	if o.retries != nil {
		o.retries.WithLabelValues(o.calls.TypeLabel(string(c.typ), true), reason).Inc()
	}
	if c.trace != nil {
		trace.SpanFromContext(c.trace).AddEvent("retry", trace.WithAttributes(attribute.String("reason", reason)))
	}
}

func outcomeOf(c Code) string { return telemetry.Outcome(int32(c)) }
