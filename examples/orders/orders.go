// Package orders is the stream example that `troupe dev` and `troupe host`
// serve: a JetStream stream of orders delivered into per-customer actors
// that keep totals.
//
// Orders are published to orders.<customer>.<kind> on the stream ORDERS
// with a JSON body {"amount": N}; the customer actor named by the second
// token gets each one, exactly once and in stream order, as the method
// onOrder:
//
//	nats pub orders.c1.new '{"amount":5}'
//	troupe call customer c1 total      # {"total":5,"orders":1,"last_seq":1}
//
// The actor also checks the order it sees: the stream sequence of each
// message (the Troupe-Stream-Seq header) must be above the last one it
// applied, and out_of_order counts those that were not (never, if troupe
// keeps its promise). docs/streams.md tells how delivery works.
package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// Type is the actor type of a customer.
const Type placement.ActorType = "customer"

// The stream, its subjects and the subscription.
const (
	Stream       = "ORDERS"
	Subjects     = "orders.*.*"
	Subscription = "orders"
)

// Order is an order message's body.
type Order struct {
	Amount int64 `json:"amount"`
}

// Totals is a customer's state and the reply of total.
type Totals struct {
	Total      int64  `json:"total"`
	Orders     int64  `json:"orders"`
	LastSeq    uint64 `json:"last_seq"`
	OutOfOrder int64  `json:"out_of_order,omitempty"`
}

// Register adds the customer type to h, subscribed to the ORDERS stream.
// The stream must exist for orders to flow (EnsureStream; `troupe dev`
// makes it); until it does the host waits for it.
func Register(h *host.Host, opts ...host.TypeOption) error {
	sub := host.Subscribe(host.Subscription{
		Name:    Subscription,
		Stream:  Stream,
		Subject: Subjects,
		IDToken: 1,
		Method:  "onOrder",
	})
	return h.Register(Type, New, append([]host.TypeOption{sub}, opts...)...)
}

// EnsureStream makes the ORDERS stream with the given replicas, or leaves an
// existing one as it is.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        Stream,
		Description: "troupe example: orders, delivered to customer actors",
		Subjects:    []string{"orders.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil
	}
	return err
}

// Customer is one customer activation.
type Customer struct {
	self *host.Self
	t    Totals
}

// New is the customer's host.Factory.
func New(self *host.Self) host.Actor { return &Customer{self: self} }

// Activate reads the stored totals.
func (c *Customer) Activate(context.Context) error {
	if s := c.self.State(); len(s) > 0 {
		if err := json.Unmarshal(s, &c.t); err != nil {
			return protocol.Errorf(protocol.CodeInternal, "stored totals: %v", err)
		}
	}
	return nil
}

// Receive serves onOrder and total.
func (c *Customer) Receive(_ context.Context, call host.Call) ([]byte, error) {
	switch call.Method {
	case "onOrder":
		return nil, c.onOrder(call)
	case "total":
		return json.Marshal(c.t)
	}
	return nil, host.UnknownMethod(call)
}

func (c *Customer) onOrder(call host.Call) error {
	var o Order
	if err := json.Unmarshal(call.Payload, &o); err != nil {
		return protocol.Errorf(protocol.CodeInvalidArgument, "order: want {\"amount\": N}: %v", err)
	}
	if seq, err := protocol.ParseStreamSeq(call.Header.Get(protocol.HeaderStreamSeq)); err == nil {
		if seq <= c.t.LastSeq {
			c.t.OutOfOrder++
		}
		c.t.LastSeq = seq
	}
	c.t.Total += o.Amount
	c.t.Orders++
	b, err := json.Marshal(c.t)
	if err != nil {
		return fmt.Errorf("totals: %w", err)
	}
	c.self.SetState(b)
	return nil
}
