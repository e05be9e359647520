// Package protocol is the Go form of PROTOCOL.md: every subject, header,
// error code, key and encoding troupe puts on the wire, named once, so that
// the router, placement and host packages, tools and programs of users all
// speak the same bytes. It imports nothing else from troupe, so any of them
// can import it.
//
// Each file mirrors a section of PROTOCOL.md:
//
//	doc.go          the opening: the subject prefix (DefaultSubjectPrefix)
//	names.go        "Names": actor types, ids, host ids, and the id encoding
//	gateway.go      "Calling through the gateway"
//	call.go         "Calling a host directly", with the headers of
//	                "Trace context"
//	errors.go       "Error codes", and the error reply of "Calling a host
//	                directly"
//	chain.go        "Call chains"
//	membership.go   "Membership bucket", the version name and metadata key
//	                of "Placement hash", and the release keys of "Handoff"
//	state.go        "State bucket"
//	reminders.go    "Reminders": the stream, delivery and the reminder
//	                gateway
//	admin.go        "Admin actors report": subjects, request and report
//	discovery.go    "Service discovery"
//
// The placement function itself ("Placement hash") lives in package
// placement, beside the golden vectors that pin it, and the records in the
// buckets are the protobuf messages of package pb; "One-way sends" and
// "Routing and retries" describe behaviour and add no names.
//
// A function named ...Subject builds one subject; one named ...Subjects
// builds a wildcard subject that matches several (a subscription, a stream
// or consumer filter, a purge). Ids in subjects and headers are always
// id-encoded (EncodeID); types, methods, host ids and reminder names are
// single tokens by their rules (ValidateName), so the builders never need to
// escape them. The builders do not validate: callers check names first.
package protocol

// DefaultSubjectPrefix starts every troupe subject unless a deployment
// configures another prefix.
const DefaultSubjectPrefix = "troupe"
