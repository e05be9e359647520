package placement

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/protocol"
)

// HashVersionKey is protocol.HashVersionKey: the membership bucket's
// metadata key that names the placement function its hosts place actors by.
// A watcher refuses a bucket that names another function, so a version
// change can never mis-route calls silently.
const HashVersionKey = protocol.HashVersionKey

// ErrHashVersion is returned when the membership bucket was made for a
// placement function this code does not implement.
var ErrHashVersion = errors.New("placement: membership bucket uses another placement hash")

// checkHashVersion fails when md names a placement function other than
// HashVersion. A bucket without the key (made by hand) is accepted.
func checkHashVersion(bucket string, md map[string]string) error {
	if v, ok := md[HashVersionKey]; ok && v != HashVersion {
		return fmt.Errorf("%w: bucket %q says %q, this troupe places by %q", ErrHashVersion, bucket, v, HashVersion)
	}
	return nil
}

// checkBucketHashVersion reads the bucket's metadata and checks it.
func checkBucketHashVersion(ctx context.Context, kv jetstream.KeyValue) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("placement: membership bucket %q: %w", kv.Bucket(), err)
	}
	kvs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil
	}
	return checkHashVersion(kv.Bucket(), kvs.Metadata())
}
