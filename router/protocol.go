package router

import (
	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/protocol"
)

// The wire protocol is defined in package protocol; the names below keep
// calling code that uses router's names working.

// Headers of a call request sent to a host's subject, each the protocol
// header of the same name.
const (
	HeaderType       = protocol.HeaderType
	HeaderID         = protocol.HeaderID
	HeaderMethod     = protocol.HeaderMethod
	HeaderGeneration = protocol.HeaderGeneration
	HeaderTimeout    = protocol.HeaderTimeout
	HeaderCall       = protocol.HeaderCall
)

// Headers of an error reply, each the protocol header of the same name.
const (
	HeaderErrorCode = protocol.HeaderErrorCode
	HeaderError     = protocol.HeaderError
	HeaderAppCode   = protocol.HeaderAppCode
)

// EncodeID is protocol.EncodeID.
func EncodeID(id string) string { return protocol.EncodeID(id) }

// DecodeID is protocol.DecodeID.
func DecodeID(s string) (string, error) { return protocol.DecodeID(s) }

// EncodeError is protocol.EncodeError.
func EncodeError(e *Error) (nats.Header, []byte) { return protocol.EncodeError(e) }

// DecodeError is protocol.DecodeError.
func DecodeError(h nats.Header, body []byte) *Error { return protocol.DecodeError(h, body) }
