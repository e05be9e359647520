package host_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
)

// A timer tick is a turn without a request: with tracing on, it must not
// be taken for a call.
func TestTimerTicksWithTracingOn(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s := natstest.Server(t)
	ticked := make(chan struct{}, 1)
	startHost(t, s, host.Config{ID: "ht", TracerProvider: tp}, func(h *host.Host) {
		if err := h.Register("tk", func(self *host.Self) host.Actor {
			return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
				return nil, self.SetTimer("t", host.Timer{Due: 10 * time.Millisecond, Tick: func(context.Context) error {
					select {
					case ticked <- struct{}{}:
					default:
					}
					return nil
				}})
			})
		}, host.NoState()); err != nil {
			t.Fatal(err)
		}
	})
	r := newRouter(t, s)
	waitMembers(t, r, 1)
	call(t, r, "tk", "1", "go", "")
	select {
	case <-ticked:
	case <-time.After(5 * time.Second):
		t.Fatal("the timer never ticked")
	}
}
