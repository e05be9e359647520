package host_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/router"
)

// registerChain adds the types of a call chain: "a" calls "b" through its
// Self.Router() with the turn's ctx.
func registerChain(typ string) func(*host.Host) {
	return func(h *host.Host) {
		var err error
		switch typ {
		case "a":
			err = h.Register("a", func(self *host.Self) host.Actor {
				return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
					return self.Router().Call(ctx, "b", "b1", "pong", c.Payload)
				})
			}, host.NoState())
		case "b":
			err = h.Register("b", host.Func(func(_ context.Context, c host.Call) ([]byte, error) {
				return c.Payload, nil
			}), host.NoState())
		}
		if err != nil {
			panic(err)
		}
	}
}

// startTracedChain starts two hosts, "ha" serving a and "hb" serving b,
// that record their spans in exp.
func startTracedChain(t *testing.T) (*server.Server, *sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := natstest.Server(t)
	startHost(t, s, host.Config{ID: "ha", TracerProvider: tp}, registerChain("a"))
	startHost(t, s, host.Config{ID: "hb", TracerProvider: tp}, registerChain("b"))
	return s, tp, exp
}

// TestTraceFollowsTheCallChain: a call A → B, across two hosts, makes one
// trace: the caller's span, the router's client span, A's turn, A's call to
// B and B's turn, each the parent of the next.
func TestTraceFollowsTheCallChain(t *testing.T) {
	s, tp, exp := startTracedChain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := router.New(ctx, natstest.Connect(t, s), router.Config{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitMembers(t, r, 2)

	ctx, root := tp.Tracer("test").Start(ctx, "test")
	reply, err := r.Call(ctx, "a", "a1", "ping", []byte("hi"))
	root.End()
	if err != nil || string(reply) != "hi" {
		t.Fatalf("call a: %q, %v", reply, err)
	}

	spans := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		if _, dup := spans[s.Name]; dup {
			t.Errorf("span %q recorded twice", s.Name)
		}
		spans[s.Name] = s
	}
	chain := []struct {
		name string
		kind trace.SpanKind
	}{
		{"test", trace.SpanKindInternal},
		{"call a.ping", trace.SpanKindClient},
		{"turn a.ping", trace.SpanKindServer},
		{"call b.pong", trace.SpanKindClient},
		{"turn b.pong", trace.SpanKindServer},
	}
	if len(spans) != len(chain) {
		t.Errorf("got %d spans, want %d: %v", len(spans), len(chain), spanNames(spans))
	}
	traceID := root.SpanContext().TraceID()
	for i, want := range chain {
		s, ok := spans[want.name]
		if !ok {
			t.Fatalf("no span %q among %v", want.name, spanNames(spans))
		}
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q is in trace %s, want %s", want.name, s.SpanContext.TraceID(), traceID)
		}
		if s.SpanKind != want.kind {
			t.Errorf("span %q has kind %v, want %v", want.name, s.SpanKind, want.kind)
		}
		if i == 0 {
			continue
		}
		if parent := spans[chain[i-1].name].SpanContext.SpanID(); s.Parent.SpanID() != parent {
			t.Errorf("span %q has parent %s, want %q (%s)", want.name, s.Parent.SpanID(), chain[i-1].name, parent)
		}
	}
	if turn := spans["turn b.pong"]; !hasAttr(turn, "troupe.host.id", "hb") || !hasAttr(turn, "troupe.actor.id", "b1") {
		t.Errorf("turn b.pong attributes %v: want troupe.host.id=hb, troupe.actor.id=b1", turn.Attributes)
	}
}

// TestTraceContinuesFromAnyNATSClient: a plain NATS request to the gateway
// carrying a W3C traceparent header is traced as part of the caller's trace.
func TestTraceContinuesFromAnyNATSClient(t *testing.T) {
	s, _, exp := startTracedChain(t)
	waitMembers(t, newRouter(t, s), 2)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	msg := nats.NewMsg(host.GatewaySubject("troupe", "b", "b1", "pong"))
	msg.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
	msg.Data = []byte("x")
	resp, err := natstest.Connect(t, s).RequestMsg(msg, 10*time.Second)
	if err != nil || string(resp.Data) != "x" {
		t.Fatalf("gateway call: %v %v", resp, err)
	}
	// A gateway host that forwards the request directly (the owner replies
	// to the caller) ends its call span once it has sent it, and a turn's
	// span ends after its reply: either can be recorded after the reply
	// arrives. Wait for the turn, and for the forwarding span when the
	// turn's parent is not the caller's.
	var spans map[string]tracetest.SpanStub
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		spans = map[string]tracetest.SpanStub{}
		for _, sp := range exp.GetSpans() {
			spans[sp.Name] = sp
		}
		turn, ok := spans["turn b.pong"]
		_, fwd := spans["call b.pong"]
		if ok && (fwd || turn.Parent.SpanID().String() == parentID) || time.Now().After(deadline) {
			break
		}
	}
	for _, sp := range spans {
		if sp.SpanContext.TraceID().String() != traceID {
			t.Errorf("span %q is in trace %s, want the caller's %s", sp.Name, sp.SpanContext.TraceID(), traceID)
		}
	}
	turn, ok := spans["turn b.pong"]
	if !ok {
		t.Fatalf("no turn span among %v", spanNames(spans))
	}
	// The gateway host that took the request ran it (it owns b1) or forwarded
	// it with a call span of its own, whose parent is then the caller's span.
	wantParent := parentID
	if fwd, ok := spans["call b.pong"]; ok {
		if got := fwd.Parent.SpanID().String(); got != parentID {
			t.Errorf("forwarding span's parent is %s, want the caller's %s", got, parentID)
		}
		wantParent = fwd.SpanContext.SpanID().String()
	}
	if got := turn.Parent.SpanID().String(); got != wantParent {
		t.Errorf("turn span's parent is %s, want %s", got, wantParent)
	}
}

func spanNames(spans map[string]tracetest.SpanStub) []string {
	var names []string
	for n := range spans {
		names = append(names, n)
	}
	return names
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key && kv.Value.AsString() == value {
			return true
		}
	}
	return false
}
