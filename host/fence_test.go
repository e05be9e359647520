package host

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/internal/proctest"
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
	renewed, onValid := renewals()
	h := startInternal(t, Config{
		Lease:        placement.LeaseConfig{TTL: time.Second},
		OnActivation: func(r ActivationRecord) { recs <- r },
		OnLeaseValid: onValid,
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
	// The next renewal (every TTL/2) makes the lease valid again.
	deadline := time.After(5 * time.Second)
	for callDirect(t, h, "a") != nil {
		select {
		case <-renewed:
		case <-deadline:
			t.Fatal("the host did not serve again after renewing its lease")
		}
	}
}

// renewals returns a Config.OnLeaseValid and a channel that receives each
// time it is called (dropping calls while one is pending).
func renewals() (<-chan struct{}, func(LeaseRecord)) {
	ch := make(chan struct{}, 1)
	return ch, func(LeaseRecord) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func TestAHostThatLostItsLeaseDropsItsActorsAndJoinsAsANewIncarnation(t *testing.T) {
	renewed, onValid := renewals()
	var out proctest.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	h := startInternal(t, Config{Lease: placement.LeaseConfig{TTL: time.Second}, OnLeaseValid: onValid, Logger: log}, registerEcho)
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
	deadline := time.After(10 * time.Second)
	for {
		changed := h.w.Changed()
		recs := h.w.Records()
		if len(recs) == 1 && recs[0].GetIncarnation() != before {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no new incarnation joined; records %v", recs)
		}
	}
	if n := h.ActiveActors()["echo"]; n != 0 {
		t.Fatalf("%d activations of the old incarnation left", n)
	}
	for callDirect(t, h, "a") != nil {
		select {
		case <-renewed:
		case <-deadline:
			t.Fatal("the new incarnation does not serve")
		}
	}
	// The log says both: that the lease was lost, and that the host is back.
	after := h.rec.incarnation()
	lines := out.String()
	joined := false
	for _, line := range strings.Split(lines, "\n") {
		joined = joined || strings.Contains(line, `msg="host joined again"`) && strings.HasSuffix(line, "incarnation="+after)
	}
	if !strings.Contains(lines, "joining again as a new incarnation") || !joined {
		t.Errorf("the log does not tell the lease loss and the join of %s:\n%s", after, lines)
	}
}
