package natstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
)

// Members opens the default membership bucket.
func Members(t testing.TB, nc *nats.Conn) jetstream.KeyValue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, placement.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// HostRecord reads the membership record of id from the default bucket,
// with its entry; nil, nil when there is none.
func HostRecord(t testing.TB, nc *nats.Conn, id placement.HostID) (*pb.HostRecord, jetstream.KeyValueEntry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := Members(t, nc).Get(ctx, placement.HostKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	rec := new(pb.HostRecord)
	if err := proto.Unmarshal(e.Value(), rec); err != nil {
		t.Fatal(err)
	}
	return rec, e
}
