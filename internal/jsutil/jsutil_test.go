package jsutil

import (
	"errors"
	"fmt"
	"testing"

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
