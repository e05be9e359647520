package orders

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/troupe-dev/troupe/host"
)

// Partitioned orders: more than one puller for the same customers.
//
// The stream stores orders.<customer>.<kind> as
// orders.<p>.<customer>.<kind>, where p is the NATS subject transform's
// hash of the customer into 0…partitions-1; each partition is its own
// subscription (orders-<p>), and the table places each one's puller, so
// the pullers spread over the hosts. A customer's orders all land in one
// partition, so they keep their stream order (docs/streams.md,
// "Partitioning a subscription").

// PartitionTransform is the stream's subject transform into partitions.
func PartitionTransform(partitions int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      Subjects,
		Destination: fmt.Sprintf("orders.{{partition(%d,1)}}.{{wildcard(1)}}.{{wildcard(2)}}", partitions),
	}
}

// PartitionSubscription is the name of partition p's subscription.
func PartitionSubscription(p int) string { return fmt.Sprintf("%s-%d", Subscription, p) }

// RegisterPartitioned adds the customer type to h with one subscription per
// partition of a stream made by EnsurePartitionedStream with as many
// partitions.
func RegisterPartitioned(h *host.Host, partitions int, opts ...host.TypeOption) error {
	subs := make([]host.TypeOption, 0, partitions+len(opts))
	for p := range partitions {
		subs = append(subs, host.Subscribe(host.Subscription{
			Name:    PartitionSubscription(p),
			Stream:  Stream,
			Subject: fmt.Sprintf("orders.%d.*.*", p),
			IDToken: 2, // orders.<p>.<customer>.<kind>
			Method:  "onOrder",
		}))
	}
	return h.Register(Type, New, append(subs, opts...)...)
}

// EnsurePartitionedStream makes the ORDERS stream with its subjects
// partitioned by customer, or leaves an existing one as it is.
func EnsurePartitionedStream(ctx context.Context, js jetstream.JetStream, replicas, partitions int) error {
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:             Stream,
		Description:      "troupe example: orders partitioned by customer, delivered to customer actors",
		Subjects:         []string{"orders.>"},
		SubjectTransform: PartitionTransform(partitions),
		Storage:          jetstream.FileStorage,
		Replicas:         max(replicas, 1),
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil
	}
	return err
}
