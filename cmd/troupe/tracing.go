package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// tracerProvider returns the tracer provider the OpenTelemetry environment
// asks for, or nil when tracing is off. Tracing is on when
// OTEL_TRACES_EXPORTER is otlp, or is unset while an OTLP endpoint is set;
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off. The
// exporter is OTLP over HTTP (http/protobuf): the gRPC one would add a gRPC
// stack to the binary for the same spans. The SDK reads the rest of the
// standard variables itself: OTEL_EXPORTER_OTLP_* (endpoint, headers,
// timeout, TLS), OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. The service name defaults to troupe and the
// service instance id to the host id.
func tracerProvider(ctx context.Context, getenv func(string) string, id placement.HostID) (*sdktrace.TracerProvider, error) {
	if on, err := tracingOn(getenv); !on || err != nil {
		return nil, err
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "troupe")),
		resource.WithAttributes(instanceID(id)...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}

// tracingOn reports whether the environment turns tracing on, and an error
// if it asks for an exporter or protocol troupe does not have.
func tracingOn(getenv func(string) string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, nil
	case "otlp":
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return false, nil
		}
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: troupe exports traces with otlp, or none", exp)
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return false, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: troupe sends traces with http/protobuf", proto)
	}
	return true, nil
}

func instanceID(id placement.HostID) []attribute.KeyValue {
	if id == "" {
		return nil
	}
	return []attribute.KeyValue{attribute.String("service.instance.id", string(id))}
}

// cliTracing traces a short command's calls when the environment turns
// tracing on, and flushes the spans before the command exits.
type cliTracing struct{ tp *sdktrace.TracerProvider }

func startCLITracing(ctx context.Context, getenv func(string) string) (*cliTracing, error) {
	tp, err := tracerProvider(ctx, getenv, "")
	return &cliTracing{tp: tp}, err
}

// routerConfig adds the tracer provider, if any, to cfg.
func (c *cliTracing) routerConfig(cfg router.Config) router.Config {
	if c.tp != nil {
		cfg.TracerProvider = c.tp
	}
	return cfg
}

// flush exports the spans not yet sent, bounded by a few seconds.
func (c *cliTracing) flush() {
	if c.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.tp.Shutdown(ctx)
}
