package protocol

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Headers of a call made from inside an actor's turn. A host uses them to
// let a call that belongs to the chain holding an actor's turn re-enter it
// (reentrant types), to refuse a call cycle at once with CodeWouldDeadlock
// (other types), and to bound a chain's depth with CodeChainTooDeep.
const (
	// HeaderChain is the call chain's id: 1–64 characters from
	// [A-Za-z0-9_-], made by the first actor in the chain that calls out.
	HeaderChain = "Troupe-Chain"
	// HeaderChainPath lists the actors whose turns wait on the call,
	// outermost first, as Hop strings separated by single spaces.
	HeaderChainPath = "Troupe-Chain-Path"
)

// Hop is one actor in a call chain's path.
type Hop struct {
	Type ActorType
	ID   ActorID
}

// String is the hop as it travels in HeaderChainPath: type/encoded-id, such
// as "counter/c1". It never contains a space.
func (h Hop) String() string { return string(h.Type) + "/" + EncodeID(string(h.ID)) }

// NewChainID returns a random chain id (32 hex digits).
func NewChainID() string {
	var b [16]byte
	for i := range 2 {
		v := rand.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// ValidateChainID checks a chain id: 1–64 characters from [A-Za-z0-9_-].
func ValidateChainID(id string) error {
	return ValidateName("call chain id", id)
}

// FormatPath writes a path as HeaderChainPath carries it.
func FormatPath(path []Hop) string {
	var b strings.Builder
	for i, h := range path {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.String())
	}
	return b.String()
}

// ParsePath reads a HeaderChainPath value. The empty string is the empty
// path.
func ParsePath(s string) ([]Hop, error) {
	if s == "" {
		return nil, nil
	}
	fields := strings.Split(s, " ")
	path := make([]Hop, 0, len(fields))
	for _, f := range fields {
		typ, rawID, ok := strings.Cut(f, "/")
		if !ok {
			return nil, fmt.Errorf("hop %q: want type/id", f)
		}
		if err := ActorType(typ).Validate(); err != nil {
			return nil, fmt.Errorf("hop %q: %w", f, err)
		}
		id, err := DecodeID(rawID)
		if err != nil {
			return nil, fmt.Errorf("hop %q: %w", f, err)
		}
		if err := ActorID(id).Validate(); err != nil {
			return nil, fmt.Errorf("hop %q: %w", f, err)
		}
		path = append(path, Hop{Type: ActorType(typ), ID: ActorID(id)})
	}
	return path, nil
}

// FormatCycle names a call cycle for people, as a WOULD_DEADLOCK message
// does: the hops from the first visit of to, then to again, joined by
// arrows, as in "counter/a → bank/b → counter/a".
func FormatCycle(path []Hop, to Hop) string {
	start := 0
	for i, h := range path {
		if h == to {
			start = i
			break
		}
	}
	var b strings.Builder
	for _, h := range path[start:] {
		b.WriteString(h.String())
		b.WriteString(" → ")
	}
	b.WriteString(to.String())
	return b.String()
}
