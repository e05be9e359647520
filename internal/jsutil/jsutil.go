// Package jsutil holds small NATS and JetStream helpers shared by placement,
// host and router.
package jsutil

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
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

// Transient reports whether err may go away by itself, so that sending the
// same request again is worth it. These are transient:
//
//   - no answer at all: no responders, no stream response, JetStream not
//     enabled yet (a server still starting, an account whose JetStream is
//     being enabled, a stream electing a leader), or JetStream answering
//     "temporarily unavailable" (10008);
//   - no answer in time: nats.ErrTimeout or a try's own deadline
//     (context.DeadlineExceeded): the reply was lost on a cut link, or the
//     server is slow. The request may have been carried out, so only a try
//     that is safe to repeat (create-or-update, or a create that recognises
//     its own earlier write) may be retried on it;
//   - not sent: the connection is down and reconnecting
//     (nats.ErrReconnectBufExceeded with no reconnect buffer,
//     nats.ErrConnectionReconnecting, nats.ErrDisconnected).
//
// Everything else is permanent, so that a mistake is reported at once rather
// than waited on: a closed connection, a refused request (a stream or
// bucket of another shape, a bad request), and a compare-and-set conflict,
// which the caller interprets. A permissions violation reaches a NATS client
// only asynchronously, as an error on the connection; the request itself
// just goes unanswered, so the caller that owns the connection must watch
// for it (troupe host does).
func Transient(err error) bool {
	var marked retryable
	switch {
	case err == nil:
		return false
	case errors.As(err, &marked):
		return true
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return true
	case NotSent(err):
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeTemporarilyUnavailable
}

// NotSent reports whether a request or publish failed before the message
// left the client: the connection is down and reconnecting, and the client
// keeps no reconnect buffer. Sending it again is always safe.
func NotSent(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// Retryable marks err as transient: a condition of the caller's own that
// time cures, such as an id held by a lease that will expire.
func Retryable(err error) error { return retryable{err} }

type retryable struct{ error }

func (r retryable) Unwrap() error { return r.error }

// jsErrCodeTemporarilyUnavailable is JetStream's "JetStream system
// temporarily unavailable" (a cluster without a meta leader, for one).
const jsErrCodeTemporarilyUnavailable jetstream.ErrorCode = 10008

// Retry pacing: the first retry after 100 ms, then twice as long each time
// up to 2 s, each wait varied by ±20 % so that hosts started together do not
// retry in step.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 2 * time.Second
)

// Retry runs try until it succeeds, fails with an error that is not
// Transient, or ctx ends. Each try runs under its own deadline of at most
// tryTimeout (when tryTimeout > 0), so that a request whose reply was lost
// ends and is sent again instead of waiting for ctx. waiting, if not nil, is
// called from Retry's goroutine with each transient error before the wait
// that follows it; the caller uses it to log changes of state.
//
// When ctx ends first, the error wraps ctx's error, its cause (see
// context.Cause) and the last transient error, so that the caller can report
// why it stopped and what it was waiting for.
//
// Pacing comes from github.com/cenkalti/backoff (exponential, jittered),
// which troupe's OpenTelemetry exporters already depend on.
func Retry(ctx context.Context, tryTimeout time.Duration, try func(context.Context) error, waiting func(error)) error {
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		tctx, cancel := ctx, context.CancelFunc(func() {})
		if tryTimeout > 0 {
			tctx, cancel = context.WithTimeout(ctx, tryTimeout)
		}
		err := try(tctx)
		cancel()
		if err != nil && (!Transient(err) || ctx.Err() != nil) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{
		InitialInterval:     retryFirst,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         retryMax,
	}), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) {
		last = err
		if waiting != nil {
			waiting(err)
		}
	}))
	if err == nil || ctx.Err() == nil {
		return err
	}
	err = ctx.Err() // the try's own error then says no more than "canceled"
	if cause := context.Cause(ctx); cause != err {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	if last != nil {
		return fmt.Errorf("%w; the last try: %w", err, last)
	}
	return err
}

// UntilDisconnected returns a context that also ends when nc loses its
// server, with cause nats.ErrDisconnected. A request in flight when the link
// drops is never answered (the client does not fail it), so a caller that
// would rather try again after the reconnect than wait out its deadline runs
// the request under this context. Call the cancel function when done: it
// returns once the goroutine that watches nc has ended.
func UntilDisconnected(ctx context.Context, nc *nats.Conn) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	lost := nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer nc.RemoveStatusListener(lost)
		select {
		case <-lost:
			cancel(nats.ErrDisconnected)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled); <-done }
}
