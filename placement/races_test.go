package placement

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/embedded"
	"github.com/troupe-dev/troupe/pb"
)

// The races below need a write to land between two steps of a join or of
// a monitor's check. hookedKV is a real KV bucket that runs a hook before
// each Get or Create: the place to bring that write.
type hookedKV struct {
	jetstream.KeyValue
	beforeGet, beforeCreate func(key string)
}

func (h hookedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if h.beforeGet != nil {
		h.beforeGet(key)
	}
	return h.KeyValue.Get(ctx, key)
}

func (h hookedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	if h.beforeCreate != nil {
		h.beforeCreate(key)
	}
	return h.KeyValue.Create(ctx, key, value, opts...)
}

// once runs f the first time it is called with key.
func once(key string, f func()) func(string) {
	var o sync.Once
	return func(k string) {
		if k == key {
			o.Do(f)
		}
	}
}

func buckets(t *testing.T) (jetstream.JetStream, jetstream.KeyValue, jetstream.KeyValue) {
	t.Helper()
	s, err := embedded.Start(embedded.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := EnsureBucket(context.Background(), js, BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	live, err := EnsureLivenessBucket(context.Background(), js, BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return js, kv, live
}

func marshal(t *testing.T, rec *pb.HostRecord) []byte {
	t.Helper()
	data, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A monitor whose purge of a dead host's record meets a newer write of that
// same dead incarnation (a drain it sent as its key expired) reads the
// record again and removes it: nothing else would bring the check back.
func TestAMonitorPurgesAgainAfterALastWriteOfTheDead(t *testing.T) {
	_, kv, live := buckets(t)
	ctx := context.Background()
	rec := &pb.HostRecord{HostId: "x", Subject: "troupe.host.x", ActorTypes: []string{"counter"}, Incarnation: "i1",
		Protocol: 2, LivenessBucket: live.Bucket(), LeaseTtlMs: 1000}
	if _, err := kv.Create(ctx, HostKey("x"), marshal(t, rec)); err != nil {
		t.Fatal(err)
	}
	// x's liveness key is gone; as the monitor reads it, x's drain lands.
	drain := func() {
		draining := proto.Clone(rec).(*pb.HostRecord)
		draining.State = pb.HostState_HOST_STATE_DRAINING
		if _, err := kv.Put(ctx, HostKey("x"), marshal(t, draining)); err != nil {
			t.Error(err)
		}
	}
	m := &Monitor{kv: kv, live: hookedKV{KeyValue: live, beforeGet: once(AliveKey("x"), drain)}, markerTTL: time.Hour, life: ctx}
	if !m.check("x") {
		t.Fatal("the check could not tell")
	}
	if e, err := kv.Get(ctx, HostKey("x")); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("x's record after the check: %v %v, want it removed", e, err)
	}
}

// A join that found the liveness key without any message, and no record,
// still waits out a record of another incarnation written before its own
// (one that joined as the bucket was lost): it writes that incarnation's
// key over its own, with that incarnation's TTL, and is refused.
func TestAJoinWaitsOutARecordWrittenAsItJoined(t *testing.T) {
	js, kv, live := buckets(t)
	ctx := context.Background()
	other := &pb.HostRecord{HostId: "x", Subject: "troupe.host.x", ActorTypes: []string{"counter"}, Incarnation: "other",
		Protocol: 2, LivenessBucket: live.Bucket(), LeaseTtlMs: 3000}
	write := func() {
		if _, err := kv.Create(ctx, HostKey("x"), marshal(t, other)); err != nil {
			t.Error(err)
		}
	}
	// The join's first look at the record (a Get) finds none; the other
	// incarnation's lands just before the join creates its own.
	looked := false
	hooked := hookedKV{KeyValue: kv, beforeGet: once(HostKey("x"), func() { looked = true }), beforeCreate: once(HostKey("x"), write)}
	rec := &pb.HostRecord{HostId: "x", Subject: "troupe.host.x", ActorTypes: []string{"counter"}, Incarnation: "mine"}
	_, err := Join(ctx, js, hooked, rec, LeaseConfig{TTL: time.Second, Liveness: live}, nil)
	if !errors.Is(err, ErrHostIDInUse) {
		t.Fatalf("join: %v, want ErrHostIDInUse", err)
	}
	if !looked {
		t.Fatal("the join did not look for a record before taking the key")
	}
	e, err := live.Get(ctx, AliveKey("x"))
	if err != nil || string(e.Value()) != "other" {
		t.Fatalf("alive.x: %v %v, want the other incarnation's", e, err)
	}
	m, err := lastMsg(ctx, js, live.Bucket(), AliveKey("x"))
	if err != nil || m.Header.Get(jetstream.MsgTTLHeader) != "3s" {
		t.Fatalf("alive.x's TTL: %v %v, want the other incarnation's 3s", m, err)
	}
	s, err := kv.Get(ctx, HostKey("x"))
	if err != nil {
		t.Fatal(err)
	}
	stored := new(pb.HostRecord)
	if err := proto.Unmarshal(s.Value(), stored); err != nil || stored.GetIncarnation() != "other" {
		t.Fatalf("x's record: %v %v, want the other incarnation's", stored, err)
	}
}
