// Package counter is the example actor that `troupe dev` and `troupe host`
// serve: a durable integer total.
//
//	add N   adds the decimal integer N and replies the new total
//	get     replies the total
//
// Both replies are decimal integers. The total is the actor's durable state,
// stored as its decimal text.
//
// The methods are typed (Add, Get) and use the text codec, so on the wire a
// request and a reply are plain decimal text: `troupe call counter c1 add 5`
// and `nats req troupe.call.counter.c1.add 5` work as they always have, and
// Go callers write counter.Add.Call(ctx, r, "c1", 5).
package counter

import (
	"context"
	"math"
	"strconv"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Type is the actor type the counter is registered as.
const Type placement.ActorType = "counter"

// The counter's methods, for callers and for the host.
var (
	// Add adds n to the total and replies the new total.
	Add = router.NewMethod[int64, int64](Type, "add", router.Text)
	// Get replies the total.
	Get = router.NewMethod[struct{}, int64](Type, "get", router.Text)
)

// Counter is one counter activation.
type Counter struct {
	self  *host.Self
	total int64
}

// factory serves the counter's typed methods.
var factory = host.Typed(newCounter,
	host.Handle(Add, (*Counter).Add),
	host.Handle(Get, (*Counter).Get),
)

func newCounter(self *host.Self) *Counter { return &Counter{self: self} }

// New is the counter's host.Factory.
func New(self *host.Self) host.Actor { return factory(self) }

// Register adds the counter type to h.
func Register(h *host.Host) error { return h.Register(Type, New) }

// Activate reads the durable total.
func (c *Counter) Activate(context.Context) error {
	if s := c.self.State(); len(s) > 0 {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return protocol.Errorf(protocol.CodeInternal, "stored total %q is not an integer", s)
		}
		c.total = n
	}
	return nil
}

// Add adds n to the total; the new total is saved before the reply.
func (c *Counter) Add(_ context.Context, n int64) (int64, error) {
	if n > 0 && c.total > math.MaxInt64-n || n < 0 && c.total < math.MinInt64-n {
		return 0, protocol.Errorf(protocol.CodeInvalidArgument, "add %d would overflow the total %d", n, c.total)
	}
	c.total += n
	c.self.SetState(strconv.AppendInt(nil, c.total, 10))
	return c.total, nil
}

// Get replies the total.
func (c *Counter) Get(context.Context, struct{}) (int64, error) { return c.total, nil }
