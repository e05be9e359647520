package host

import (
	"slices"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/troupe-dev/troupe/placement"
)

// typeCounters count the turns of one actor type. A turn pays one atomic
// add (two when it fails); readers load them at any time.
type typeCounters struct {
	calls  atomic.Uint64
	errors atomic.Uint64
	saves  atomic.Uint64 // state saves tried
	// repeats counts calls answered from their record (calls.go).
	repeats atomic.Uint64
}

// count records one turn that ended with reply: a success reply has no
// header, an error reply always has one.
func (c *typeCounters) count(reply *nats.Msg) {
	c.calls.Add(1)
	if reply.Header != nil {
		c.errors.Add(1)
	}
}

// TypeStats is what a host knows of one of its actor types.
type TypeStats struct {
	Type   placement.ActorType
	Active int    // activations on this host now
	Calls  uint64 // turns run since the host started
	Errors uint64 // turns that ended in an error reply
	// Saves counts the state saves tried: with group commit one save covers
	// the turns that found calls queued behind them, so under load Saves
	// grows slower than Calls.
	Saves uint64
	// Repeats counts the calls answered with the recorded reply of an
	// earlier call with the same call id, without running (PROTOCOL.md,
	// "Idempotent calls").
	Repeats uint64
}

// Stats returns the stats of every registered type, sorted by type. It is
// safe to call at any time, from any goroutine, and costs a few atomic
// loads per type: activations count themselves in and out, turns count
// themselves when they end.
func (h *Host) Stats() []TypeStats {
	out := make([]TypeStats, 0, len(h.types))
	for _, name := range h.types.names() {
		t := h.types[placement.ActorType(name)]
		out = append(out, TypeStats{
			Type:    t.name,
			Active:  t.dir.len(),
			Calls:   t.counters.calls.Load(),
			Errors:  t.counters.errors.Load(),
			Saves:   t.counters.saves.Load(),
			Repeats: t.counters.repeats.Load(),
		})
	}
	return out
}

// ActiveIDs returns the ids of up to limit active actors of typ, sorted
// (which ones, when there are more, is unspecified), and how many are
// active. A type the host does not serve has none.
func (h *Host) ActiveIDs(typ placement.ActorType, limit int) (ids []placement.ActorID, active int) {
	t, ok := h.types[typ]
	if !ok {
		return nil, 0
	}
	t.dir.each(func(a *activation) {
		active++
		if len(ids) < limit {
			ids = append(ids, a.id)
		}
	})
	slices.Sort(ids)
	return ids, active
}
