package placement

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/protocol"
)

// Defaults for the membership bucket.
const (
	// DefaultBucket is protocol.DefaultMembershipBucket.
	DefaultBucket    = protocol.DefaultMembershipBucket
	DefaultMarkerTTL = 24 * time.Hour
	// DefaultMaxConsumers is the consumer limit of the membership bucket's
	// stream and the liveness bucket's: each host has one consumer on each
	// (its watcher's watch and its monitor's), each standalone router and
	// smart client one on the membership bucket, so 100,000 leaves room for
	// 10,000 hosts and many clients.
	DefaultMaxConsumers = 100_000
)

// BucketConfig describes the membership bucket. The zero value means the
// defaults.
type BucketConfig struct {
	// Name of the KV bucket; "" means DefaultBucket.
	Name string
	// Replicas is the bucket's replica count; 0 means automatic: an existing
	// bucket keeps the count it has, and a new one gets 3 replicas when the
	// JetStream cluster can place them (3 or more servers) and 1 otherwise,
	// such as on a single server. See EnsureBucket.
	Replicas int
	// MarkerTTL is how long the bucket keeps the purge marker of a host that
	// left or whose lease expired; 0 means DefaultMarkerTTL. A watcher that
	// starts within this time of the last departure derives the same
	// generation as one that saw the departure live.
	MarkerTTL time.Duration
	// MaxConsumers is the most consumers the bucket's stream allows; 0 means
	// DefaultMaxConsumers for a new bucket, or one that sets no limit, and
	// the existing limit otherwise. nats-server 2.15 and later limit a
	// stream that sets none to 1,000 consumers (its default_max_consumers),
	// which would stop the 500th host from starting.
	MaxConsumers int
}

// LivenessName is the name of the liveness bucket that goes with the
// membership bucket cfg describes (protocol.LivenessBucket).
func (c BucketConfig) LivenessName() string {
	return protocol.LivenessBucket(c.withDefaults().Name)
}

func (c BucketConfig) withDefaults() BucketConfig {
	if c.Name == "" {
		c.Name = DefaultBucket
	}
	if c.MarkerTTL == 0 {
		c.MarkerTTL = DefaultMarkerTTL
	}
	return c
}

// EnsureBucket creates the membership bucket, or updates it to cfg, and
// returns it. Every host calls it on start; concurrent calls are safe.
//
// With cfg.Replicas 0 the replica count is chosen automatically: an existing
// bucket keeps its own (a host never scales down a bucket an operator or an
// earlier host chose), and a new bucket is created with 3 replicas, falling
// back to 1 when the server refuses them as unplaceable. That refusal comes
// from the JetStream meta leader, which knows the servers that actually run
// JetStream and can hold the stream: "replicas > 1 not supported in
// non-clustered mode" (10074) on a single server, "no suitable peers" (10005)
// or "insufficient resources" (10023) on a cluster of fewer than 3 JetStream
// servers, "no applicable tiered limit" (10120) on an account limited to R1.
// The client-side hints were rejected as less reliable: the INFO's cluster
// name and connect_urls (nats.Conn.ConnectedClusterName, Servers) count
// servers without JetStream, hide servers behind no_advertise or a load
// balancer, and describe a leaf node's cluster rather than the JetStream
// domain it uses; $JS.API.INFO (account info) has no cluster size at all.
// Like the meta leader itself, the probe sees only servers that are up: a new
// bucket created while a 3-server cluster is down to 2 gets 1 replica after
// retrying for a second (set Replicas explicitly to insist on 3).
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	cfg = cfg.withDefaults()
	if cfg.MarkerTTL < time.Second {
		return nil, fmt.Errorf("placement: marker TTL %v is below the server's minimum of 1s", cfg.MarkerTTL)
	}
	if existing, err := js.KeyValue(ctx, cfg.Name); err == nil {
		if err := checkBucketHashVersion(ctx, existing); err != nil {
			return nil, err // never relabel a bucket other hosts place by
		}
	}
	kv, err := ensureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:         cfg.Name,
		Description:    "troupe membership: one leased record per live host",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: cfg.MarkerTTL,
		Metadata:       map[string]string{HashVersionKey: HashVersion},
	}, cfg.MaxConsumers)
	if err != nil {
		return nil, fmt.Errorf("placement: membership bucket %q: %w", cfg.Name, err)
	}
	return kv, nil
}

// EnsureLivenessBucket creates the liveness bucket that goes with the
// membership bucket cfg describes (BucketConfig.LivenessName), or updates it
// to cfg, and returns it. It holds the hosts' liveness keys alive.<id>, which
// they renew every TTL/2 (see Lease), in memory: a renewal is most of what
// membership costs the server at rest, and a file store adds to each one a
// write and its share of a sync every 100 ms (docs/SCALE.md) for a key that
// no restart needs, since a lease is over by the time a server is back. A
// single server forgets a memory stream when it restarts; hosts then create
// the bucket again (Lease), and monitors give keys that vanished without an
// expiry marker their hosts' TTL before removing a host (Monitor). Replicas,
// the marker TTL and the consumer limit are those of the membership bucket.
func EnsureLivenessBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	cfg = cfg.withDefaults()
	name := cfg.LivenessName()
	kv, err := ensureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket:         name,
		Description:    "troupe liveness: one key per live host, renewed with the lease TTL",
		History:        1,
		Storage:        jetstream.MemoryStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: cfg.MarkerTTL,
	}, cfg.MaxConsumers)
	if err != nil {
		return nil, fmt.Errorf("placement: liveness bucket %q: %w", name, err)
	}
	return kv, nil
}

