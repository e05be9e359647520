package bank_test

import (
	"context"
	"errors"
	"testing"

	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/host/actortest"
	"github.com/troupe-dev/troupe/protocol"
)

// TestTransferInMemory runs the accounts in an actortest Kit: the same
// reentrant callback as across hosts, with the saved keys and the calls the
// accounts made open to inspection.
func TestTransferInMemory(t *testing.T) {
	for _, reentrant := range []bool{true, false} {
		kit := actortest.New(t)
		var opts []host.TypeOption
		if reentrant {
			opts = append(opts, host.Reentrant())
		}
		kit.Register(bank.Type, bank.New, opts...)
		ctx := context.Background()
		if _, err := bank.Deposit.Call(ctx, kit.Router(), "alice", 100); err != nil {
			t.Fatal(err)
		}
		_, err := bank.Transfer.Call(ctx, kit.Router(), "alice", bank.TransferRequest{To: "bob", Amount: 30})
		want := map[bool]string{true: "70/30", false: "100/"}[reentrant]
		alice, _ := kit.Key(bank.Type, "alice", "balance")
		bob, _ := kit.Key(bank.Type, "bob", "balance")
		if got := string(alice) + "/" + string(bob); got != want {
			t.Fatalf("reentrant=%v: saved balances %s, want %s (transfer: %v)", reentrant, got, want, err)
		}
		if !reentrant && !errors.Is(err, protocol.ErrWouldDeadlock) {
			t.Fatalf("transfer without reentrancy: %v, want WOULD_DEADLOCK", err)
		}
		var path []string
		for _, c := range kit.Calls() {
			path = append(path, c.Caller.String()+"→"+string(c.ID)+"."+c.Method)
		}
		if got, want := len(path), 4; got != want { // deposit, transfer, credit, confirm
			t.Fatalf("reentrant=%v: calls %v", reentrant, path)
		}
		if c := kit.Calls()[3]; c.Caller.ID != "bob" || c.ID != "alice" || c.Method != "confirm" {
			t.Fatalf("the callback was %+v, want bob calling alice.confirm", c)
		}
	}
}
