package jsutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestIsConflict(t *testing.T) {
	api := func(code jetstream.ErrorCode) error {
		return fmt.Errorf("publish: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: "wrong last sequence"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"single server (10071)", api(jetstream.JSErrCodeStreamWrongLastSequence), true},
		{"replicated stream (10164)", api(jetstream.JSErrCodeStreamWrongLastSequenceConstant), true},
		{"key exists", fmt.Errorf("create: %w", jetstream.ErrKeyExists), true},
		{"revision mismatch", jetstream.ErrKeyRevisionMismatch, true},
		{"other API error", api(jetstream.JSErrCodeStreamNotFound), false},
		{"timeout", errors.New("context deadline exceeded"), false},
		{"nil", nil, false},
	} {
		if got := IsConflict(tc.err); got != tc.want {
			t.Errorf("%s: IsConflict = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTransient(t *testing.T) {
	api := func(code jetstream.ErrorCode) error {
		return fmt.Errorf("create: %w", &jetstream.APIError{Code: 503, ErrorCode: code})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no responders", fmt.Errorf("stream info: %w", nats.ErrNoResponders), true},
		{"no stream response", jetstream.ErrNoStreamResponse, true},
		{"JetStream not enabled yet", jetstream.ErrJetStreamNotEnabled, true},
		{"temporarily unavailable (10008)", api(10008), true},
		{"a try's deadline", fmt.Errorf("join: %w", context.DeadlineExceeded), true},
		{"no reply in time", nats.ErrTimeout, true},
		{"not sent while reconnecting", fmt.Errorf("join: %w", nats.ErrReconnectBufExceeded), true},
		{"disconnected", nats.ErrDisconnected, true},
		{"marked by the caller", Retryable(errors.New("held")), true},
		{"closed connection", nats.ErrConnectionClosed, false},
		{"conflict", jetstream.ErrKeyExists, false},
		{"stream not found", api(jetstream.JSErrCodeStreamNotFound), false},
		{"canceled", context.Canceled, false},
		{"nil", nil, false},
	} {
		if got := Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	t.Run("until it succeeds", func(t *testing.T) {
		tries, waits := 0, 0
		err := Retry(ctx, time.Second, func(context.Context) error {
			if tries++; tries < 3 {
				return nats.ErrNoResponders
			}
			return nil
		}, func(error) { waits++ })
		if err != nil || tries != 3 || waits != 2 {
			t.Fatalf("err %v after %d tries and %d waits; want nil after 3 and 2", err, tries, waits)
		}
	})
	t.Run("a permanent error at once", func(t *testing.T) {
		tries := 0
		err := Retry(ctx, time.Second, func(context.Context) error { tries++; return jetstream.ErrKeyExists }, nil)
		if !errors.Is(err, jetstream.ErrKeyExists) || tries != 1 {
			t.Fatalf("err %v after %d tries; want ErrKeyExists after 1", err, tries)
		}
	})
	t.Run("each try under its own deadline", func(t *testing.T) {
		tries := 0
		err := Retry(ctx, 10*time.Millisecond, func(ctx context.Context) error {
			if tries++; tries == 1 {
				<-ctx.Done() // a reply that never comes
				return ctx.Err()
			}
			return nil
		}, nil)
		if err != nil || tries != 2 {
			t.Fatalf("err %v after %d tries; want nil after 2", err, tries)
		}
	})
	t.Run("ctx ends: why, and what it waited for", func(t *testing.T) {
		why := errors.New("--start-timeout 1s passed")
		ctx, cancel := context.WithCancelCause(ctx)
		tries := 0
		err := Retry(ctx, time.Second, func(context.Context) error {
			if tries++; tries == 2 {
				cancel(why)
			}
			return Retryable(errors.New("id held"))
		}, nil)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, why) || !strings.Contains(err.Error(), "id held") {
			t.Fatalf("err %v; want it to wrap context.Canceled, the cause and the last error", err)
		}
	})
}
