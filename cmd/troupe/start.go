package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/jsutil"
)

// startUsage documents --start-timeout, with a sentence on the command's
// default and its usage text's indent for descriptions.
func startUsage(def, indent string) string {
	lines := []string{
		"how long to wait at start for NATS, JetStream and the",
		"host's own id. A server not up yet, a link cut while",
		"joining, or the host's previous process still holding",
		"its lease are waited out, with a line logged per change",
		"of what it waits for; credentials or permissions",
		"refused fail at once. " + def,
	}
	return "  --start-timeout DURATION\n" + indent + strings.Join(lines, "\n"+indent) + "\n"
}

// startFlag is --start-timeout: how long a host's start may wait, 0 for as
// long as it takes.
type startFlag struct{ timeout time.Duration }

func (f *startFlag) register(fs *flag.FlagSet, def time.Duration) {
	fs.DurationVar(&f.timeout, "start-timeout", def, "how long to wait at start (0: indefinitely)")
}

func (f *startFlag) check() error {
	if f.timeout < 0 {
		return fmt.Errorf("--start-timeout %v: want 0 (wait indefinitely) or a positive duration", f.timeout)
	}
	return nil
}

// starting bounds a host's start: connecting, then host.Start. It ends at
// the start timeout, when ctx ends (a signal), or when the connection
// reports an error that waiting cannot cure.
type starting struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
	done   chan struct{} // closed once the host has joined
}

func (f *startFlag) begin(ctx context.Context) *starting {
	s := &starting{done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	if f.timeout > 0 {
		var stop context.CancelFunc
		s.ctx, stop = context.WithTimeoutCause(s.ctx, f.timeout, fmt.Errorf("--start-timeout %v passed", f.timeout))
		context.AfterFunc(s.ctx, stop)
	}
	return s
}

// joined ends the start: errors from here on are the running host's.
func (s *starting) joined() {
	s.once.Do(func() { close(s.done) })
	s.cancel(nil)
}

// connError ends the start on a permissions violation, which NATS reports
// only on the connection while the request that caused it goes unanswered:
// waiting would not help.
func (s *starting) connError(err error) {
	select {
	case <-s.done:
		return
	default:
	}
	if errors.Is(err, nats.ErrPermissionViolation) {
		s.cancel(fmt.Errorf("NATS refused a request (%w); give the host's user the permissions in examples/permissions/server.conf", err))
	}
}

// abandoned reports whether a failed start ended because the command was
// asked to stop (a signal), not because of a fault.
func (s *starting) abandoned(parent context.Context) bool {
	return parent.Err() != nil && !errors.Is(context.Cause(parent), errConnClosed)
}

// connectWait connects like c.connect, and waits while the failure is one
// that time cures (connectTransient), until s ends. It logs once when it
// starts waiting and once per change of the reason.
func (c *connFlags) connectWait(s *starting, log *slog.Logger, name string, opts ...nats.Option) (*nats.Conn, error) {
	var nc *nats.Conn
	var waited string
	err := jsutil.Retry(s.ctx, 0, func(context.Context) error {
		var err error
		nc, err = c.connect(name, opts...)
		if connectTransient(err) {
			return jsutil.Retryable(err)
		}
		return err
	}, func(err error) {
		if msg := err.Error(); msg != waited {
			waited = msg
			log.Warn("waiting for NATS", "err", err)
		}
	})
	return nc, err
}

// connectTransient reports whether a failed connect may succeed if tried
// again later, so that a host started alongside its server waits for it.
//
// Transient: no server listening yet (nats.ErrNoServers, connection refused
// or reset), a name that does not resolve yet, a dial or handshake that timed
// out or was cut (net.Error, io.EOF), and a server at its connection limit.
//
// Permanent, reported at once: credentials refused or expired, TLS refused by
// the server, a certificate that does not verify, TLS wanted on one side
// only, and everything not listed as transient (a malformed URL, for one).
func connectTransient(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	var verify *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.Is(err, nats.ErrTLS):
		return false
	case errors.As(err, &verify), errors.As(err, &unknownCA), errors.As(err, &badHost),
		errors.As(err, &invalid), errors.As(err, &record):
		return false
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the server
		return false
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrMaxConnectionsExceeded), errors.Is(err, nats.ErrMaxAccountConnectionsExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
