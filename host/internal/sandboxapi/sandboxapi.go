// Package sandboxapi links package actortest to the in-memory runtime that
// lives inside package host (its turn engine is unexported there). Package
// host sets New when it is initialised; actortest calls it. Values typed
// any are host types, which this package cannot name without an import
// cycle: a host.Config, a host.Factory and a []host.TypeOption.
package sandboxapi

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// Sandbox runs actor types in memory, on a clock moved by hand.
type Sandbox interface {
	Register(typ placement.ActorType, factory any, opts any) error
	// SetRouter sets the router the actors call others with.
	SetRouter(r *router.Router)
	Call(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) ([]byte, error)
	// Send admits a one-way call; its outcome goes nowhere.
	Send(ctx context.Context, typ placement.ActorType, id placement.ActorID, method string, payload []byte, hdr nats.Header) error
	// Stored is the actor's saved state: unnamed state, named keys and
	// revision (0: never saved).
	Stored(typ placement.ActorType, id placement.ActorID) (state []byte, keys map[string][]byte, rev uint64)
	Active(typ placement.ActorType) []placement.ActorID
	Deactivate(typ placement.ActorType, id placement.ActorID)
	Now() time.Time
	// AfterFunc runs f when Advance reaches d from now; stop cancels it.
	AfterFunc(d time.Duration, f func()) (stop func())
	Advance(d time.Duration)
	Close()
}

// New makes a Sandbox from a host.Config, with its clock at start.
var New func(cfg any, start time.Time) (Sandbox, error)
