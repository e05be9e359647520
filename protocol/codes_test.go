package protocol_test

import (
	"testing"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// TestCodesMatchTheSchema checks that every code of pb/troupe.proto has its
// number and name here, so the two cannot drift apart.
func TestCodesMatchTheSchema(t *testing.T) {
	for n, name := range pb.ErrorCode_name {
		if n == 0 {
			continue // ERROR_CODE_UNSPECIFIED: never sent
		}
		if got := protocol.Code(n).String(); got != name {
			t.Errorf("code %d is %q here, %q in the schema", n, got, name)
		}
	}
	sentinels := []*protocol.Error{
		protocol.ErrInternal, protocol.ErrBadRequest, protocol.ErrUnknownType, protocol.ErrNoHost,
		protocol.ErrInvalidID, protocol.ErrUnknownMethod, protocol.ErrInvalidMethod,
		protocol.ErrPayloadTooLarge, protocol.ErrBusy, protocol.ErrDeadlineExceeded, protocol.ErrMoved,
		protocol.ErrApplication, protocol.ErrStateConflict, protocol.ErrUnavailable,
		protocol.ErrInvalidArgument, protocol.ErrStateTooLarge, protocol.ErrOutcomeUnknown,
		protocol.ErrWouldDeadlock, protocol.ErrChainTooDeep, protocol.ErrInvalidSchedule,
	}
	if len(sentinels) != len(pb.ErrorCode_name)-1 {
		t.Fatalf("%d sentinels for %d codes", len(sentinels), len(pb.ErrorCode_name)-1)
	}
	for i, e := range sentinels {
		if want := protocol.Code(i + 1); e.Code != want {
			t.Errorf("sentinel %d has code %v, want %v", i, e.Code, want)
		}
	}
}
