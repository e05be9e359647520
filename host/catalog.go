package host

import (
	"sort"

	"github.com/troupe-dev/troupe/placement"
)

// catalog is a host's registered actor types and, through each type's
// directory, its activations. It is filled before Start and only read
// after, so it needs no lock of its own.
type catalog map[placement.ActorType]*actorType

// names lists the types, sorted.
func (c catalog) names() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, string(n))
	}
	sort.Strings(names)
	return names
}

// each calls f for every activation of every type.
func (c catalog) each(f func(*activation)) {
	for _, t := range c {
		t.dir.each(f)
	}
}
