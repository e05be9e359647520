// Package counter is the example actor that `troupe dev` and `troupe host`
// serve: a durable integer total.
//
//	add N   adds the decimal integer N and replies the new total
//	get     replies the total
//
// Both replies are decimal integers. The total is the actor's durable state,
// stored as its decimal text.
package counter

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/router"
)

// Type is the actor type the counter is registered as.
const Type placement.ActorType = "counter"

// Counter is one counter activation.
type Counter struct {
	self  *host.Self
	total int64
}

// New is the counter's host.Factory.
func New(self *host.Self) host.Actor { return &Counter{self: self} }

// Register adds the counter type to h.
func Register(h *host.Host) error { return h.Register(Type, New) }

// Activate reads the durable total.
func (c *Counter) Activate(context.Context) error {
	if s := c.self.State(); len(s) > 0 {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return router.Errorf(router.CodeInternal, "stored total %q is not an integer", s)
		}
		c.total = n
	}
	return nil
}

// Receive runs add and get.
func (c *Counter) Receive(_ context.Context, call host.Call) ([]byte, error) {
	switch call.Method {
	case "add":
		n, err := strconv.ParseInt(strings.TrimSpace(string(call.Payload)), 10, 64)
		if err != nil {
			return nil, router.Errorf(router.CodeInvalidArgument, "add wants a decimal integer, got %q", truncate(call.Payload))
		}
		if n > 0 && c.total > math.MaxInt64-n || n < 0 && c.total < math.MinInt64-n {
			return nil, router.Errorf(router.CodeInvalidArgument, "add %d would overflow the total %d", n, c.total)
		}
		c.total += n
		c.self.SetState(strconv.AppendInt(nil, c.total, 10))
	case "get":
	default:
		return nil, host.UnknownMethod(call)
	}
	return strconv.AppendInt(nil, c.total, 10), nil
}

func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}
