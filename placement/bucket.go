package placement

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for the membership bucket.
const (
	DefaultBucket    = "troupe_placement"
	DefaultMarkerTTL = 24 * time.Hour
	hostKeyPrefix    = "hosts."
)

// BucketConfig describes the membership bucket. The zero value means the
// defaults.
type BucketConfig struct {
	// Name of the KV bucket; "" means DefaultBucket.
	Name string
	// Replicas is the bucket's replica count; 0 means 1.
	Replicas int
	// MarkerTTL is how long the bucket keeps the purge marker of a host that
	// left or whose lease expired; 0 means DefaultMarkerTTL. A watcher that
	// starts within this time of the last departure derives the same
	// generation as one that saw the departure live.
	MarkerTTL time.Duration
}

func (c BucketConfig) withDefaults() BucketConfig {
	if c.Name == "" {
		c.Name = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MarkerTTL == 0 {
		c.MarkerTTL = DefaultMarkerTTL
	}
	return c
}

// EnsureBucket creates the membership bucket, or updates it to cfg, and
// returns it. Every host calls it on start; concurrent calls are safe.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	cfg = cfg.withDefaults()
	if cfg.MarkerTTL < time.Second {
		return nil, fmt.Errorf("placement: marker TTL %v is below the server's minimum of 1s", cfg.MarkerTTL)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.Name,
		Description:    "troupe membership: one leased record per live host",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.Replicas,
		LimitMarkerTTL: cfg.MarkerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("placement: membership bucket %q: %w", cfg.Name, err)
	}
	return kv, nil
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

// HostKey is the membership key of a host.
func HostKey(id HostID) string { return hostKeyPrefix + string(id) }

func hostIDFromKey(key string) (HostID, bool) {
	id, ok := strings.CutPrefix(key, hostKeyPrefix)
	if !ok || HostID(id).Validate() != nil {
		return "", false
	}
	return HostID(id), true
}
