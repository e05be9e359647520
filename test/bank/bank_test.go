// Package bank_test runs the bank example's accounts on two hosts, so that
// the transfer and its reentrant callback cross hosts both ways.
package bank_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/examples/bank"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// bankOnTwoHosts serves accounts on two hosts and returns a router and two
// account ids owned by different hosts, so the transfer and its callback
// cross hosts both ways.
func bankOnTwoHosts(t *testing.T, opts ...host.TypeOption) (*router.Router, placement.ActorID, placement.ActorID) {
	t.Helper()
	s := natstest.Server(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, id := range []placement.HostID{"h1", "h2"} {
		h, err := host.New(natstest.Connect(t, s), host.Config{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := bank.Register(h, opts...); err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
	}
	r := natstest.Router(t, natstest.Connect(t, s))
	for len(r.Table().Members()) < 2 {
		select {
		case <-r.Watcher().Changed():
		case <-ctx.Done():
			t.Fatal("hosts did not join")
		}
	}
	var ids []placement.ActorID
	owners := map[placement.HostID]bool{}
	for i := 0; len(ids) < 2; i++ {
		id := placement.ActorID(fmt.Sprintf("acct%d", i))
		if m, _ := r.Table().Owner(bank.Type, id); !owners[m.ID] {
			owners[m.ID] = true
			ids = append(ids, id)
		}
	}
	return r, ids[0], ids[1]
}

func balance(t *testing.T, r *router.Router, id placement.ActorID) int64 {
	t.Helper()
	n, err := bank.Balance.Call(context.Background(), r, id, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// With reentrancy on, the receiver's confirmation callback enters the
// sender's waiting transfer turn, and the money moves.
func TestTransferWithReentrancy(t *testing.T) {
	r, alice, bob := bankOnTwoHosts(t, host.Reentrant())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bank.Deposit.Call(ctx, r, alice, 100); err != nil {
		t.Fatal(err)
	}
	rc, err := bank.Transfer.Call(ctx, r, alice, bank.TransferRequest{To: bob, Amount: 30})
	if err != nil || rc.Balance != 70 {
		t.Fatalf("transfer = %+v, %v", rc, err)
	}
	if a, b := balance(t, r, alice), balance(t, r, bob); a != 70 || b != 30 {
		t.Fatalf("balances %d, %d; want 70, 30", a, b)
	}
	_, err = bank.Transfer.Call(ctx, r, alice, bank.TransferRequest{To: bob, Amount: 500})
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeApplication, AppCode: "insufficient_funds"}) {
		t.Fatalf("overdraft: %v", err)
	}
	// A forged credit (no such pending transfer) is refused by the sender.
	if _, err := bank.Credit.Call(ctx, r, bob, bank.CreditRequest{From: alice, ID: "forged", Amount: 5}); !errors.Is(err, &protocol.Error{Code: protocol.CodeApplication, AppCode: "unknown_transfer"}) {
		t.Fatalf("forged credit: %v", err)
	}
	if b := balance(t, r, bob); b != 30 {
		t.Fatalf("bob = %d after a forged credit", b)
	}
}

// Without reentrancy the callback is refused at once with WOULD_DEADLOCK
// naming the cycle (not at the deadline), and no money moves.
func TestTransferWithoutReentrancyFailsFast(t *testing.T) {
	r, alice, bob := bankOnTwoHosts(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := bank.Deposit.Call(ctx, r, alice, 100); err != nil {
		t.Fatal(err)
	}
	_, err := bank.Transfer.Call(ctx, r, alice, bank.TransferRequest{To: bob, Amount: 30})
	if !errors.Is(err, protocol.ErrWouldDeadlock) {
		t.Fatalf("transfer: %v, want WOULD_DEADLOCK", err)
	}
	cycle := fmt.Sprintf("account/%s → account/%s → account/%s", alice, bob, alice)
	if !strings.Contains(err.Error(), cycle) {
		t.Fatalf("error %q does not name the cycle %s", err, cycle)
	}
	if ctx.Err() != nil {
		t.Fatal("the transfer ran to its deadline")
	}
	if a, b := balance(t, r, alice), balance(t, r, bob); a != 100 || b != 0 {
		t.Fatalf("balances %d, %d; want 100, 0", a, b)
	}
}
