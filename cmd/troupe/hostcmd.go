package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/examples/relay"
	"github.com/troupe-dev/troupe/examples/session"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/ledger"
	"github.com/troupe-dev/troupe/placement"
)

var hostUsage = `Usage: troupe host [connection flags] [--name NAME] [--lease-ttl DURATION] [--ledger FILE]
                   [--start-timeout DURATION] [--ui ADDR] [--worker-types TYPES]
                   [--worker-timeout DURATION] [observability flags]

Joins a host serving the example actors (counter, session, relay, customer) to an existing NATS with
JetStream, and runs until SIGINT or SIGTERM; then it drains: it marks itself
draining so the other hosts take its actors, hands them off (running calls
finish, state is saved), and leaves the member set. At start it waits for
NATS as long as it takes (see --start-timeout); once joined, it reconnects to
NATS forever.

Flags:
  --name NAME       host id, [A-Za-z0-9_-]{1,64} (default h- and 8 random hex digits)
  --lease-ttl DURATION
                    lease time to live, whole seconds (default 4s): a host that
                    stops renewing leaves the member set this long after its
                    last renewal, and stops running calls a quarter of it before
  --ledger FILE     append every activation's start and end to FILE (JSON
                    lines), for audits of single activation
` + startUsage("Default 0: as long as it takes.", strings.Repeat(" ", 20)) + uiUsage + workerUsage + obsUsage + `
` + connUsage

// drainTimeout bounds draining at exit.
const drainTimeout = 10 * time.Second

var errConnClosed = errors.New("nats connection closed")

func runHost(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("host", hostUsage, e.stderr)
	var conn connFlags
	conn.register(fs, e.getenv)
	name := fs.String("name", "", "host id")
	leaseTTL := fs.Duration("lease-ttl", placement.DefaultLeaseTTL, "lease time to live")
	ledgerFile := fs.String("ledger", "", "activation ledger file")
	var start startFlag
	start.register(fs, 0)
	var ui uiFlag
	ui.register(fs)
	var workers workerFlags
	workers.register(fs)
	var obs obsFlags
	obs.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := workers.list(); err != nil {
		return usagef(fs, "%v", err)
	}
	id, err := hostID(*name)
	if err != nil {
		return usagef(fs, "--name: %v", err)
	}
	cfg := host.Config{ID: id, Lease: placement.LeaseConfig{TTL: *leaseTTL}}
	if err := cfg.Validate(); err != nil {
		return usagef(fs, "%v", err)
	}
	if _, err := ui.listenAddr(); err != nil {
		return usagef(fs, "%v", err)
	}
	if err := start.check(); err != nil {
		return usagef(fs, "%v", err)
	}
	if err := obs.check(e.getenv); err != nil {
		return usagef(fs, "%v", err)
	}
	if *ledgerFile != "" {
		w, err := ledger.Create(*ledgerFile)
		if err != nil {
			return err
		}
		defer w.Close()
		cfg.OnActivation, cfg.OnLeaseValid = w.Record, w.Fence
	}
	log := obs.logger(e.stderr)
	hlog := log.With("host", string(id))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, stop := signalContext(ctx)
	defer stop()
	st := start.begin(ctx)
	defer st.joined()
	opts := append(logEvents(hlog, st.connError), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.ClosedHandler(func(*nats.Conn) { cancel(errConnClosed) }))
	nc, err := conn.connectWait(st, hlog, "troupe host "+string(id), opts...)
	if err != nil {
		if st.abandoned(ctx) {
			hlog.Info("stopped before connecting to NATS", "cause", context.Cause(ctx))
			return nil
		}
		return err
	}
	defer nc.Close()
	hlog.Info("nats connected", "url", nc.ConnectedUrlRedacted())
	return serveActors(ctx, st, e, nc, cfg, log, &ui, &workers, &obs, func() {})
}

// hostID returns the id --name gives, or a random one.
func hostID(name string) (placement.HostID, error) {
	if name == "" {
		return host.DefaultConfig().ID, nil
	}
	id := placement.HostID(name)
	return id, id.Validate()
}

// serveActors runs a host with the example actors, and the worker types
// workers names, on nc until ctx ends,
// then drains it. Its start is bounded by st; a start abandoned because ctx
// ended is no failure. ready is called once the host has joined; then the
// live page starts if ui asks for it. log is the process's logger; the
// host's lines carry its id.
func serveActors(ctx context.Context, st *starting, e env, nc *nats.Conn, cfg host.Config, log *slog.Logger, ui *uiFlag, workers *workerFlags, obs *obsFlags, ready func()) error {
	cfg.Logger = log
	id := cfg.ID
	tel, err := obs.startTelemetry(ctx, e.getenv, id, log.With("host", string(id)))
	if err != nil {
		return err
	}
	defer tel.close()
	h, err := host.New(nc, tel.hostConfig(cfg))
	if err != nil {
		return err
	}
	if err := counter.Register(h); err != nil {
		return err
	}
	if err := session.Register(h); err != nil {
		return err
	}
	if err := orders.Register(h); err != nil {
		return err
	}
	if err := relay.Register(h); err != nil {
		return err
	}
	if err := workers.registerAll(h); err != nil {
		return err
	}
	if err := tel.serve(obs.metrics, h); err != nil {
		return err
	}
	if err := h.Start(st.ctx); err != nil {
		if st.abandoned(ctx) {
			tel.log.Info("stopped before joining", "cause", context.Cause(ctx))
			return stopFailure(context.Cause(ctx))
		}
		return fmt.Errorf("start host %s: %w", id, err)
	}
	st.joined()
	ready()
	waitUI, err := ui.serve(ctx, h, nc, tel.log)
	defer waitUI()
	if err != nil {
		return errors.Join(err, drain(h))
	}
	<-ctx.Done()
	tel.log.Info("stopping", "cause", context.Cause(ctx))
	return errors.Join(drain(h), stopFailure(context.Cause(ctx)))
}

// drain shuts h down gracefully, bounded by drainTimeout.
func drain(h *host.Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain host %s: %w", h.ID(), err)
	}
	return nil
}

// stopFailure returns why the host stopped if that was a failure (the
// connection closed for good) rather than a signal.
func stopFailure(cause error) error {
	if errors.Is(cause, errConnClosed) {
		return cause
	}
	return nil
}
