package placement

import (
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// refKeyHash is KeyHash written from the package documentation with the
// standard library's FNV-1a.
func refKeyHash(typ ActorType, id ActorID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return refFmix64(h.Sum64())
}

// refHostHash is the documented host hash, with the standard library's FNV-1a.
func refHostHash(id HostID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return refFmix64(h.Sum64())
}

// refFmix64 is MurmurHash3's fmix64, transcribed separately from fmix64.
func refFmix64(k uint64) uint64 {
	k = (k ^ k>>33) * 0xff51afd7ed558ccd
	k = (k ^ k>>33) * 0xc4ceb9fe1a85ec53
	return k ^ k>>33
}

func TestFNVKnownValues(t *testing.T) {
	// Published FNV-1a 64 test values.
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := fnvString(fnvOffset64, tc.in); got != tc.want {
			t.Errorf("FNV-1a-64(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestFmix64(t *testing.T) {
	if got := fmix64(0); got != 0 {
		t.Errorf("fmix64(0) = %#x, want 0", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		k := r.Uint64()
		if got, want := fmix64(k), refFmix64(k); got != want {
			t.Fatalf("fmix64(%#x) = %#x, want %#x", k, got, want)
		}
	}
}

func TestKeyHashMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		typ := ActorType(randName(r))
		id := ActorID(randBytes(r, 1+r.IntN(40)))
		if got, want := KeyHash(typ, id), refKeyHash(typ, id); got != want {
			t.Fatalf("KeyHash(%q, %q) = %d, want %d", typ, id, got, want)
		}
	}
}

func TestHostHashMatchesReference(t *testing.T) {
	for _, id := range []HostID{"", "a", "host-1", "Z_9-x"} {
		if got, want := hostHash(id), refHostHash(id); got != want {
			t.Errorf("hostHash(%q) = %d, want %d", id, got, want)
		}
	}
}

// TestKeyHashSeparator checks that the type/id boundary matters: pairs whose
// plain concatenations are equal hash differently. (A type never contains
// NUL, which is what makes the encoding unambiguous.)
func TestKeyHashSeparator(t *testing.T) {
	pairs := [][2]struct {
		typ ActorType
		id  ActorID
	}{
		{{"ab", "c"}, {"a", "bc"}},
		{{"a", "b.c"}, {"a.b", "c"}},
	}
	for _, p := range pairs {
		if KeyHash(p[0].typ, p[0].id) == KeyHash(p[1].typ, p[1].id) {
			t.Errorf("KeyHash%q == KeyHash%q", p[0], p[1])
		}
	}
}

func TestKeyHashDoesNotAllocate(t *testing.T) {
	var sink uint64
	allocs := testing.AllocsPerRun(100, func() { sink += KeyHash("counter", "user-42") })
	if allocs != 0 {
		t.Errorf("KeyHash allocates %v times per call", allocs)
	}
}

// randName returns a random valid name (see ValidateName).
func randName(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
	b := make([]byte, 1+r.IntN(12))
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

// randBytes returns n random bytes, any values included, as a string.
func randBytes(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return string(b)
}
