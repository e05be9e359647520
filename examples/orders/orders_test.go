package orders_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/troupe-dev/troupe/examples/orders"
	"github.com/troupe-dev/troupe/host/actortest"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// TestStreamCustomerAppliesEachOrderOnce delivers orders as the puller
// does, with redeliveries among them: each counts once, and a bad order is
// INVALID_ARGUMENT.
func TestStreamCustomerAppliesEachOrderOnce(t *testing.T) {
	kit := actortest.New(t)
	kit.Register(orders.Type, orders.New)
	deliver := func(seq uint64, body string) error {
		_, err := kit.Call(orders.Type, "c1", "onOrder", []byte(body),
			router.WithHeader(protocol.HeaderStream, orders.Subscription),
			router.WithHeader(protocol.HeaderStreamSeq, strconv.FormatUint(seq, 10)))
		return err
	}
	for _, d := range []struct {
		seq  uint64
		body string
	}{{1, `{"amount":5}`}, {2, `{"amount":7}`}, {2, `{"amount":7}`}, {1, `{"amount":5}`}, {4, `{"amount":1}`}} {
		if err := deliver(d.seq, d.body); err != nil {
			t.Fatalf("seq %d: %v", d.seq, err)
		}
	}
	if err := deliver(5, "not json"); !errors.Is(err, protocol.ErrInvalidArgument) {
		t.Fatalf("a bad order: %v, want INVALID_ARGUMENT", err)
	}
	kit.Deactivate(orders.Type, "c1") // the cursor comes back from the store
	if err := deliver(4, `{"amount":1}`); err != nil {
		t.Fatal(err)
	}
	reply, err := kit.Call(orders.Type, "c1", "total", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got orders.Totals
	if err := json.Unmarshal(reply, &got); err != nil {
		t.Fatal(err)
	}
	if want := (orders.Totals{Total: 13, Orders: 3, LastSeq: 4}); got != want {
		t.Fatalf("totals %+v, want %+v", got, want)
	}
}
