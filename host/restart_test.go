package host_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// A single nats-server keeps the liveness bucket in memory, so restarting
// it takes every host's lease with it. The hosts find their keys gone,
// create the bucket again and join again as new incarnations, and serve
// the same actors from their saved state: no acknowledged write is lost.
func TestHostsServeAgainAfterTheServerRestarts(t *testing.T) {
	dir, addr := t.TempDir(), natstest.FreeAddr(t)
	s := natstest.ServerAt(t, dir, addr)
	hosts := []*host.Host{startHost(t, s, host.Config{}, registerCounter), startHost(t, s, host.Config{}, registerCounter)}
	r := newRouter(t, s)
	waitMembers(t, r, 2)
	nc := natstest.Connect(t, s)
	before := map[placement.HostID]string{}
	for _, h := range hosts {
		rec, _ := natstest.HostRecord(t, nc, h.ID())
		before[h.ID()] = rec.GetIncarnation()
	}
	var ids []placement.ActorID
	for i := range 20 {
		ids = append(ids, placement.ActorID(fmt.Sprintf("c%d", i)))
		call(t, r, counter.Type, ids[i], "add", "1")
	}

	s.Shutdown()
	s.WaitForShutdown()
	s = natstest.ServerAt(t, dir, addr)

	// Both hosts come back as new incarnations.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	incarnation := func(id placement.HostID) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, placement.DefaultBucket)
		if err != nil {
			return ""
		}
		entry, err := kv.Get(ctx, placement.HostKey(id))
		if err != nil {
			return ""
		}
		rec := new(pb.HostRecord)
		if proto.Unmarshal(entry.Value(), rec) != nil {
			return ""
		}
		return rec.GetIncarnation()
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range hosts {
		for {
			inc := incarnation(h.ID())
			if inc != "" && inc != before[h.ID()] && h.Ready() == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not join again after the restart (incarnation %q, before %q)", h.ID(), inc, before[h.ID()])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitMembers(t, r, 2)
	for _, id := range ids {
		call(t, r, counter.Type, id, "add", "1")
		if got := call(t, r, counter.Type, id, "get", ""); got != "2" {
			t.Fatalf("counter %s = %s after the restart, want 2", id, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, protocol.LivenessBucket(placement.DefaultBucket)); err != nil {
		t.Fatalf("the liveness bucket after the restart: %v", err)
	}
}
