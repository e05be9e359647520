// Package relay is a Go example actor that calls an actor written in another
// language: `troupe dev` and `troupe host` serve it beside the counter, and
// its calls go to the JavaScript actor jsproxy (examples/node/actor), which
// a worker serves when the host runs with --worker-types jsproxy.
//
//	echo X    calls jsproxy <same id> echo X and replies what it replied
//	add N     calls jsproxy <same id> add N, which adds N to the Go counter
//	          of the same id: a Go actor calls a JavaScript actor that calls
//	          a Go actor, in one call chain
//
// relay keeps no state.
package relay

import (
	"context"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
)

// Type is the actor type relay is registered as.
const Type placement.ActorType = "relay"

// Target is the type relay calls: the JavaScript example actor.
const Target placement.ActorType = "jsproxy"

// New is relay's host.Factory.
func New(self *host.Self) host.Actor {
	return host.ActorFunc(func(ctx context.Context, c host.Call) ([]byte, error) {
		switch c.Method {
		case "echo", "add":
			return self.Router().Call(ctx, Target, self.ID(), c.Method, c.Payload)
		}
		return nil, host.UnknownMethod(c)
	})
}

// Register adds the relay type to h.
func Register(h *host.Host) error { return h.Register(Type, New, host.NoState()) }
