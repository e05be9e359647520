package router

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
)

// Local serves a Router's calls in its own process instead of over NATS (see
// NewLocal). Package host/actortest is one: it runs the actors a test
// registers in memory. Its methods are called from many goroutines at once.
type Local interface {
	// Call runs one call. hdr holds the caller's headers (WithHeader) and,
	// for a call made from inside a turn, the call chain's (HeaderChain,
	// HeaderChainPath). ctx carries the call's deadline.
	Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error)
	// Send delivers a one-way message; see Router.Send.
	Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error
	// SetReminder, DeleteReminder and Reminders keep the actors'
	// reminders; see the Router methods of the same names.
	SetReminder(ctx context.Context, typ placement.ActorType, id placement.ActorID, r Reminder) error
	DeleteReminder(ctx context.Context, typ placement.ActorType, id placement.ActorID, name string) error
	Reminders(ctx context.Context, typ placement.ActorType, id placement.ActorID) ([]Reminder, error)
}

// NewLocal returns a Router that hands every call, one-way message and
// reminder to l, after the checks a Router makes over NATS (names, ids,
// the default timeout, the call chain). It has no table: Table is empty and
// Watcher nil. Tests use it to run actors without a server.
func NewLocal(l Local, cfg Config) *Router {
	r := &Router{local: l, timeout: cfg.DefaultTimeout, cfg: cfg}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	return r
}

// localHeader is the request header of a call a Local serves: the caller's
// headers and the call chain's.
func (c *call) localHeader() nats.Header {
	hdr := nats.Header{}
	for k, v := range c.header {
		hdr[k] = append([]string(nil), v...)
	}
	if c.chain != "" {
		hdr.Set(HeaderChain, c.chain)
		hdr.Set(HeaderChainPath, c.path)
	}
	return hdr
}

// localCall runs c through the router's Local, under c's deadline.
func (c *call) localCall(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithDeadline(ctx, c.deadline)
	defer cancel()
	return c.r.local.Call(ctx, c.typ, c.id, c.method, c.payload, c.localHeader())
}
