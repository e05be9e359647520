package router

import (
	"context"

	"github.com/troupe-dev/troupe/protocol"
)

// Headers of a call made from inside an actor's turn (see PROTOCOL.md,
// "Call chains"), each the protocol header of the same name.
const (
	HeaderChain     = protocol.HeaderChain
	HeaderChainPath = protocol.HeaderChainPath
)

// Hop is protocol.Hop: one actor in a call chain's path.
type Hop = protocol.Hop

// Chain is the call chain a call belongs to: its id and the actors whose
// turns wait on the call, outermost first.
type Chain struct {
	ID   string
	Path []Hop
}

// CallChain returns c, so that a fixed Chain is a ChainSource.
func (c Chain) CallChain() Chain { return c }

// ChainSource supplies the call chain of the calls made with a context. A
// host puts one in each turn's context, so that calls the actor makes with
// it carry the chain; it may be called from any goroutine.
type ChainSource interface {
	CallChain() Chain
}

// CallIDSource, when the ChainSource of a context also implements it, names
// the call ids of the calls made with the context that set none themselves
// (WithCallID, WithoutCallID). A host derives them from the id of the
// turn's own call and the order of the calls in the turn, so that a turn
// run again (its caller retried it: its first run's save failed, or its
// reply was lost) makes the same calls with the same ids, which the actors
// it calls apply at most once. NextCallID returns "" for a new random id.
type CallIDSource interface {
	NextCallID() string
}

type contextKey struct{ name string }

// CallChainKey is the context key under which a ChainSource travels. A
// context whose Value(CallChainKey) is a ChainSource makes Call send its
// chain in HeaderChain and HeaderChainPath.
var CallChainKey any = &contextKey{"call-chain"}

// WithChain returns a context whose calls carry src's chain.
func WithChain(ctx context.Context, src ChainSource) context.Context {
	return context.WithValue(ctx, CallChainKey, src)
}

// ChainFrom returns the chain that calls made with ctx carry, if any.
func ChainFrom(ctx context.Context) (Chain, bool) {
	src, ok := ctx.Value(CallChainKey).(ChainSource)
	if !ok || src == nil {
		return Chain{}, false
	}
	c := src.CallChain()
	return c, c.ID != ""
}

// NewChainID is protocol.NewChainID: a random chain id (32 hex digits).
func NewChainID() string { return protocol.NewChainID() }

// ValidateChainID is protocol.ValidateChainID: it checks a chain id, 1–64
// characters from [A-Za-z0-9_-].
func ValidateChainID(id string) error { return protocol.ValidateChainID(id) }

// FormatPath is protocol.FormatPath: a path as HeaderChainPath carries it.
func FormatPath(path []Hop) string { return protocol.FormatPath(path) }

// ParsePath is protocol.ParsePath: it reads a HeaderChainPath value.
func ParsePath(s string) ([]Hop, error) { return protocol.ParsePath(s) }

// FormatCycle is protocol.FormatCycle: a call cycle named for people, as in
// "counter/a → bank/b → counter/a".
func FormatCycle(path []Hop, to Hop) string { return protocol.FormatCycle(path, to) }
