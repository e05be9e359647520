// Package proctest helps tests that run the troupe binary and other programs
// as real processes.
package proctest

import (
	"bytes"
	"sync"
)

// Buffer collects a process's output while it runs; it is safe to read
// while the process writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
