package protocol

import (
	"fmt"
	"strconv"
)

// Stream subscriptions: an actor type declares a JetStream stream and a
// subject filter whose messages are delivered to its actors, each message
// as a call (PROTOCOL.md, "Stream subscriptions").
//
// The host that pulls a subscription's messages sends each one as a call to
// the actor it maps to, with the subscription's name in HeaderStream and the
// message's stream sequence in HeaderStreamSeq. The host that owns the actor
// runs the turn only if the sequence is above the actor's cursor for that
// subscription (pb.ActorState.streams) and saves the new cursor in the same
// compare-and-set write as the state the turn produced; a message the
// cursor already covers is answered with success without running.
const (
	HeaderStream    = "Troupe-Stream"
	HeaderStreamSeq = "Troupe-Stream-Seq"
	// HeaderStreamSubject is the message's subject, for the actor to read;
	// the host does not check it.
	HeaderStreamSubject = "Troupe-Stream-Subject"
)

// SubscriptionPrefix begins the placement id of a subscription's puller:
// the host that owns (type, SubscriptionPrefix+name) in the table pulls the
// subscription's messages.
const SubscriptionPrefix = "troupe_sub_"

// SubscriptionConsumer is the durable consumer name of a subscription on
// its stream: troupe_<type>_<name>.
func SubscriptionConsumer(typ ActorType, name string) string {
	return "troupe_" + string(typ) + "_" + name
}

// ValidateSubscriptionName checks a subscription name: like an actor type,
// a name of [A-Za-z0-9_-] at most MaxNameLen bytes, so that it can be part
// of a consumer name.
func ValidateSubscriptionName(name string) error {
	if err := ValidateName("subscription name", name); err != nil {
		return err
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameByte(c) {
			return fmt.Errorf("subscription name %q: only [A-Za-z0-9_-] allowed", name)
		}
	}
	return nil
}

// ParseStreamSeq reads the value of HeaderStreamSeq: a decimal sequence of
// at least 1.
func ParseStreamSeq(v string) (uint64, error) {
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%s %q: want a stream sequence, a decimal number of at least 1", HeaderStreamSeq, v)
	}
	return seq, nil
}
