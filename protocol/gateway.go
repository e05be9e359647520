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
	t, ok := splitAfter(subject, prefix+".call.", 3)
	if !ok {
		return "", "", "", false
	}
	return t[0], t[1], t[2], true
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
