package placement

import "math"

// OwnerOfKey returns the member that owns the actors of typ whose KeyHash is
// key: Owner(typ, id) is OwnerOfKey(typ, KeyHash(typ, id)). It lets tools
// picture how the 64-bit key space divides among hosts. The returned Member
// is shared with the table and must not be modified.
func (t *Table) OwnerOfKey(typ ActorType, key uint64) (*Member, bool) {
	if t == nil {
		return nil, false
	}
	th := t.byType[typ]
	if th == nil {
		return nil, false
	}
	return &t.members[pick(key, th.cands)], true
}

// KeySpace samples the key space of typ at n evenly spaced key hashes, the
// i-th at the middle of the i-th of n equal slices of [0, 2^64) (the last slice
// is shorter by less than n), and returns
// the owner of each: slice i of the answer is the host owning that point.
// Counting the hosts in it gives each host's share of the key space. It
// returns nil when no host serves typ or n < 1.
func (t *Table) KeySpace(typ ActorType, n int) []HostID {
	if n < 1 || !t.Serves(typ) {
		return nil
	}
	owners := make([]HostID, n)
	step := uint64(math.MaxUint64) / uint64(n)
	for i := range owners {
		m, _ := t.OwnerOfKey(typ, uint64(i)*step+step/2)
		owners[i] = m.ID
	}
	return owners
}
