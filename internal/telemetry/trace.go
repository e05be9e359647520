package telemetry

import (
	"context"
	"net/textproto"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TracerName names the tracer troupe's spans come from.
const TracerName = "github.com/troupe-dev/troupe"

// Trace context travels in the W3C headers traceparent and tracestate,
// spelled in lower case as the W3C specification does (NATS header names are
// case-sensitive). Extraction also accepts the canonical MIME spelling
// (Traceparent), which some HTTP-minded clients send.
var propagator = propagation.TraceContext{}

// headerCarrier adapts nats.Header to propagation.TextMapCarrier.
type headerCarrier nats.Header

func (h headerCarrier) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	if v := h[textproto.CanonicalMIMEHeaderKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h headerCarrier) Set(key, value string) { h[key] = []string{value} }

func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the span context of ctx into h.
func Inject(ctx context.Context, h nats.Header) {
	propagator.Inject(ctx, headerCarrier(h))
}

// Extract returns ctx with the remote span context h carries, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, headerCarrier(h))
}

// Tracer returns troupe's tracer from tp, or nil when tp is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(TracerName)
}
