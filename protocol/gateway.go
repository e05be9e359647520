package protocol

import "strings"

// Every host answers the gateway subjects in one queue group and runs the
// call when it owns the actor, or forwards it to the owner. A subject with
// more or fewer tokens after <prefix>.call., or an id token that is not
// canonically encoded, is answered CodeBadRequest, so no subject can reach
// an actor other than the one it names.

// GatewaySubject is the subject the gateway answers for a call of method on
// the actor (typ, id): <prefix>.call.<type>.<id-encoded id>.<method>.
func GatewaySubject(prefix string, typ ActorType, id ActorID, method string) string {
	return prefix + ".call." + string(typ) + "." + EncodeID(string(id)) + "." + method
}

// GatewaySubjects is the subscription that takes every gateway call:
// <prefix>.call.>.
func GatewaySubjects(prefix string) string { return prefix + ".call.>" }

// GatewayQueue is the queue group in which hosts answer the gateway and the
// reminder gateway: <prefix>.gateway.
func GatewayQueue(prefix string) string { return prefix + ".gateway" }

// SplitGatewaySubject returns the three tokens that follow <prefix>.call. in
// subject: the type, the id (still encoded) and the method. ok is false
// when subject does not start so or does not have exactly three tokens
// after it. The tokens are not validated.
func SplitGatewaySubject(prefix, subject string) (typ, encodedID, method string, ok bool) {
	// Cut, not splitAfter: every gateway call passes here, and this
	// allocates nothing.
	rest, ok := strings.CutPrefix(subject, prefix)
	if ok {
		rest, ok = strings.CutPrefix(rest, ".call.")
	}
	if ok {
		typ, rest, ok = strings.Cut(rest, ".")
	}
	if ok {
		encodedID, method, ok = strings.Cut(rest, ".")
	}
	if !ok || strings.Contains(method, ".") {
		return "", "", "", false
	}
	return typ, encodedID, method, true
}

// splitAfter cuts head from subject and splits the rest into exactly n
// tokens.
func splitAfter(subject, head string, n int) ([]string, bool) {
	rest, ok := strings.CutPrefix(subject, head)
	if !ok {
		return nil, false
	}
	tokens := strings.Split(rest, ".")
	if len(tokens) != n {
		return nil, false
	}
	return tokens, true
}

// A host that takes a gateway call for an actor it does not own forwards it
// to the owner's host subject with the caller's reply subject as the reply,
// so the owner answers the caller directly. The forwarded request carries
// the call headers and HeaderForwarded. Every host of protocol version 2 or
// later honours it (its record says so), and other hosts forward to it only
// then.
const (
	// HeaderForwarded marks a request to a host subject as a gateway call
	// forwarded by other hosts: its decimal value is how many hosts have
	// forwarded it (1 from the host that took it on the gateway). Its
	// receiver never answers MOVED: it follows the actor itself.
	HeaderForwarded = "Troupe-Forwarded"
	// HeaderProbe marks a message a forwarding host publishes to a host
	// subject, with a reply subject of its own, after forwarding calls
	// there. The host answers it with an empty message once it has read
	// every message before it, and does nothing else with it: that answer
	// tells the forwarding host the calls were taken; the server's
	// no-responders status, or no answer in time, that they may have
	// reached nobody.
	HeaderProbe = "Troupe-Probe"
	// MaxForwardHops bounds HeaderForwarded: a host that would forward a
	// call that already made this many hops relays it instead, so a call
	// never circles while the table moves.
	MaxForwardHops = 3
)
