package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// callDirect sends one call to h's own subject, bypassing the router's
// retries, and returns the host's answer.
func callDirect(t *testing.T, h *Host, id string) error {
	t.Helper()
	msg := nats.NewMsg(h.Subject())
	msg.Header.Set(protocol.HeaderType, "echo")
	msg.Header.Set(protocol.HeaderID, id)
	msg.Header.Set(protocol.HeaderMethod, "m")
	resp, err := h.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := protocol.DecodeError(resp.Header, resp.Data); e != nil {
		return e
	}
	return nil
}

func registerEcho(h *Host) {
	_ = h.Register("echo", Func(func(_ context.Context, c Call) ([]byte, error) { return c.Payload, nil }))
}

func TestAHostWhoseLeaseIsNotValidRunsNoTurn(t *testing.T) {
	recs := make(chan ActivationRecord, 16)
	h := startInternal(t, Config{
		Lease:        placement.LeaseConfig{TTL: time.Second},
		OnActivation: func(r ActivationRecord) { recs <- r },
	}, registerEcho)
	if err := callDirect(t, h, "a"); err != nil {
		t.Fatalf("call with a valid lease: %v", err)
	}
	h.lease().Invalidate()
	if err := callDirect(t, h, "a"); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("call on a fenced host: %v, want UNAVAILABLE", err)
	}
	if err := callDirect(t, h, "b"); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("first call of an actor on a fenced host: %v, want UNAVAILABLE", err)
	}
	// The fenced turn discarded a's activation; its end is recorded once it
	// has closed, which may be after the reply left.
	for _, want := range []string{"start", "end"} {
		select {
		case r := <-recs:
			if r.ID != "a" || r.End.IsZero() != (want == "start") || r.End.After(time.Now()) {
				t.Fatalf("activation record %+v, want a's %s", r, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no record of a's %s", want)
		}
	}
	select {
	case r := <-recs:
		t.Fatalf("unexpected activation record %+v: b never activated", r)
	default:
	}
	// The next renewal (every TTL/4) makes the lease valid again.
	deadline := time.Now().Add(5 * time.Second)
	for callDirect(t, h, "a") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the host did not serve again after renewing its lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAHostThatLostItsLeaseDropsItsActorsAndJoinsAsANewIncarnation(t *testing.T) {
	h := startInternal(t, Config{Lease: placement.LeaseConfig{TTL: time.Second}}, registerEcho)
	for _, id := range []string{"a", "b", "c"} {
		if err := callDirect(t, h, id); err != nil {
			t.Fatal(err)
		}
	}
	before := h.rec.incarnation()
	// Another writer takes the record away: the next renewal is refused.
	if err := h.members.Purge(context.Background(), placement.HostKey(h.ID())); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := h.w.Records()
		if len(recs) == 1 && recs[0].GetIncarnation() != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new incarnation joined; records %v", recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.ActiveActors()["echo"]; n != 0 {
		t.Fatalf("%d activations of the old incarnation left", n)
	}
	for callDirect(t, h, "a") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the new incarnation does not serve")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
