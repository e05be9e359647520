package cluster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/examples/counter"
	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/internal/cluster"
	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/placement"
	"github.com/troupe-dev/troupe/protocol"
)

// TestReplicasSingleServer: with the replica counts left at 0, a single
// server gets R1 buckets.
func TestReplicasSingleServer(t *testing.T) {
	t.Parallel()
	s := natstest.Server(t)
	startHost(t, natstest.Connect(t, s), host.Config{})
	checkReplicas(t, natstest.Connect(t, s), 1)
}

// TestReplicasCluster: with the replica counts left at 0, a 3-node JetStream
// cluster gets R3 buckets, which later hosts keep.
func TestReplicasCluster(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t, 3)
	startHost(t, c.Connect(t, 0), host.Config{})
	startHost(t, c.Connect(t, 1), host.Config{})
	checkReplicas(t, c.Connect(t, 2), 3)
}

// TestReplicasTwoNodeCluster: a cluster that cannot place 3 replicas gets
// R1 buckets.
func TestReplicasTwoNodeCluster(t *testing.T) {
	t.Parallel()
	c := cluster.Start(t, 2)
	startHost(t, c.Connect(t, 0), host.Config{})
	checkReplicas(t, c.Connect(t, 1), 1)
}

func checkReplicas(t *testing.T, nc *nats.Conn, want int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, bucket := range []string{placement.DefaultBucket, host.DefaultStateBucket} {
		s, err := js.Stream(ctx, protocol.KVStream(bucket))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Replicas; got != want {
			t.Errorf("bucket %s has %d replicas, want %d", bucket, got, want)
		}
	}
}

// startHost starts a counter host on nc; it is closed when t ends.
//
// A start is tried up to three times: on a freshly formed cluster
// nats-server 2.15 (seen with 2.15.2) now and then loses the reply to a
// JetStream request made right after a replicated stream was created (the
// host's lease write has been seen to go unanswered), and the start then
// fails at its deadline. A retry uses a new host id, since the lost write may have
// succeeded and the old id would then be held until its lease expires.
func startHost(t *testing.T, nc *nats.Conn, cfg host.Config) *host.Host {
	t.Helper()
	id := cfg.ID
	for attempt := 1; ; attempt++ {
		h, err := host.New(nc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := counter.Register(h); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		err = h.Start(ctx)
		cancel()
		if err == nil {
			t.Cleanup(h.Close)
			return h
		}
		if attempt == 3 {
			t.Fatalf("host start, attempt %d: %v", attempt, err)
		}
		t.Logf("host start, attempt %d: %v; trying again", attempt, err)
		if id != "" {
			cfg.ID = placement.HostID(fmt.Sprintf("%s-%d", id, attempt))
		}
	}
}
