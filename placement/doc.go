// Package placement decides which host owns which actor.
//
// The core is pure: [KeyHash] and [Table] are functions of a member set and
// import nothing from NATS, so every host and every client that has applied
// the same member set computes the same owner for every actor, with no
// coordination. Membership itself (the KV bucket, host leases renewed on
// liveness keys, the [Monitor] that removes crashed hosts' records, the
// [Collector] that turns the hosts' releases into the settled record,
// and the [Watcher] that turns bucket revisions into Tables and generations)
// lives beside this core in bucket.go, lease.go, monitor.go, collector.go and
// watcher.go.
//
// # Placement function, version "troupe-hrw-1"
//
// This is the specification that clients in other languages implement to
// route calls directly; testdata/vectors.json holds golden cases. All
// arithmetic is on unsigned 64-bit integers, modulo 2^64 (in JavaScript:
// BigInt, masked with (1n<<64n)-1n after every multiplication).
//
//	FNV-1a-64(b):  h = 0xcbf29ce484222325
//	               for each byte c of b: h = (h XOR c) * 0x100000001b3
//	fmix64(k):     k ^= k >> 33; k *= 0xff51afd7ed558ccd
//	               k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53
//	               k ^= k >> 33
//	KeyHash(t, id) = fmix64(FNV-1a-64(bytes(t) || 0x00 || bytes(id)))
//	HostHash(h)    = fmix64(FNV-1a-64(bytes(h)))
//	Score(h, t, id) = fmix64(KeyHash(t, id) XOR HostHash(h))
//
// bytes(x) is the string's bytes as they are, not normalised or decoded:
// host ids and types are ASCII names (see [ValidateName]); an id is any
// sequence of 1 to [MaxActorIDLen] bytes, NUL and invalid UTF-8 included.
// A type never contains NUL, so the first 0x00 byte of the hashed key ends
// the type and (t, id) is encoded unambiguously. fmix64 is the finalizer of
// MurmurHash3.
//
// The candidates for type t are the members that list t among their types
// and are not draining. The owner of (t, id) is the candidate with the
// greatest Score, compared as unsigned integers. Two candidates tie only if
// their HostHash values are equal; the one whose id is smaller in byte-wise
// comparison then wins. With no candidate, (t, id) has no owner. The table
// generation is not an input: it only says which member set a Table is for.
//
// This is rendezvous (highest random weight) hashing. [HashVersion] names
// it; any change to the function gets a new version.
//
// # Why rendezvous hashing: the measurements
//
// Two schemes were implemented and measured: rendezvous hashing ([Table]) and
// a consistent-hash ring with virtual nodes at fmix64(FNV-1a-64(host + "#" +
// i)), which lives on only in ring_test.go for comparison. Numbers from a
// 2-core amd64 VM, Go 1.26 (go test -bench . and
// go test -run TestCompareSchemes -compare -v); balance is the most loaded
// host over the mean with 10,000 ids per host, averaged over 5 random host
// namings (worst in parentheses); movement is the fraction of ids that moved
// when one host joined n hosts.
//
//	                     rendezvous      ring, 100 vnodes  ring, 1000 vnodes
//	Owner, 3 hosts       31 ns           28 ns             32 ns
//	Owner, 10 hosts      47 ns           35 ns             32 ns
//	Owner, 100 hosts     157 ns          35 ns             36 ns
//	build, 10 hosts      4.2 µs          150 µs            3.2 ms
//	build, 100 hosts     35 µs           3.1 ms            45 ms
//	max/mean, 3 hosts    1.009 (1.012)   1.055 (1.131)     1.025 (1.056)
//	max/mean, 10 hosts   1.014 (1.020)   1.173 (1.230)     1.051 (1.068)
//	max/mean, 100 hosts  1.032 (1.037)   1.300 (1.369)     1.104 (1.129)
//	moved, 10→11 hosts   0.0906          0.0913            0.0908
//
// (ideal movement 1/11 = 0.0909; KeyHash alone is 13 ns; nothing allocates
// on lookup.) Both schemes move ids only to a joining host or away from a
// leaving one. Rendezvous wins on what placement is for: its balance is the
// sampling noise of a uniform hash at every size, where the ring's depends on
// where the host ids happen to land (1.23 × the mean at 10 hosts with 100
// vnodes), and a ring needs 1000 vnodes, a 45 ms rebuild at 100 hosts and a
// harder specification (vnode naming, wrap-around, point collisions) to come
// near it. Rendezvous costs O(hosts) per lookup, about 1.4 ns per candidate:
// measured 90 ns at 50 hosts serving a type, 450 ns at 300, 1.3 µs at 1000.
// That is small beside a NATS round trip, so it suits the intended scale of
// some hundreds of hosts per type; beyond that a future version could
// combine the two (rendezvous over a fixed number of ring segments).
//
// A Table keeps, for each type, its candidates sorted by id with their
// HostHash computed once, so a lookup is one map access, one KeyHash and one
// pass over the candidates.
package placement
