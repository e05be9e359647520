package protocol

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
)

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
