package router

import "github.com/troupe-dev/troupe/protocol"

// Code is protocol.Code: the code of a failed call.
type Code = protocol.Code

// The codes a call can fail with, each the protocol code of the same name.
const (
	CodeInternal         = protocol.CodeInternal
	CodeBadRequest       = protocol.CodeBadRequest
	CodeUnknownType      = protocol.CodeUnknownType
	CodeNoHost           = protocol.CodeNoHost
	CodeInvalidID        = protocol.CodeInvalidID
	CodeUnknownMethod    = protocol.CodeUnknownMethod
	CodeInvalidMethod    = protocol.CodeInvalidMethod
	CodePayloadTooLarge  = protocol.CodePayloadTooLarge
	CodeBusy             = protocol.CodeBusy
	CodeDeadlineExceeded = protocol.CodeDeadlineExceeded
	CodeMoved            = protocol.CodeMoved
	CodeApplication      = protocol.CodeApplication
	CodeStateConflict    = protocol.CodeStateConflict
	CodeUnavailable      = protocol.CodeUnavailable
	CodeInvalidArgument  = protocol.CodeInvalidArgument
	CodeStateTooLarge    = protocol.CodeStateTooLarge
	CodeOutcomeUnknown   = protocol.CodeOutcomeUnknown
	CodeWouldDeadlock    = protocol.CodeWouldDeadlock
	CodeChainTooDeep     = protocol.CodeChainTooDeep
	CodeInvalidSchedule  = protocol.CodeInvalidSchedule
)

// Error is protocol.Error: a failed call. Errors from a host cross the wire
// with their code, application code and message, so errors.Is works the
// same on both sides:
//
//	if errors.Is(err, router.ErrBusy) { ... }
type Error = protocol.Error

// Sentinels for errors.Is, each the protocol sentinel of the same name: it
// matches any *Error with the same Code.
var (
	ErrInternal         = protocol.ErrInternal
	ErrBadRequest       = protocol.ErrBadRequest
	ErrUnknownType      = protocol.ErrUnknownType
	ErrNoHost           = protocol.ErrNoHost
	ErrInvalidID        = protocol.ErrInvalidID
	ErrUnknownMethod    = protocol.ErrUnknownMethod
	ErrInvalidMethod    = protocol.ErrInvalidMethod
	ErrPayloadTooLarge  = protocol.ErrPayloadTooLarge
	ErrBusy             = protocol.ErrBusy
	ErrDeadlineExceeded = protocol.ErrDeadlineExceeded
	ErrMoved            = protocol.ErrMoved
	ErrApplication      = protocol.ErrApplication
	ErrStateConflict    = protocol.ErrStateConflict
	ErrUnavailable      = protocol.ErrUnavailable
	ErrInvalidArgument  = protocol.ErrInvalidArgument
	ErrStateTooLarge    = protocol.ErrStateTooLarge
	ErrOutcomeUnknown   = protocol.ErrOutcomeUnknown
	ErrWouldDeadlock    = protocol.ErrWouldDeadlock
	ErrChainTooDeep     = protocol.ErrChainTooDeep
	ErrInvalidSchedule  = protocol.ErrInvalidSchedule
)

// Errorf is protocol.Errorf: an *Error with the given code and a formatted
// message, keeping an error formatted with %w for errors.Unwrap.
func Errorf(code Code, format string, args ...any) *Error {
	return protocol.Errorf(code, format, args...)
}

// AppError is protocol.AppError: an application error an actor returns with
// its own code, for example AppError("insufficient_funds", "balance is 3").
func AppError(appCode, message string) *Error { return protocol.AppError(appCode, message) }

// AsError is protocol.AsError: it converts any error to an *Error.
func AsError(err error) *Error { return protocol.AsError(err) }
