package placement

import "github.com/troupe-dev/troupe/protocol"

// HashVersion is protocol.HashVersion: it names the placement function
// specified in the package documentation (the key hash, the host hash, the
// score and the tie-break). Clients in other languages that route directly
// compare it with the version they implement and fall back to the gateway
// when it differs. Any change to the function, however small, gets a new
// version, set in package protocol.
const HashVersion = protocol.HashVersion

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 = 0xcbf29ce484222325
	fnvPrime64  = 0x100000001b3
)

// KeyHash returns the 64-bit hash of the actor (typ, id):
//
//	KeyHash(typ, id) = fmix64(FNV-1a-64(typ || 0x00 || id))
//
// typ never contains a NUL byte, so the first NUL ends the type and the
// encoding is unambiguous even though id may contain any bytes. KeyHash does
// not validate its arguments and never allocates.
func KeyHash(typ ActorType, id ActorID) uint64 {
	h := fnvString(fnvOffset64, string(typ))
	h = fnvByte(h, 0)
	h = fnvString(h, string(id))
	return fmix64(h)
}

// hostHash returns the 64-bit hash of a host id:
// fmix64(FNV-1a-64(id)). It is computed once per member when a Table is built.
func hostHash(id HostID) uint64 {
	return fmix64(fnvString(fnvOffset64, string(id)))
}

// score is the rendezvous weight of a host (by its hostHash) for a key (by its
// KeyHash). The owner is the candidate with the highest score.
func score(key, host uint64) uint64 {
	return fmix64(key ^ host)
}

// fnvString folds the bytes of s into the FNV-1a state h. It works on the
// string directly so that hashing never allocates (hash/fnv would need a
// []byte and an interface); the tests check it against hash/fnv.
func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// fnvByte folds one byte into the FNV-1a state h.
func fnvByte(h uint64, b byte) uint64 {
	return (h ^ uint64(b)) * fnvPrime64
}

// fmix64 is the 64-bit finalizer of MurmurHash3: a bijection on uint64 with
// full avalanche, so every input bit affects every output bit.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
