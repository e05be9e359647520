package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/livepage"
)

// uiUsage documents --ui in the usage of dev and host.
const uiUsage = `  --ui ADDR         serve the live page (hosts, generation, placement, actors,
                    call rates) on http://ADDR/; ADDR is HOST:PORT, and a
                    bare PORT or :PORT means 127.0.0.1:PORT (loopback). Off
                    by default
`

// uiFlag is --ui: where troupe dev and troupe host serve the live page.
type uiFlag struct {
	addr string
}

func (u *uiFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&u.addr, "ui", "", "serve the live page on HOST:PORT")
}

// listenAddr is the address to listen on, "" when --ui is not set.
func (u *uiFlag) listenAddr() (string, error) {
	if u.addr == "" {
		return "", nil
	}
	hostPart, port, err := net.SplitHostPort(u.addr)
	if err != nil {
		hostPart, port = "", u.addr // a bare port
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("--ui %q: want HOST:PORT, :PORT or PORT", u.addr)
	}
	if hostPart == "" {
		hostPart = "127.0.0.1"
	}
	return net.JoinHostPort(hostPart, port), nil
}

// serve starts the live page of h until ctx ends; wait waits for it to
// stop.
func (u *uiFlag) serve(ctx context.Context, h *host.Host, nc *nats.Conn, log *slog.Logger) (wait func(), err error) {
	var wg sync.WaitGroup
	addr, err := u.listenAddr()
	if addr == "" || err != nil {
		return wg.Wait, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return wg.Wait, fmt.Errorf("live page: %w", err)
	}
	page := livepage.New(nc, h.Router().Watcher(), host.DefaultSubjectPrefix, h.ID(), log)
	log.Info("live page", "url", "http://"+ln.Addr().String()+"/")
	wg.Go(func() {
		if err := page.Run(ctx, ln); err != nil {
			log.Warn("live page stopped", "err", err)
		}
	})
	return wg.Wait, nil
}
