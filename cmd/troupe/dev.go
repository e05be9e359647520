package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/orders"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/embedded"
)

var devUsage = `Usage: troupe dev [--listen HOST:PORT] [--store DIR] [--sync always|DURATION]
                  [--start-timeout DURATION] [--ui ADDR] [--worker-types TYPES]
                  [--worker-timeout DURATION] [observability flags]

Runs an embedded NATS server with JetStream and one host serving the example
actors (counter, session, relay, and customer, fed by the ORDERS stream it
makes), prints the server's URL, and runs until SIGINT or SIGTERM;
then it drains the host and stops the server. Other hosts can join with
troupe host -s URL.

Flags:
  --listen HOST:PORT      client address (default 127.0.0.1:4222)
  --store DIR             JetStream store (default $XDG_DATA_HOME/troupe/dev,
                          else ~/.local/share/troupe/dev)
  --sync always|DURATION  fsync JetStream writes before acknowledging each one
                          (always), or every DURATION (default 100ms; the NATS
                          server's own default is 2m). A process crash loses
                          nothing either way; an OS crash or power loss can
                          lose the last DURATION of acknowledged writes.
` + startUsage("Default 30s.", strings.Repeat(" ", 26)) + uiUsage + workerUsage + obsUsage

type devFlags struct {
	listen  string
	store   string
	sync    string
	start   startFlag
	ui      uiFlag
	workers workerFlags
}

func runDev(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("dev", devUsage, e.stderr)
	var f devFlags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:4222", "client address")
	fs.StringVar(&f.store, "store", "", "JetStream store directory")
	fs.StringVar(&f.sync, "sync", "", "always or a fsync interval")
	f.start.register(fs, devStartTimeout)
	f.ui.register(fs)
	f.workers.register(fs)
	var obs obsFlags
	obs.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	cfg, err := f.serverConfig(e.getenv)
	if err == nil {
		err = f.start.check()
	}
	if err == nil {
		_, err = f.ui.listenAddr()
	}
	if err == nil {
		_, err = f.workers.list()
	}
	if err == nil {
		err = obs.check(e.getenv)
	}
	if err != nil {
		return usagef(fs, "%v", err)
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	return dev(ctx, e, cfg, &f.start, &f.ui, &f.workers, &obs)
}

// devStartTimeout is troupe dev's default --start-timeout: its server is its
// own, so a start that takes longer is a fault to report, not a wait.
const devStartTimeout = 30 * time.Second

// serverConfig turns the flags into the embedded server's configuration.
func (f devFlags) serverConfig(getenv func(string) string) (embedded.Config, error) {
	cfg := embedded.Config{Listen: f.listen, StoreDir: f.store}
	var err error
	if cfg.SyncAlways, cfg.SyncInterval, err = parseSync(f.sync); err != nil {
		return cfg, err
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir, err = defaultStore(getenv)
	}
	return cfg, err
}

// defaultSync is troupe dev's fsync interval. Measured (BenchmarkDurabilityAB)
// it costs a stateful call a few percent against the server's default of
// two minutes, and bounds what an OS crash can lose to a tenth of a second.
const defaultSync = 100 * time.Millisecond

// parseSync reads --sync: "" (defaultSync), "always" or a duration.
func parseSync(s string) (always bool, every time.Duration, err error) {
	switch s {
	case "":
		return false, defaultSync, nil
	case "always":
		return true, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("--sync %q: want always or a positive duration such as 1s", s)
	}
	return false, d, nil
}

// defaultStore is the per-user store of troupe dev, following the XDG base
// directory specification.
func defaultStore(getenv func(string) string) (string, error) {
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "troupe", "dev"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no default store (%w): use --store", err)
	}
	return filepath.Join(home, ".local", "share", "troupe", "dev"), nil
}

// dev runs the server and a host on it until ctx ends.
func dev(ctx context.Context, e env, cfg embedded.Config, start *startFlag, ui *uiFlag, workers *workerFlags, obs *obsFlags) error {
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return err
	}
	s, err := embedded.Start(cfg)
	if err != nil {
		return err
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	id := host.DefaultConfig().ID
	log := obs.logger(e.stderr)
	hlog := log.With("host", string(id))
	u := clientURL(s)
	hlog.Info("nats server started", "url", u, "store", cfg.StoreDir)
	st := start.begin(ctx)
	defer st.joined()
	nc, err := nats.Connect(u, append(logEvents(hlog, st.connError), nats.Name("troupe dev "+string(id)), nats.ReconnectBufSize(-1))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := ensureOrders(st.ctx, nc); err != nil {
		return err
	}
	return serveActors(ctx, st, e, nc, host.Config{ID: id}, log, ui, workers, obs, func() {
		fmt.Fprintf(e.stdout, "%s\ntry: troupe call -s %s counter c1 add 5\n", u, u)
	})
}

// ensureOrders makes the example's ORDERS stream (examples/orders).
func ensureOrders(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := orders.EnsureStream(ctx, js, 1); err != nil {
		return fmt.Errorf("stream %s: %w", orders.Stream, err)
	}
	return nil
}

// clientURL is the URL clients on this machine reach s at: a wildcard listen
// address is replaced by loopback.
func clientURL(s *server.Server) string {
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		return s.ClientURL()
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsUnspecified() {
		loop := "127.0.0.1"
		if ip.To4() == nil {
			loop = "::1"
		}
		u.Host = net.JoinHostPort(loop, u.Port())
	}
	return u.String()
}
