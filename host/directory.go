package host

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/troupe-dev/troupe/placement"
)

// shards spreads one type's activations over independently locked maps, so
// concurrent calls for different actors rarely contend.
const shards = 64

// directory holds the activations of one actor type on this host.
type directory struct {
	seed   maphash.Seed
	shards [shards]shard
	n      atomic.Int64 // activations in all shards: changed under their locks
}

type shard struct {
	mu sync.Mutex
	m  map[placement.ActorID]*activation
}

func (d *directory) init() {
	d.seed = maphash.MakeSeed()
	for i := range d.shards {
		d.shards[i].m = make(map[placement.ActorID]*activation)
	}
}

func (d *directory) shard(id placement.ActorID) *shard {
	return &d.shards[maphash.String(d.seed, string(id))%shards]
}

// getOrCreate returns the activation of id, creating one of type t in e if
// there is none.
func (d *directory) getOrCreate(e *engine, t *actorType, id placement.ActorID) *activation {
	s := d.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		// The id arrived as a substring of the request's header block: copy
		// it, or every activation would pin a whole request in memory.
		id = placement.ActorID(strings.Clone(string(id)))
		a = newActivation(e, t, id)
		s.m[id] = a
		d.n.Add(1)
	}
	return a
}

// get returns the activation of id, or nil.
func (d *directory) get(id placement.ActorID) *activation {
	s := d.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

// remove drops a if it is still id's activation.
func (d *directory) remove(id placement.ActorID, a *activation) {
	s := d.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[id] == a {
		delete(s.m, id)
		d.n.Add(-1)
	}
}

// each calls f for every activation. f runs without the shard locked, so it
// may call back into the directory.
func (d *directory) each(f func(*activation)) {
	var batch []*activation
	for i := range d.shards {
		s := &d.shards[i]
		s.mu.Lock()
		batch = batch[:0]
		for _, a := range s.m {
			batch = append(batch, a)
		}
		s.mu.Unlock()
		for _, a := range batch {
			f(a)
		}
	}
}

// len is the number of activations; it costs one atomic load.
func (d *directory) len() int { return int(d.n.Load()) }
