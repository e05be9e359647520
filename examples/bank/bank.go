// Package bank is the reentrancy example: accounts that transfer money to
// each other, where the receiving account calls back the sending one to
// confirm the transfer before it credits it.
//
//	account A: transfer {to: B, amount}  →  account B: credit {from: A, id, amount}
//	                                          →  account A: confirm {id, amount}
//
// The callback reaches A while A's transfer turn is waiting for B's reply.
// With the account type registered as reentrant (host.Reentrant) it runs
// as a nested turn of that transfer; without, it would wait behind the very
// turn that waits for it, and troupe refuses it at once with
// protocol.ErrWouldDeadlock naming the cycle "account/A → account/B →
// account/A", so the transfer fails fast and changes nothing.
//
// An account keeps two named state keys: "balance" (decimal) and "pending"
// (JSON: the transfers it has sent and not yet finished).
package bank

import (
	"context"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
	"github.com/troupe-dev/troupe/router"
)

// Type is the account actor type.
const Type placement.ActorType = "account"

// TransferRequest asks an account to send money to another.
type TransferRequest struct {
	To     placement.ActorID `json:"to"`
	Amount int64             `json:"amount"`
}

// Receipt is the outcome of a transfer.
type Receipt struct {
	ID      string `json:"id"`
	Balance int64  `json:"balance"` // the sender's balance after it
}

// CreditRequest asks an account to accept a transfer; it checks with the
// sender first.
type CreditRequest struct {
	From   placement.ActorID `json:"from"`
	ID     string            `json:"id"`
	Amount int64             `json:"amount"`
}

// ConfirmRequest asks the sender whether it is really sending a transfer.
type ConfirmRequest struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
}

// The account's methods.
var (
	// Deposit adds money and replies the balance.
	Deposit = router.NewMethod[int64, int64](Type, "deposit", router.Text)
	// Balance replies the balance.
	Balance = router.NewMethod[struct{}, int64](Type, "balance", router.Text)
	// Transfer sends money to another account.
	Transfer = router.NewMethod[TransferRequest, Receipt](Type, "transfer", router.JSON)
	// Credit is a transfer arriving from another account.
	Credit = router.NewMethod[CreditRequest, int64](Type, "credit", router.JSON)
	// Confirm is the receiving account's callback to the sender.
	Confirm = router.NewMethod[ConfirmRequest, struct{}](Type, "confirm", router.JSON)
)

// Register adds the account type to h. Pass host.Reentrant() to let the
// confirmation callback in; without it every transfer fails with
// protocol.ErrWouldDeadlock.
func Register(h *host.Host, opts ...host.TypeOption) error {
	return h.Register(Type, New, opts...)
}

// New is the account's host.Factory.
var New = host.Typed(newAccount,
	host.Handle(Deposit, (*Account).Deposit),
	host.Handle(Balance, (*Account).Balance),
	host.Handle(Transfer, (*Account).Transfer),
	host.Handle(Credit, (*Account).Credit),
	host.Handle(Confirm, (*Account).Confirm),
)

// Account is one account activation.
type Account struct {
	self    *host.Self
	balance int64
	pending map[string]int64 // transfer id → amount, sent and not yet finished
}

func newAccount(self *host.Self) *Account { return &Account{self: self} }

// Activate loads the balance and the pending transfers.
func (a *Account) Activate(context.Context) error {
	var err error
	if a.balance, _, err = host.GetKey[int64](a.self, "balance", router.Text); err != nil {
		return err
	}
	a.pending, _, err = host.GetKey[map[string]int64](a.self, "pending", router.JSON)
	if a.pending == nil {
		a.pending = map[string]int64{}
	}
	return err
}

// save sets both keys; the host saves them together at the end of the turn.
func (a *Account) save() error {
	if err := host.SetKeyOf(a.self, "balance", router.Text, a.balance); err != nil {
		return err
	}
	return host.SetKeyOf(a.self, "pending", router.JSON, a.pending)
}

// Deposit adds a positive amount.
func (a *Account) Deposit(_ context.Context, amount int64) (int64, error) {
	if amount <= 0 {
		return 0, protocol.Errorf(protocol.CodeInvalidArgument, "deposit wants a positive amount, got %d", amount)
	}
	a.balance += amount
	return a.balance, a.save()
}

// Balance replies the balance.
func (a *Account) Balance(context.Context, struct{}) (int64, error) { return a.balance, nil }

// Transfer records the transfer as pending, asks the receiver to credit it
// (the receiver calls Confirm back), then debits it. If the credit fails,
// the turn fails and nothing it changed is saved.
func (a *Account) Transfer(ctx context.Context, req TransferRequest) (Receipt, error) {
	switch {
	case req.Amount <= 0:
		return Receipt{}, protocol.Errorf(protocol.CodeInvalidArgument, "transfer wants a positive amount, got %d", req.Amount)
	case req.To == a.self.ID():
		return Receipt{}, protocol.Errorf(protocol.CodeInvalidArgument, "transfer to the same account")
	case a.balance < req.Amount:
		return Receipt{}, protocol.AppError("insufficient_funds", "balance is lower than the amount")
	}
	id := protocol.NewChainID()
	a.pending[id] = req.Amount
	if _, err := Credit.Call(ctx, a.self.Router(), req.To, CreditRequest{From: a.self.ID(), ID: id, Amount: req.Amount}); err != nil {
		delete(a.pending, id)
		return Receipt{}, err
	}
	delete(a.pending, id)
	a.balance -= req.Amount
	return Receipt{ID: id, Balance: a.balance}, a.save()
}

// Credit confirms the transfer with the sender, then adds it.
func (a *Account) Credit(ctx context.Context, req CreditRequest) (int64, error) {
	if _, err := Confirm.Call(ctx, a.self.Router(), req.From, ConfirmRequest{ID: req.ID, Amount: req.Amount}); err != nil {
		return 0, err
	}
	a.balance += req.Amount
	return a.balance, a.save()
}

// Confirm answers whether this account is sending the transfer.
func (a *Account) Confirm(_ context.Context, req ConfirmRequest) (struct{}, error) {
	if amount, ok := a.pending[req.ID]; !ok || amount != req.Amount {
		return struct{}{}, protocol.AppError("unknown_transfer", "no such transfer pending")
	}
	return struct{}{}, nil
}
