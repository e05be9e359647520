package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Other is the label value that stands for every value past a cap, and for
// values that were never accepted.
const Other = "other"

// Caps on the values of the type and method labels.
const (
	MaxTypes          = 32 // actor types with a label of their own, per router or host
	MaxMethodsPerType = 32 // methods with a label of their own, per type
)

// names bounds the values of one label. A value gets a label of its own
// only when it was accepted (the caller says what that means: an actor ran
// the method, a host served the type) and fewer than max values have one;
// every other value is reported as Other. So a caller sending random
// method names cannot grow the number of series.
//
// Lookups of known values take no lock.
type names struct {
	max int32
	n   atomic.Int32
	mu  sync.Mutex
	m   sync.Map // string → struct{}
}

// lookup returns the label for v: v itself if it has one or may now get one.
func (s *names) lookup(v string, accept bool) (label string, known bool) {
	if _, ok := s.m.Load(v); ok {
		return v, true
	}
	if !accept {
		return Other, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m.Load(v); ok {
		return v, true
	}
	if s.n.Load() >= s.max {
		return Other, false
	}
	// v may be a substring of a request's buffer: keep a copy.
	v = strings.Clone(v)
	s.m.Store(v, struct{}{})
	s.n.Add(1)
	return v, true
}
