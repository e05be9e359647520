// Package jsutil holds small JetStream helpers shared by placement and host.
package jsutil

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nats-io/nats.go/jetstream"
)

// IsConflict reports whether err is a compare-and-set refusal: the key's
// last revision was not the one the write expected. Single-server streams
// report it as API error 10071 and replicated (R>1) streams as 10164; both
// mean a stale writer, never a crash.
func IsConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return true
		}
	}
	return false
}

// unansweredRetry paces WhenAnswered.
const unansweredRetry = 100 * time.Millisecond

// WhenAnswered runs f, and again every 100 ms while JetStream does not
// answer at all, until ctx ends: a server still starting, an account whose
// JetStream is not enabled yet, or a stream with no leader (a replicated
// bucket just created, or electing one). No answer means nothing was done,
// so trying again is safe.
func WhenAnswered(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !unanswered(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(unansweredRetry):
		}
	}
}

func unanswered(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}