// ensureKeyValue is js.CreateOrUpdateKeyValue, except that cfg.Replicas 0
// means automatic, as described at EnsureBucket, and that it sets the
// stream's consumer limit (see updateKeyValue).
func ensureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, maxConsumers int) (jetstream.KeyValue, error) {
	for range 3 { // a bucket created concurrently sends us back to the top
		s, err := js.Stream(ctx, protocol.KVStream(cfg.Bucket))
		if err == nil {
			return updateKeyValue(ctx, js, s.CachedInfo().Config, cfg, maxConsumers)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, err
		}
		// Create, never update, so that a host whose probe fell back to 1
		// cannot scale down a bucket another host just made with 3.
		if cfg.Replicas != 0 {
			_, err = js.CreateKeyValue(ctx, cfg)
		} else {
			_, err = createAutoReplicas(ctx, js, cfg)
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			continue // the reply was lost, not necessarily the create: look again
		}
		if err == nil { // created: set what the KV config cannot
			var s jetstream.Stream
			if s, err = js.Stream(ctx, protocol.KVStream(cfg.Bucket)); err == nil {
				return updateKeyValue(ctx, js, s.CachedInfo().Config, cfg, maxConsumers)
			}
		}
		if !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("bucket %q: no answer from JetStream about creating it", cfg.Bucket)
}

// errCodeStreamInvalidConfig is the JetStream error a server before 2.15
// gives when a stream update changes MaxConsumers, which it cannot.
const errCodeStreamInvalidConfig jetstream.ErrorCode = 10052

// updateKeyValue brings the bucket whose stream has the config sc to cfg,
// changing only what cfg sets (Replicas 0 keeps the count) and writing only
// when that differs. Unlike js.CreateOrUpdateKeyValue it keeps what the KV
// config cannot express, which a host starting would otherwise reset, and
// sets one thing it cannot: the consumer limit, to maxConsumers, or with
// maxConsumers 0 to DefaultMaxConsumers when the stream sets none. A server
// that cannot change the limit (before 2.15) has no default limit either,
// so its refusal leaves a stream without one, which is fine.
func updateKeyValue(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig, cfg jetstream.KeyValueConfig, maxConsumers int) (jetstream.KeyValue, error) {
	want := sc
	want.Description = cfg.Description
	want.MaxMsgsPerSubject = int64(max(1, cfg.History))
	if cfg.Replicas != 0 {
		want.Replicas = cfg.Replicas
	}
	if cfg.LimitMarkerTTL != 0 {
		want.AllowMsgTTL, want.SubjectDeleteMarkerTTL = true, cfg.LimitMarkerTTL
	}
	if len(cfg.Metadata) > 0 {
		want.Metadata = maps.Clone(sc.Metadata)
		if want.Metadata == nil {
			want.Metadata = make(map[string]string, len(cfg.Metadata))
		}
		maps.Copy(want.Metadata, cfg.Metadata)
	}
	switch {
	case maxConsumers > 0:
		want.MaxConsumers = maxConsumers
	case sc.MaxConsumers <= 0:
		want.MaxConsumers = DefaultMaxConsumers
	}
	if reflect.DeepEqual(want, sc) {
		return js.KeyValue(ctx, cfg.Bucket)
	}
	_, err := js.UpdateStream(ctx, want)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamInvalidConfig && sc.MaxConsumers <= 0 {
		want.MaxConsumers, err = sc.MaxConsumers, nil // a server before 2.15
		if !reflect.DeepEqual(want, sc) {
			_, err = js.UpdateStream(ctx, want)
		}
	}
	if err != nil {
		return nil, err
	}
	return js.KeyValue(ctx, cfg.Bucket)
}

// createTimeout bounds one create request of createAutoReplicas. A freshly
// formed nats-server 2.15 cluster sometimes creates a replicated stream
// without ever answering the request (seen about once in 30 cluster starts),
// so waiting for the caller's whole deadline would fail a start that a
// second look would let through.
const createTimeout = 2 * time.Second

// autoProbeFor is how long a cluster's refusal to place 3 replicas is
// retried before settling for 1: a meta leader elected moments ago may not
// have heard from every peer yet (measured: up to ~20ms on loopback).
const autoProbeFor = time.Second

// createAutoReplicas creates the bucket with 3 replicas, or with 1 when the
// server cannot place 3.
func createAutoReplicas(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = 3
	giveUp := time.Now().Add(autoProbeFor)
	for {
		actx, cancel := context.WithTimeout(ctx, createTimeout)
		kv, err := js.CreateKeyValue(actx, cfg)
		cancel()
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) {
			return kv, err
		}
		switch apiErr.ErrorCode {
		case 10005, // no suitable peers for placement (fewer than 3 online)
			10023: // insufficient resources
			if time.Now().Before(giveUp) {
				select {
				case <-time.After(100 * time.Millisecond):
					continue
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		case 10074, // replicas > 1 not supported in non-clustered mode
			10120: // no JetStream default or applicable tiered limit present
		default:
			return kv, err
		}
		cfg.Replicas = 1
		actx, cancel = context.WithTimeout(ctx, createTimeout)
		defer cancel()
		return js.CreateKeyValue(actx, cfg)
	}
}

// OpenBucket binds to an existing membership bucket without changing it, for
// callers that only read (routers, `troupe hosts`).
func OpenBucket(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	if name == "" {
		name = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("placement: membership bucket %q: %w", name, err)
	}
	return kv, nil
}

// HostKey is protocol.HostKey: the membership key of a host.
func HostKey(id HostID) string { return protocol.HostKey(id) }
