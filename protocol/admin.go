package protocol

// Every host answers an admin request for a report of its actors (JSON;
// see PROTOCOL.md for the request and the report), without a queue group, so
// that a tool can ask all hosts at once and gather the answers.

// AdminActorsSubject is answered by every host under prefix:
// <prefix>.admin.actors.
func AdminActorsSubject(prefix string) string { return prefix + ".admin.actors" }

// AdminActorsHostSubject is answered by host id only:
// <prefix>.admin.actors.<hostID>.
func AdminActorsHostSubject(prefix string, id HostID) string {
	return prefix + ".admin.actors." + string(id)
}

// MaxReportIDs is the most actor ids per type a request may ask for.
const MaxReportIDs = 100_000

// ActorsRequest is the JSON body of an admin actors request. An empty body
// asks for the counts only. A malformed request (not JSON, a negative or
// non-numeric ids) is answered CodeBadRequest.
type ActorsRequest struct {
	// IDs asks for up to this many actor ids per type (0: none; at most
	// MaxReportIDs, and as many as fit in one message).
	IDs int `json:"ids,omitempty"`
	// Type limits the report to one actor type ("": all).
	Type string `json:"type,omitempty"`
}

// ActorsReport is a host's JSON answer to an admin actors request.
type ActorsReport struct {
	Host          string `json:"host"`
	Incarnation   string `json:"incarnation,omitempty"`
	Version       string `json:"version"`
	StartedUnixMs int64  `json:"started_unix_ms,omitempty"`
	// Generation is the host's table generation when it answered.
	Generation uint64 `json:"generation"`
	// Draining: the host is leaving (its record says so, or it is shutting
	// down).
	Draining bool `json:"draining"`
	// LeaseAgeMs is the time since the host's last successful lease write,
	// LeaseTTLMs the lease's time to live: the server expires the lease when
	// the age reaches the TTL.
	LeaseAgeMs int64        `json:"lease_age_ms"`
	LeaseTTLMs int64        `json:"lease_ttl_ms"`
	Types      []TypeReport `json:"types"`
	// Subscriptions are the stream subscriptions of the host's types,
	// sorted by type and name; absent when it has none.
	Subscriptions []SubscriptionReport `json:"subscriptions,omitempty"`
}

// SubscriptionReport is one stream subscription in an ActorsReport, with
// this host's counts since it started.
type SubscriptionReport struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Stream  string `json:"stream"`
	Subject string `json:"subject"` // the filter; "" takes the whole stream
	// Pulling: this host pulls the subscription now.
	Pulling bool `json:"pulling"`
	// Pending and AckPending are the consumer's counts (not delivered yet;
	// delivered and not acknowledged) as the puller last read them, set
	// only while Pulling.
	Pending    uint64 `json:"pending"`
	AckPending uint64 `json:"ack_pending"`
	InFlight   int64  `json:"in_flight"`  // messages this host holds for delivery
	Applied    uint64 `json:"applied"`    // acknowledged after the actor had them
	Terminated uint64 `json:"terminated"` // given up: no valid actor, or too many failed turns
}

// TypeReport is one actor type in an ActorsReport, which lists them sorted
// by type.
type TypeReport struct {
	Type   string `json:"type"`
	Active int    `json:"active"` // activations now
	Calls  uint64 `json:"calls"`  // turns run since the host started
	Errors uint64 `json:"errors"` // of them, those that ended in an error reply
	// IDs are id-encoded, sorted; fewer than Active when the request asked
	// for fewer or the reply would not fit a message.
	IDs []string `json:"ids,omitempty"`
}
