package placement

import (
	"errors"
	"fmt"
)

// HostID names one host in the member set. It is the last token of the
// host's membership key (hosts.<HostID>) and of its request subject, so it is
// restricted to subject-safe characters: see [HostID.Validate].
type HostID string

// ActorType names a kind of actor (for example "counter"). Like HostID it is
// a single subject token: see [ActorType.Validate].
type ActorType string

// ActorID names one actor of a type. Ids are opaque: any non-empty string of
// at most [MaxActorIDLen] bytes is valid, including dots, wildcards, spaces,
// control characters and non-UTF-8 bytes. Code that puts an id into a subject,
// a header or a key must encode it (see the router and host packages).
type ActorID string

// Limits on identifier sizes.
const (
	// MaxNameLen bounds HostID, ActorType and method names.
	MaxNameLen = 64
	// MaxActorIDLen bounds ActorID. An escaped id must still fit in a NATS
	// control line (4 KiB by default) as part of a state-bucket subject.
	MaxActorIDLen = 1024
)

// ErrInvalidName is wrapped by the errors returned for an invalid HostID,
// ActorType or method name.
var ErrInvalidName = errors.New("invalid name")

// ErrInvalidActorID is wrapped by the error returned for an invalid ActorID.
var ErrInvalidActorID = errors.New("invalid actor id")

// Validate reports whether h can name a host.
func (h HostID) Validate() error { return ValidateName("host id", string(h)) }

// Validate reports whether t can name an actor type.
func (t ActorType) Validate() error { return ValidateName("actor type", string(t)) }

// Validate reports whether id can name an actor.
func (id ActorID) Validate() error {
	switch {
	case len(id) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidActorID)
	case len(id) > MaxActorIDLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidActorID, len(id), MaxActorIDLen)
	}
	return nil
}

// ValidateName checks a host id, actor type or method name: 1 to MaxNameLen
// characters from [A-Za-z0-9_-], so that it is always one subject token and
// one KV key token. what names the kind of name in the error.
func ValidateName(what, s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidName, what)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s longer than %d characters", ErrInvalidName, what, MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return fmt.Errorf("%w: %s %q: character %q is not one of A-Z a-z 0-9 _ -", ErrInvalidName, what, s, s[i])
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}
