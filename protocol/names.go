package protocol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// control characters and non-UTF-8 bytes. Code that puts an id into a subject
// or a header encodes it with [EncodeID]; the state bucket's key uses
// [StateKey].
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

// ValidateName checks a host id, actor type, method name, reminder name or
// call chain id: 1 to MaxNameLen characters from [A-Za-z0-9_-], so that it
// is always one subject token and one KV key token. what names the kind of
// name in the error.
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

// EncodeID makes an actor id safe for a header value and a subject token:
// bytes in [A-Za-z0-9_~:@=+,-] stay as they are and every other byte becomes
// %XX (upper-case hex). The encoding is canonical: each id has exactly one.
func EncodeID(id string) string {
	n := 0
	for i := 0; i < len(id); i++ {
		if !plainIDByte(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	return string(appendEscaped(make([]byte, 0, len(id)+2*n), id, plainIDByte, '%'))
}

// appendEscaped appends s to b, each byte that keep refuses written as mark
// and two upper-case hex digits.
func appendEscaped(b []byte, s string, keep func(byte) bool, mark byte) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep(c) {
			b = append(b, c)
			continue
		}
		b = append(b, mark, hex[c>>4], hex[c&15])
	}
	return b
}

// DecodeID reverses EncodeID. It accepts only the canonical form, so no two
// header values name the same actor.
func DecodeID(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		for i := 0; i < len(s); i++ {
			if !plainIDByte(s[i]) {
				return "", fmt.Errorf("byte %q at %d must be %%-encoded", s[i], i)
			}
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case plainIDByte(c):
			b = append(b, c)
		case c == '%' && i+2 < len(s) && upperHex(s[i+1]) && upperHex(s[i+2]):
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if plainIDByte(byte(v)) {
				return "", fmt.Errorf("%q at %d must not be %%-encoded", byte(v), i)
			}
			b = append(b, byte(v))
			i += 2
		default:
			return "", fmt.Errorf("bad escape or byte %q at %d", c, i)
		}
	}
	return string(b), nil
}

func plainIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("_~:@=+,-", c) >= 0
}

func upperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
