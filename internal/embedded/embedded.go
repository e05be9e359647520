// Package embedded starts an in-process NATS server with JetStream. `troupe
// dev` runs on it, and so does every test: the same server code as a
// standalone nats-server, with no process to install or manage.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says how to start the server. The zero value listens on a random
// loopback port and stores JetStream data in a directory the caller must
// provide.
type Config struct {
	// Listen is HOST:PORT for clients; "" means 127.0.0.1 on a random port.
	Listen string
	// StoreDir holds JetStream data. Required.
	StoreDir string
	// SyncAlways makes JetStream fsync every write before acknowledging it.
	// Off, the server fsyncs every SyncInterval: a process crash loses
	// nothing, an OS crash or power loss can lose the last interval's writes.
	SyncAlways bool
	// SyncInterval is the fsync period when SyncAlways is off; 0 means the
	// server's default (2 minutes).
	SyncInterval time.Duration
	// ServerName names the server in logs and cluster views; "" means
	// "troupe".
	ServerName string
	// Logs routes the server's log lines to the process's standard error.
	Logs bool
	// Monitor is HOST:PORT for the server's HTTP monitoring endpoints
	// (/varz, /connz, ...); "" means none, port 0 a random port (see
	// server.Server.MonitorAddr). The scale benchmark reads /varz.
	Monitor string
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*server.Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if err := checkFree(opts.Host, opts.Port); err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if cfg.Logs {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready to accept connections on %s within 10s", cfg.Listen)
	}
	return s, nil
}

func (cfg Config) options() (*server.Options, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: no store directory")
	}
	host, port := "127.0.0.1", server.RANDOM_PORT
	if cfg.Listen != "" {
		h, p, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen address %q: %w", cfg.Listen, err)
		}
		if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("embedded nats: listen address %q: bad port", cfg.Listen)
		}
		if port == 0 {
			port = server.RANDOM_PORT // the server reads 0 as its default, 4222
		}
		if h != "" {
			host = h
		}
	}
	name := cfg.ServerName
	if name == "" {
		name = "troupe"
	}
	httpHost, httpPort, err := monitorAddr(cfg.Monitor)
	if err != nil {
		return nil, err
	}
	return &server.Options{
		ServerName:   name,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		NoSigs:       true,
		NoLog:        !cfg.Logs,
		HTTPHost:     httpHost,
		HTTPPort:     httpPort,
	}, nil
}

// monitorAddr splits Config.Monitor into the server's HTTP options; "" leaves
// monitoring off (port 0).
func monitorAddr(addr string) (host string, port int, err error) {
	if addr == "" {
		return "", 0, nil
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("embedded nats: monitor address %q: %w", addr, err)
	}
	if port, err = strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embedded nats: monitor address %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, port, nil
}

// checkFree fails at once when the address is taken; the server itself would
// only log it and never become ready.
func checkFree(host string, port int) error {
	if port == server.RANDOM_PORT {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	return l.Close()
}
