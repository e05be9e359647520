package host

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
)

// joinedFence returns a fence holding a real lease of its own server.
func joinedFence(t *testing.T) *fence {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pb.HostRecord{HostId: "f", Subject: "troupe.host.f", Incarnation: "i1"}
	l, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: time.Minute}, func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	f := newFence("f")
	f.joined(l)
	return f
}

func TestFenceStopsAnEndedEpoch(t *testing.T) {
	f := newFence("f")
	if f.mayAct(0) {
		t.Fatal("a fence without a lease let an activation act")
	}
	if l := f.joinedLease(closedChan()); l != nil {
		t.Fatal("joinedLease returned a lease before Join")
	}
	f = joinedFence(t)
	old := f.current()
	if !f.mayAct(old) {
		t.Fatal("the current epoch with a valid lease may not act")
	}
	end := time.Now()
	f.next(end)
	if f.mayAct(old) || !f.mayAct(f.current()) {
		t.Fatal("after next, the old epoch may act or the new one may not")
	}
	if got := f.actedUntil(old, end.Add(time.Hour)); !got.Equal(end) {
		t.Fatalf("actedUntil(old epoch) = %v, want its end %v", got, end)
	}
	now := time.Now()
	if got := f.actedUntil(f.current(), now); !got.Equal(now) {
		t.Fatalf("actedUntil(current) = %v, want now", got)
	}
}

func TestFenceCloseWaitsForSavesInFlight(t *testing.T) {
	f := joinedFence(t)
	e := f.current()
	if !f.beginSave(e) {
		t.Fatal("a save of the current epoch was refused")
	}
	closed := make(chan struct{})
	go func() {
		f.close(context.Background())
		close(closed)
	}()
	// close invalidates the lease first: no new save passes, even while it
	// waits for the one in flight.
	for f.mayAct(e) {
		select {
		case <-closed:
			t.Fatal("close returned with a save in flight")
		default:
		}
		<-time.After(time.Millisecond)
	}
	if f.beginSave(e) {
		t.Fatal("a save passed a closing fence")
	}
	select {
	case <-closed:
		t.Fatal("close returned with a save in flight")
	default:
	}
	f.endSave()
	select {
	case <-closed:
	case <-time.After(hang):
		t.Fatal("close did not return once the save was answered")
	}
}

func closedChan() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}
