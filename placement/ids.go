package placement

import "github.com/troupe-dev/troupe/protocol"

// HostID names one host in the member set; it is protocol.HostID.
type HostID = protocol.HostID

// ActorType names a kind of actor; it is protocol.ActorType.
type ActorType = protocol.ActorType

// ActorID names one actor of a type; it is protocol.ActorID.
type ActorID = protocol.ActorID

// Limits on identifier sizes.
const (
	// MaxNameLen is protocol.MaxNameLen.
	MaxNameLen = protocol.MaxNameLen
	// MaxActorIDLen is protocol.MaxActorIDLen.
	MaxActorIDLen = protocol.MaxActorIDLen
)

// ErrInvalidName is protocol.ErrInvalidName.
var ErrInvalidName = protocol.ErrInvalidName

// ErrInvalidActorID is protocol.ErrInvalidActorID.
var ErrInvalidActorID = protocol.ErrInvalidActorID

// ValidateName is protocol.ValidateName.
func ValidateName(what, s string) error { return protocol.ValidateName(what, s) }
