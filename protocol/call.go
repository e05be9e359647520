package protocol

import (
	"strconv"
	"strings"
)

// A call is a NATS request to the owning host's subject. The request body is
// the payload; the reply body is the actor's reply, or the full message of an
// error (see EncodeError). Headers other than these pass to the actor
// untouched.

// HostSubject is the subject a host takes calls on, the subject field of its
// host record: <prefix>.host.<hostID>.
func HostSubject(prefix string, id HostID) string { return prefix + ".host." + string(id) }

// Headers of a call request, to a host's subject or to the gateway.
const (
	HeaderType       = "Troupe-Type"       // actor type
	HeaderID         = "Troupe-Id"         // actor id, encoded with EncodeID
	HeaderMethod     = "Troupe-Method"     // method name
	HeaderGeneration = "Troupe-Generation" // caller's table generation, decimal; optional
	HeaderTimeout    = "Troupe-Timeout"    // milliseconds left until the caller's deadline, decimal; optional
	// HeaderCall carries the five above in one header (AppendCall,
	// ParseCall), which is what the Go router sends to a host that speaks
	// CallHeaderVersion: every header costs the receiver a parse into its
	// header map, and five of them cost a plain NATS request/reply about
	// 17% of its throughput, one about 9%. Hosts accept either form, not
	// both in one request.
	HeaderCall = "Troupe-Call"
	// HeaderCallID is the call's idempotency id in the five-header form and
	// on the gateway; in the one-header form it is HeaderCall's optional
	// sixth field. A host runs a stateful actor's turn at most once per id
	// within the type's call window and answers repeats with the recorded
	// reply (PROTOCOL.md, "Idempotent calls").
	HeaderCallID = "Troupe-Call-Id"
)

// MaxCallID is the longest call id, in bytes.
const MaxCallID = 64

// ValidCallID reports whether id is a valid call id: 1–64 bytes of printable
// ASCII without a space (0x21–0x7E).
func ValidCallID(id string) bool {
	if id == "" || len(id) > MaxCallID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// AppendCallID appends the optional sixth field of a HeaderCall value, the
// call id, to a value AppendCall wrote.
func AppendCallID(b []byte, id string) []byte {
	b = append(b, ' ')
	return append(b, id...)
}

// CallHeaderVersion is the first protocol version whose hosts accept
// HeaderCall; a caller sends the five headers to an older host.
const CallHeaderVersion = 2

// AppendCall appends a HeaderCall value to b: the actor type, the encoded
// actor id, the method, the caller's generation (0: none) and the
// milliseconds left until the caller's deadline, separated by single
// spaces. None of the first three can hold a space.
func AppendCall(b []byte, typ, encodedID, method string, gen uint64, timeoutMs int64) []byte {
	b = append(b, typ...)
	b = append(b, ' ')
	b = append(b, encodedID...)
	b = append(b, ' ')
	b = append(b, method...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, gen, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, timeoutMs, 10)
}

// CallFields is a HeaderCall value read by ParseCall. ID is still encoded.
type CallFields struct {
	Type, ID, Method string
	Generation       uint64
	TimeoutMs        int64
	// CallID is the optional sixth field, "" when absent. ParseCall does
	// not check it: the caller does, with ValidCallID.
	CallID string
}

// ParseCall reads a HeaderCall value: five or six fields separated by
// single spaces, the type not empty, the fourth and fifth decimal; the
// sixth, when present, is the call id. It reports false for anything else;
// the names, the id and the call id's characters are checked by the caller.
func ParseCall(v string) (CallFields, bool) {
	var f CallFields
	var gen, timeout string
	var ok [4]bool
	f.Type, v, ok[0] = strings.Cut(v, " ")
	f.ID, v, ok[1] = strings.Cut(v, " ")
	f.Method, v, ok[2] = strings.Cut(v, " ")
	gen, timeout, ok[3] = strings.Cut(v, " ")
	var hasID bool
	timeout, f.CallID, hasID = strings.Cut(timeout, " ")
	if hasID && (f.CallID == "" || strings.Contains(f.CallID, " ")) {
		return CallFields{}, false // an empty sixth field, or a seventh
	}
	if ok != [4]bool{true, true, true, true} || f.Type == "" || !decimal(gen) || !decimal(timeout) {
		return CallFields{}, false
	}
	var err1, err2 error
	f.Generation, err1 = strconv.ParseUint(gen, 10, 64)
	f.TimeoutMs, err2 = strconv.ParseInt(timeout, 10, 64)
	return f, err1 == nil && err2 == nil
}

// decimal reports whether s is one or more ASCII digits.
func decimal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Headers of W3C trace context ("Trace context" in PROTOCOL.md), spelled in
// lower case as the specification does. NATS header names are
// case-sensitive; hosts also accept the MIME-canonical Traceparent and
// Tracestate.
const (
	HeaderTraceparent = "traceparent" // 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>
	HeaderTracestate  = "tracestate"  // with HeaderTraceparent
)

// Headers of an error reply. A reply is an error exactly when it carries
// HeaderErrorCode; its body is the full message. These are the headers
// nats.go/micro and the nats CLI show for service errors.
const (
	HeaderErrorCode = "Nats-Service-Error-Code" // decimal Code
	HeaderError     = "Nats-Service-Error"      // "CODE_NAME: message" on one line
	HeaderAppCode   = "Troupe-App-Code"         // the actor's own code, for CodeApplication
	// HeaderGeneration also rides on CodeMoved replies: the host's generation.
)
