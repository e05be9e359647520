package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
)

// connFlags are the connection flags, as the nats CLI names them.
type connFlags struct {
	server string
	creds  string
}

// register adds -s/--server and --creds to fs.
func (c *connFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("NATS_URL")
	if def == "" {
		def = nats.DefaultURL
	}
	fs.StringVar(&c.server, "s", def, "NATS server URL")
	fs.StringVar(&c.server, "server", def, "NATS server URL")
	fs.StringVar(&c.creds, "creds", "", "NATS user credentials file")
}

// connect opens a connection named name, with opts after the flags' own.
func (c *connFlags) connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := []nats.Option{nats.Name(name)}
	if c.creds != "" {
		all = append(all, nats.UserCredentials(c.creds))
	}
	nc, err := nats.Connect(c.server, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.server, err)
	}
	return nc, nil
}

// logEvents logs a long-lived connection's disconnects, reconnects and
// asynchronous errors.
func logEvents(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats error", "err", err)
		}),
	}
}
