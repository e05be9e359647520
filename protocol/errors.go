package protocol

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Code is the code of a failed call, as listed in PROTOCOL.md and in the
// enum troupe.v1.ErrorCode of pb/troupe.proto. It crosses the wire as a
// decimal number, so callers in any language see the same code.
type Code int32

// The codes a call can fail with, with their meaning in PROTOCOL.md.
const (
	CodeInternal         Code = 1  // a fault in troupe or a panicking actor
	CodeBadRequest       Code = 2  // missing or malformed troupe headers
	CodeUnknownType      Code = 3  // the host does not serve the type, or the name is invalid
	CodeNoHost           Code = 4  // no live host serves the type
	CodeInvalidID        Code = 5  // empty or too long id
	CodeUnknownMethod    Code = 6  // the actor has no such method
	CodeInvalidMethod    Code = 7  // the method name is invalid
	CodePayloadTooLarge  Code = 8  // request or reply above the server's max payload
	CodeBusy             Code = 9  // the actor's mailbox is full; nothing ran
	CodeDeadlineExceeded Code = 10 // the deadline passed; the call may or may not have run
	CodeMoved            Code = 11 // not this host's actor at its generation; nothing ran
	CodeApplication      Code = 12 // the actor returned an error
	CodeStateConflict    Code = 13 // a stale activation's save was refused; the turn was discarded
	CodeUnavailable      Code = 14 // the host is stopping or cannot load the state; nothing ran
	CodeInvalidArgument  Code = 15 // the actor rejected its payload
	CodeStateTooLarge    Code = 16 // the turn's state exceeds the bucket's limit; discarded
	CodeOutcomeUnknown   Code = 17 // the turn ran but its save got no answer, or the host a gateway call was forwarded to went away with it
	CodeWouldDeadlock    Code = 18 // a call cycle into a type that is not reentrant; nothing ran
	CodeChainTooDeep     Code = 19 // the call chain is at the host's maximum depth; nothing ran
	CodeInvalidSchedule  Code = 20 // a reminder's name, schedule or time zone is not valid
)

// codeNames are the codes' names, as in pb/troupe.proto.
var codeNames = [...]string{
	CodeInternal:         "INTERNAL",
	CodeBadRequest:       "BAD_REQUEST",
	CodeUnknownType:      "UNKNOWN_TYPE",
	CodeNoHost:           "NO_HOST",
	CodeInvalidID:        "INVALID_ID",
	CodeUnknownMethod:    "UNKNOWN_METHOD",
	CodeInvalidMethod:    "INVALID_METHOD",
	CodePayloadTooLarge:  "PAYLOAD_TOO_LARGE",
	CodeBusy:             "BUSY",
	CodeDeadlineExceeded: "DEADLINE_EXCEEDED",
	CodeMoved:            "MOVED",
	CodeApplication:      "APPLICATION",
	CodeStateConflict:    "STATE_CONFLICT",
	CodeUnavailable:      "UNAVAILABLE",
	CodeInvalidArgument:  "INVALID_ARGUMENT",
	CodeStateTooLarge:    "STATE_TOO_LARGE",
	CodeOutcomeUnknown:   "OUTCOME_UNKNOWN",
	CodeWouldDeadlock:    "WOULD_DEADLOCK",
	CodeChainTooDeep:     "CALL_CHAIN_TOO_DEEP",
	CodeInvalidSchedule:  "INVALID_SCHEDULE",
}

// String is the code's name, such as "BUSY"; a code this package does not
// know is "CODE_<n>".
func (c Code) String() string {
	if c > 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", int32(c))
}

// Error is a failed call. Errors from a host cross the wire with their code,
// application code and message, so errors.Is works the same on both sides:
//
//	if errors.Is(err, protocol.ErrBusy) { ... }
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

// EncodeError sets the headers and body of an error reply: HeaderErrorCode,
// HeaderError (control characters replaced, at most 512 bytes),
// HeaderAppCode for an application error, HeaderGeneration for CodeMoved;
// the body is the full message.
func EncodeError(e *Error) (nats.Header, []byte) {
	h := nats.Header{}
	h.Set(HeaderErrorCode, strconv.Itoa(int(e.Code)))
	h.Set(HeaderError, oneLine(e.Code.String()+": "+e.Message))
	if e.AppCode != "" {
		h.Set(HeaderAppCode, oneLine(e.AppCode))
	}
	if e.Generation != 0 {
		h.Set(HeaderGeneration, strconv.FormatUint(e.Generation, 10))
	}
	return h, []byte(e.Message)
}

// DecodeError returns the error an error reply carries, or nil when the reply
// is a success.
func DecodeError(h nats.Header, body []byte) *Error {
	codeText := h.Get(HeaderErrorCode)
	if codeText == "" {
		return nil
	}
	code, err := strconv.Atoi(codeText)
	if err != nil {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("reply with malformed %s %q: %s", HeaderErrorCode, codeText, h.Get(HeaderError))}
	}
	e := &Error{Code: Code(code), AppCode: h.Get(HeaderAppCode), Message: string(body)}
	if e.Message == "" {
		e.Message = h.Get(HeaderError)
	}
	e.Generation, _ = strconv.ParseUint(h.Get(HeaderGeneration), 10, 64)
	return e
}

// oneLine keeps a header value on one line and bounded in size.
func oneLine(s string) string {
	const limit = 512
	if len(s) > limit {
		s = s[:limit]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
