// Command embedded is a whole troupe deployment in one Go program: an
// embedded NATS server, two hosts serving counters and a greeter, and a
// router calling them. It uses only public packages, so it can be copied
// out of this module as it is.
//
//	go run ./examples/embedded
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// greeter is a stateless actor written as a function.
func greeter(self *host.Self) host.Actor {
	return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
		if c.Method != "hello" {
			return nil, host.UnknownMethod(c)
		}
		return fmt.Appendf(nil, "hello %s, from greeter %s", c.Payload, self.ID()), nil
	})
}

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "troupe-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startNATS(dir)
	if err != nil {
		return err
	}
	defer srv.Shutdown()

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, name := range []placement.HostID{"alpha", "beta"} {
		h, err := startHost(ctx, srv.ClientURL(), name, quiet)
		if err != nil {
			return err
		}
		defer h.Shutdown(context.Background())
	}

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	r, err := router.New(ctx, nc, router.Config{})
	if err != nil {
		return err
	}
	defer r.Close()
	return callSome(ctx, r, out)
}

// startNATS starts an in-process NATS server with JetStream, as `troupe dev`
// does: loopback on a random port, data in dir, fsync every 100 ms.
func startNATS(dir string) (*server.Server, error) {
	srv, err := server.NewServer(&server.Options{
		Host:         "127.0.0.1",
		Port:         server.RANDOM_PORT,
		JetStream:    true,
		StoreDir:     dir,
		SyncInterval: 100 * time.Millisecond,
		NoSigs:       true,
		NoLog:        true,
	})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server not ready within 10s")
	}
	return srv, nil
}

func startHost(ctx context.Context, url string, id placement.HostID, logger *slog.Logger) (*host.Host, error) {
	// A host's connection keeps no reconnect buffer: a state save must not
	// wait out an outage in memory and land after the lease is gone.
	nc, err := nats.Connect(url, nats.Name("example host "+string(id)), nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, err
	}
	h, err := host.New(nc, host.Config{ID: id, Logger: logger})
	if err != nil {
		return nil, err
	}
	if err := counter.Register(h); err != nil {
		return nil, err
	}
	if err := h.Register("greeter", greeter, host.NoState()); err != nil {
		return nil, err
	}
	return h, h.Start(ctx)
}

func callSome(ctx context.Context, r *router.Router, out io.Writer) error {
	for _, id := range []placement.ActorID{"apples", "pears", "plums"} {
		total, err := r.Call(ctx, counter.Type, id, "add", []byte("3"))
		if err != nil {
			return err
		}
		owner, _ := r.Table().Owner(counter.Type, id)
		fmt.Fprintf(out, "counter %s = %s (on %s)\n", id, total, owner.ID)
	}
	reply, err := r.Call(ctx, "greeter", "g1", "hello", []byte("world"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\n", reply)
	_, err = r.Call(ctx, counter.Type, "apples", "add", []byte("three"))
	fmt.Fprintf(out, "bad input: %v\n", err)
	return nil
}
