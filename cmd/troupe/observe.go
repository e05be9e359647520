package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
)

// obsUsage documents the observability flags of dev and host.
const obsUsage = `
Observability flags:
  --metrics ADDR          serve /metrics (Prometheus), /healthz and /readyz on
                          ADDR, such as 127.0.0.1:9464 (default: off)
  --log-format text|json  log line format (default text)
  --log-level LEVEL       debug, info, warn or error (default info)

Tracing is off unless the OpenTelemetry environment turns it on:
OTEL_TRACES_EXPORTER=otlp, or OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set; spans go out over OTLP/HTTP, and the
other OTEL_* variables (sampler, headers, resource, batching) apply.
`

// obsFlags are the observability flags of dev and host.
type obsFlags struct {
	metrics   string
	logFormat string
	logLevel  string
	level     slog.Level
}

func (o *obsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.metrics, "metrics", "", "serve /metrics, /healthz and /readyz on this address")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
}

// check validates the flags after parsing, and the OTEL_* environment.
func (o *obsFlags) check(getenv func(string) string) error {
	if _, err := tracingOn(getenv); err != nil {
		return err
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	}
	if err := o.level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	if o.metrics != "" {
		if _, _, err := net.SplitHostPort(o.metrics); err != nil {
			return fmt.Errorf("--metrics %q: want HOST:PORT", o.metrics)
		}
	}
	return nil
}

// logger returns the logger the flags ask for, writing to w.
func (o *obsFlags) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// telemetry is what a host process runs for the flags and the OTEL_*
// environment: a metrics registry, a tracer provider, and the HTTP listener
// for /metrics, /healthz and /readyz. Each part is nil when off.
type telemetry struct {
	log *slog.Logger
	reg *prometheus.Registry
	tp  *sdktrace.TracerProvider
	srv *http.Server
}

// startTelemetry sets up what o and the environment ask for.
func (o *obsFlags) startTelemetry(ctx context.Context, getenv func(string) string, id placement.HostID, log *slog.Logger) (*telemetry, error) {
	t := &telemetry{log: log}
	var err error
	if t.tp, err = tracerProvider(ctx, getenv, id); err != nil {
		return nil, err
	}
	if t.tp != nil {
		log.Info("tracing on: OTLP/HTTP exporter")
	}
	if o.metrics != "" {
		t.reg = prometheus.NewRegistry()
		t.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return t, nil
}

// hostConfig adds the metrics registry and tracer provider to cfg.
func (t *telemetry) hostConfig(cfg host.Config) host.Config {
	if t.reg != nil {
		cfg.Metrics = t.reg
	}
	if t.tp != nil {
		cfg.TracerProvider = t.tp
	}
	return cfg
}

// serve starts the HTTP listener on addr, if metrics are on, with
// readiness from h.
func (t *telemetry) serve(addr string, h *host.Host) error {
	if t.reg == nil {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics: %w", err)
	}
	t.srv = &http.Server{Handler: healthMux(t.reg, h.Ready), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	t.log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

// healthMux serves the metrics in reg and the health endpoints; ready says
// whether the host is ready.
func healthMux(reg *prometheus.Registry, ready func() error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// close stops the listener and flushes the spans not yet exported.
func (t *telemetry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if t.srv != nil {
		errs = append(errs, t.srv.Shutdown(ctx))
	}
	if t.tp != nil {
		errs = append(errs, t.tp.Shutdown(ctx))
	}
	if err := errors.Join(errs...); err != nil {
		t.log.Warn("telemetry not closed cleanly", "err", err)
	}
}
