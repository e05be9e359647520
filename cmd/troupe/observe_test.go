package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/internal/promtest"
	"github.com/troupe-dev/troupe/placement"
)

// TestMetricsMoveUnderLoad runs troupe dev with --metrics and JSON logs,
// drives calls at it, and scrapes /metrics twice during the load: the call
// counters and latency histograms move, and no label is an actor id. Every
// log line names the host, and the calls log nothing at info level.
func TestMetricsMoveUnderLoad(t *testing.T) {
	t.Parallel()
	addr, maddr := natstest.FreeAddr(t), natstest.FreeAddr(t)
	p := startProc(t, "dev", "--listen", addr, "--store", t.TempDir(), "--metrics", maddr, "--log-format", "json")
	waitFor(t, 20*time.Second, "troupe dev prints its URL", func() bool { return strings.Contains(p.stdout.String(), "\n") })
	base := "http://" + maddr
	if code := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d after the host joined, want 200", code)
	}
	r := newRouter(t, "nats://"+addr)

	var ids []string
	for i := range 16 {
		ids = append(ids, fmt.Sprintf("load-%d", i))
	}
	ctx, stop := context.WithCancel(context.Background())
	var calls atomic.Int64
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := r.Call(cctx, "counter", placement.ActorID(id), "add", []byte("1"))
				cancel()
				if err != nil {
					t.Error(err)
					return
				}
				calls.Add(1)
			}
		})
	}
	waitFor(t, 10*time.Second, "calls run", func() bool { return calls.Load() > 50 })
	first := scrape(t, base)
	waitFor(t, 10*time.Second, "more calls run", func() bool { return calls.Load() > 300 })
	second := scrape(t, base)
	stop()
	wg.Wait()

	for _, m := range []struct{ name, labels string }{
		{"troupe_host_calls_total", "type=counter,method=add,outcome=ok"},
		{"troupe_host_turn_duration_seconds", "type=counter,method=add"},
		{"troupe_host_mailbox_wait_seconds", "type=counter"},
		{"troupe_state_save_duration_seconds", "type=counter"},
	} {
		a, b := promtest.Value(first, m.name, m.labels), promtest.Value(second, m.name, m.labels)
		if !(0 < a && a < b) {
			t.Errorf("%s{%s}: %v then %v, want a positive count that grows", m.name, m.labels, a, b)
		}
	}
	if n := promtest.Value(second, "troupe_host_active_actors", "type=counter"); n != float64(len(ids)) {
		t.Errorf("troupe_host_active_actors = %v, want %d", n, len(ids))
	}
	if found := promtest.LabelsWithValue(second, ids); len(found) > 0 {
		t.Errorf("actor ids as labels: %v", found)
	}

	hostID := ""
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		id, _ := rec["host"].(string)
		if hostID == "" {
			hostID = id
		}
		if id == "" || id != hostID {
			t.Errorf("log line without host=%s: %s", hostID, line)
		}
		if msg, _ := rec["msg"].(string); strings.Contains(msg, "call") {
			t.Errorf("a log line about calls at info level: %s", line)
		}
	}
}

// TestReadyzBeforeAndAfterJoin: /healthz answers while the process lives;
// /readyz only while the host is joined.
func TestReadyzBeforeAndAfterJoin(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t)
	reg := prometheus.NewRegistry()
	h, err := host.New(natstest.Connect(t, s), host.Config{Metrics: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := counter.Register(h); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(healthMux(reg, h.Ready))
	defer srv.Close()
	check := func(when string, healthz, readyz int) {
		t.Helper()
		if got := get(t, srv.URL+"/healthz"); got != healthz {
			t.Errorf("%s: /healthz = %d, want %d", when, got, healthz)
		}
		if got := get(t, srv.URL+"/readyz"); got != readyz {
			t.Errorf("%s: /readyz = %d, want %d", when, got, readyz)
		}
	}
	check("before Start", 200, 503)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Start", 200, 200)
	if _, err := promtest.Scrape(srv.URL + "/metrics"); err != nil {
		t.Errorf("/metrics: %v", err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Shutdown", 200, 503)
}

// TestTracesGoToTheOTLPEndpoint: with OTEL_EXPORTER_OTLP_ENDPOINT set,
// troupe call and troupe dev send the spans of a call to that endpoint over
// OTLP/HTTP, and the host's turn is a child of the command's call.
func TestTracesGoToTheOTLPEndpoint(t *testing.T) {
	t.Parallel()
	spans := make(chan *tracepb.Span, 100)
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var export coltrace.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &export) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		for _, rs := range export.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					select {
					case spans <- s:
					default:
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer otlp.Close()
	otel := []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=50"}
	addr := natstest.FreeAddr(t)
	p := startCmd(t, troupeBin, append(testEnv(), otel...), "dev", "--listen", addr, "--store", t.TempDir())
	waitFor(t, 20*time.Second, "troupe dev prints its URL", func() bool { return strings.Contains(p.stdout.String(), "\n") })
	if r := troupe("", otel, "call", "-s", "nats://"+addr, "counter", "c1", "add", "5"); r.code != 0 || r.stdout != "5\n" {
		t.Fatalf("troupe call: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	got := map[string]*tracepb.Span{}
	deadline := time.After(10 * time.Second)
	for got["call counter.add"] == nil || got["turn counter.add"] == nil {
		select {
		case s := <-spans:
			got[s.GetName()] = s
		case <-deadline:
			t.Fatalf("spans call counter.add and turn counter.add did not both reach the OTLP endpoint; got %v", got)
		}
	}
	call, turn := got["call counter.add"], got["turn counter.add"]
	if !bytes.Equal(turn.GetTraceId(), call.GetTraceId()) || !bytes.Equal(turn.GetParentSpanId(), call.GetSpanId()) {
		t.Errorf("turn span (trace %x, parent %x) is not the child of troupe call's span (trace %x, span %x)",
			turn.GetTraceId(), turn.GetParentSpanId(), call.GetTraceId(), call.GetSpanId())
	}
}

func scrape(t *testing.T, base string) []*dto.MetricFamily {
	t.Helper()
	mfs, err := promtest.Scrape(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestObservabilityFlagsRefuseBadValues: bad values are usage errors that
// name the flag, before anything starts; the OTEL environment is checked
// too.
func TestObservabilityFlagsRefuseBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		args []string
		want string
		code int
	}{
		{nil, []string{"dev", "--log-format", "xml"}, "--log-format", 2},
		{nil, []string{"host", "--log-level", "loud"}, "--log-level", 2},
		{nil, []string{"dev", "--metrics", "9464"}, "--metrics", 2},
		{[]string{"OTEL_TRACES_EXPORTER=zipkin"}, []string{"host", "-s", "nats://127.0.0.1:1"}, "OTEL_TRACES_EXPORTER=zipkin", 2},
	} {
		r := troupe("", tc.env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("troupe %v with %v: exit %d, stderr %q; want exit %d naming %s", tc.args, tc.env, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
