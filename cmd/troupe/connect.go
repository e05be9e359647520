package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/natscli"
)

// connUsage documents the connection flags in every command's usage.
const connUsage = `Connection flags, named as the nats CLI names them:
  -s, --server URLS    NATS server URLs, comma-separated (default $NATS_URL,
                       else the context's url, else nats://127.0.0.1:4222)
  --context NAME       nats CLI context (default $NATS_CONTEXT): the file
                       $XDG_CONFIG_HOME/nats/context/NAME.json, else
                       ~/.config/nats/context/NAME.json, or a path to a .json
  --creds FILE         user credentials file (JWT and nkey seed)
  --nkey FILE          nkey seed file
  --user USER          user name, with --password PASSWORD
  --token TOKEN        authentication token
  --tlsca FILE         CA certificates to verify the server with
  --tlscert FILE       TLS client certificate, with --tlskey FILE
  Flags override the context; any of --user, --password, --token, --creds
  and --nkey replaces all of the context's credentials.
`

// connFlags are the connection flags, named as the nats CLI names them.
type connFlags struct {
	context string
	flags   natscli.Settings
	getenv  func(string) string
}

// register adds the connection flags to fs.
func (c *connFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	c.getenv = getenv
	f := &c.flags
	fs.StringVar(&f.URL, "s", "", "NATS server URLs, comma-separated")
	fs.StringVar(&f.URL, "server", "", "NATS server URLs, comma-separated")
	fs.StringVar(&c.context, "context", "", "nats CLI context name")
	fs.StringVar(&f.Creds, "creds", "", "NATS user credentials file")
	fs.StringVar(&f.NKey, "nkey", "", "NATS nkey seed file")
	fs.StringVar(&f.User, "user", "", "NATS user name")
	fs.StringVar(&f.Password, "password", "", "NATS password")
	fs.StringVar(&f.Token, "token", "", "NATS token")
	fs.StringVar(&f.CA, "tlsca", "", "TLS certificate authority file")
	fs.StringVar(&f.Cert, "tlscert", "", "TLS client certificate file")
	fs.StringVar(&f.Key, "tlskey", "", "TLS client key file")
}

// settings merges, in the nats CLI's order, the flags over $NATS_URL over
// the context (--context, else $NATS_CONTEXT) over the default URL.
func (c *connFlags) settings() (natscli.Settings, error) {
	var s natscli.Settings
	name := c.context
	if name == "" {
		name = c.getenv("NATS_CONTEXT")
	}
	if name != "" {
		var err error
		if s, err = natscli.Load(name, c.getenv); err != nil {
			return s, err
		}
	}
	s = s.Override(natscli.Settings{URL: c.getenv("NATS_URL")}).Override(c.flags)
	if s.URL == "" {
		s.URL = nats.DefaultURL
	}
	return s, nil
}

// connect opens a connection named name, with opts after the flags' own.
func (c *connFlags) connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	s, err := c.settings()
	if err != nil {
		return nil, err
	}
	all, err := s.Options()
	if err != nil {
		return nil, fmt.Errorf("nats connection settings: %w", err)
	}
	all = append(append([]nats.Option{nats.Name(name)}, all...), opts...)
	nc, err := nats.Connect(s.URL, all...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", natscli.Redact(s.URL), err)
	}
	return nc, nil
}

// logEvents logs a long-lived connection's disconnects, reconnects and
// asynchronous errors; onError, if not nil, also sees each asynchronous
// error.
func logEvents(log *slog.Logger, onError func(error)) []nats.Option {
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
			if onError != nil {
				onError(err)
			}
		}),
	}
}
