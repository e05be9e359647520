package host_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/proctest"
)

// TestLogsCarryTheHostIDAndNoLinePerCall: at the default level a host logs
// its lifecycle, not its calls, and every line names the host.
func TestLogsCarryTheHostIDAndNoLinePerCall(t *testing.T) {
	s := natstest.Server(t)
	var out proctest.Buffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := startHost(t, s, host.Config{ID: "logged", Logger: log}, func(h *host.Host) { _ = counter.Register(h) })
	r := newRouter(t, s)
	call(t, r, "counter", "c1", "add", "1") // activation
	before := out.String()
	for range 100 {
		call(t, r, "counter", "c1", "add", "1")
	}
	if after := out.String(); after != before {
		t.Errorf("100 calls logged at info level:\n%s", strings.TrimPrefix(after, before))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("want at least joined, leaving and stopped lines, got:\n%s", out.String())
	}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", line)
		}
		if rec["host"] != "logged" {
			t.Errorf("line without host=logged: %s", line)
		}
	}
}
