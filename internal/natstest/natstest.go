// Package natstest starts real NATS servers for tests: an embedded
// nats-server with JetStream on a random loopback port and a temporary store,
// shut down when the test ends.
package natstest

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/embedded"
	"github.com/troupe-dev/troupe/internal/tcpproxy"
	"github.com/troupe-dev/troupe/router"
)

// Server starts a JetStream-enabled server for t. The server is shut down
// and its store removed when t ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerIn(t, t.TempDir())
}

// ServerIn starts a server on the given store directory, so a test can stop
// it and start another on the same data.
func ServerIn(t testing.TB, dir string) *server.Server {
	t.Helper()
	return ServerAt(t, dir, "")
}

// ServerAt starts a server on the given store directory and client address
// (HOST:PORT; "" for a random port), so a test can stop it and start
// another where its clients reconnect. It is shut down when t ends.
func ServerAt(t testing.TB, dir, addr string) *server.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Config{StoreDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed when t ends. It
// reconnects for ever, every 20 ms, and keeps no reconnect buffer, as a
// host's connection does.
func Connect(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return connect(t, s.ClientURL(), opts)
}

// ConnectProxied is Connect through a TCP proxy the test can cut
// (tcpproxy.Proxy.Cut, CutOn), which it returns; both close when t ends.
// The client reconnects only through the proxy.
func ConnectProxied(t testing.TB, s *server.Server, opts ...nats.Option) (*tcpproxy.Proxy, *nats.Conn) {
	t.Helper()
	p, err := tcpproxy.Start(strings.TrimPrefix(s.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, connect(t, "nats://"+p.Addr(), append([]nats.Option{nats.IgnoreDiscoveredServers()}, opts...))
}

func connect(t testing.TB, url string, opts []nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond), nats.ReconnectBufSize(-1)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Router returns a router over nc that follows the membership bucket; it is
// closed when t ends.
func Router(t testing.TB, nc *nats.Conn) *router.Router {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := router.New(ctx, nc, router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// FreeAddr returns a loopback address whose port was free just now, for a
// process that must be told its address in advance.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
