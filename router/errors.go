package router

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/troupe-dev/troupe/pb"
)

// Code is the code of a failed call, as listed in pb.ErrorCode. It crosses
// the wire as a decimal number, so callers in any language see the same code.
type Code int32

// The codes a call can fail with. See pb.ErrorCode for their meaning.
const (
	CodeInternal         = Code(pb.ErrorCode_INTERNAL)
	CodeBadRequest       = Code(pb.ErrorCode_BAD_REQUEST)
	CodeUnknownType      = Code(pb.ErrorCode_UNKNOWN_TYPE)
	CodeNoHost           = Code(pb.ErrorCode_NO_HOST)
	CodeInvalidID        = Code(pb.ErrorCode_INVALID_ID)
	CodeUnknownMethod    = Code(pb.ErrorCode_UNKNOWN_METHOD)
	CodeInvalidMethod    = Code(pb.ErrorCode_INVALID_METHOD)
	CodePayloadTooLarge  = Code(pb.ErrorCode_PAYLOAD_TOO_LARGE)
	CodeBusy             = Code(pb.ErrorCode_BUSY)
	CodeDeadlineExceeded = Code(pb.ErrorCode_DEADLINE_EXCEEDED)
	CodeMoved            = Code(pb.ErrorCode_MOVED)
	CodeApplication      = Code(pb.ErrorCode_APPLICATION)
	CodeStateConflict    = Code(pb.ErrorCode_STATE_CONFLICT)
	CodeUnavailable      = Code(pb.ErrorCode_UNAVAILABLE)
	CodeInvalidArgument  = Code(pb.ErrorCode_INVALID_ARGUMENT)
	CodeStateTooLarge    = Code(pb.ErrorCode_STATE_TOO_LARGE)
	CodeOutcomeUnknown   = Code(pb.ErrorCode_OUTCOME_UNKNOWN)
	CodeWouldDeadlock    = Code(pb.ErrorCode_WOULD_DEADLOCK)
	CodeChainTooDeep     = Code(pb.ErrorCode_CALL_CHAIN_TOO_DEEP)
	CodeInvalidSchedule  = Code(pb.ErrorCode_INVALID_SCHEDULE)
)

// String is the code's name, such as "BUSY".
func (c Code) String() string {
	if name, ok := pb.ErrorCode_name[int32(c)]; ok && c != 0 {
		return name
	}
	return fmt.Sprintf("CODE_%d", int32(c))
}

// Error is a failed call. Errors from a host cross the wire with their code,
// application code and message, so errors.Is works the same on both sides:
//
//	if errors.Is(err, router.ErrBusy) { ... }
type Error struct {
	Code Code
	// AppCode is the actor's own error code when Code is CodeApplication.
	AppCode string
	// Message says what went wrong, for people.
	Message string
	// Generation is the host's table generation when Code is CodeMoved.
	Generation uint64

	cause error
}

// Sentinels for errors.Is. Each matches any *Error with the same Code.
var (
	ErrInternal         = &Error{Code: CodeInternal}
	ErrBadRequest       = &Error{Code: CodeBadRequest}
	ErrUnknownType      = &Error{Code: CodeUnknownType}
	ErrNoHost           = &Error{Code: CodeNoHost}
	ErrInvalidID        = &Error{Code: CodeInvalidID}
	ErrUnknownMethod    = &Error{Code: CodeUnknownMethod}
	ErrInvalidMethod    = &Error{Code: CodeInvalidMethod}
	ErrPayloadTooLarge  = &Error{Code: CodePayloadTooLarge}
	ErrBusy             = &Error{Code: CodeBusy}
	ErrDeadlineExceeded = &Error{Code: CodeDeadlineExceeded}
	ErrMoved            = &Error{Code: CodeMoved}
	ErrApplication      = &Error{Code: CodeApplication}
	ErrStateConflict    = &Error{Code: CodeStateConflict}
	ErrUnavailable      = &Error{Code: CodeUnavailable}
	ErrInvalidArgument  = &Error{Code: CodeInvalidArgument}
	ErrStateTooLarge    = &Error{Code: CodeStateTooLarge}
	ErrOutcomeUnknown   = &Error{Code: CodeOutcomeUnknown}
	ErrWouldDeadlock    = &Error{Code: CodeWouldDeadlock}
	ErrChainTooDeep     = &Error{Code: CodeChainTooDeep}
	ErrInvalidSchedule  = &Error{Code: CodeInvalidSchedule}
)

// Errorf returns an *Error with the given code and a formatted message. An
// error among args formatted with %w is kept for errors.Unwrap.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), cause: errors.Unwrap(err)}
}

// AppError is an application error an actor returns with its own code, for
// example AppError("insufficient_funds", "balance is 3"). The caller receives
// an *Error with CodeApplication and the same AppCode and Message.
func AppError(appCode, message string) *Error {
	return &Error{Code: CodeApplication, AppCode: appCode, Message: message}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("troupe: ")
	b.WriteString(e.Code.String())
	if e.AppCode != "" {
		b.WriteString("(" + e.AppCode + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Is reports whether target is an *Error with the same Code and, when the
// target names one, the same AppCode.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.AppCode == "" || t.AppCode == e.AppCode)
}

// Unwrap returns the local cause, if any (never set on errors decoded from
// the wire).
func (e *Error) Unwrap() error { return e.cause }

// AsError converts any error to an *Error: an *Error in the chain is returned
// as is, context errors become CodeDeadlineExceeded, and anything else is an
// application error carrying err's text.
func AsError(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Error{Code: CodeDeadlineExceeded, Message: err.Error(), cause: err}
	default:
		return &Error{Code: CodeApplication, Message: err.Error(), cause: err}
	}
}
