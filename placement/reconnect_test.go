package placement_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// A watcher cut off while a host leaves, for longer than the bucket keeps
// the departure's marker, must not keep the departed host: it reads the
// bucket again when its connection comes back.
func TestAWatcherReadsTheBucketAgainAfterAGapLongerThanTheMarkerTTL(t *testing.T) {
	s := natstest.Server(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := placement.EnsureBucket(ctx, js, placement.BucketConfig{MarkerTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	proxy, nc := natstest.ConnectProxied(t, s)
	wjs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	wkv, err := wjs.KeyValue(ctx, kv.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, wkv)
	w.FollowReconnects(nc)

	join(t, js, kv, "a", nil)
	rec := &pb.HostRecord{HostId: "b", Subject: "troupe.host.b", ActorTypes: []string{"counter"}}
	b, err := placement.Join(ctx, js, kv, rec, placement.LeaseConfig{TTL: testTTL, MarkerTTL: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	waitTable(t, w, "two hosts", members(2))

	proxy.Cut()
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until the server has removed b's purge marker.
	stream, err := js.Stream(ctx, protocol.KVStream(kv.Bucket()))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := stream.GetLastMsgForSubject(ctx, protocol.KVSubject(kv.Bucket(), placement.HostKey("b")))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's purge marker is still there: %v", err)
		}
	}
	proxy.Restore()
	tab := waitTable(t, w, "b's departure", members(1))
	if _, ok := tab.Member("a"); !ok {
		t.Fatal("a is missing after the re-read")
	}
}
