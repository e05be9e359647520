package placement

import (
	"fmt"
	"testing"
)

// benchIDs are the ids lookups cycle through, so that a benchmark does not
// measure one key's hot path.
var benchIDs = actorIDs(1024)

var hostCounts = []int{3, 10, 100}

func BenchmarkKeyHash(b *testing.B) {
	b.ReportAllocs()
	var sink uint64
	for i := 0; b.Loop(); i++ {
		sink += KeyHash("counter", benchIDs[i%len(benchIDs)])
	}
	_ = sink
}

// BenchmarkOwner measures the rendezvous lookup.
func BenchmarkOwner(b *testing.B) {
	for _, n := range hostCounts {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			benchOwner(b, NewTable(1, membersOf(hostIDs(n), "counter")).Owner)
		})
	}
}

// BenchmarkRingOwner measures the vnode ring lookup, for comparison.
func BenchmarkRingOwner(b *testing.B) {
	for _, v := range []int{100, 1000} {
		for _, n := range hostCounts {
			b.Run(fmt.Sprintf("vnodes=%d/hosts=%d", v, n), func(b *testing.B) {
				tb := NewTable(1, membersOf(hostIDs(n), "counter"))
				benchOwner(b, newRing(v, tb).owner)
			})
		}
	}
}

func benchOwner(b *testing.B, owner ownerFunc) {
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := owner("counter", benchIDs[i%len(benchIDs)]); !ok {
			b.Fatal("no owner")
		}
	}
}

// BenchmarkNewTable measures building a table whose members serve two types.
func BenchmarkNewTable(b *testing.B) {
	for _, n := range hostCounts {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			ms := membersOf(hostIDs(n), "counter", "room")
			b.ReportAllocs()
			for b.Loop() {
				NewTable(1, ms)
			}
		})
	}
}

// BenchmarkRingBuild measures building the comparison ring on top of a table.
func BenchmarkRingBuild(b *testing.B) {
	for _, v := range []int{100, 1000} {
		for _, n := range hostCounts {
			b.Run(fmt.Sprintf("vnodes=%d/hosts=%d", v, n), func(b *testing.B) {
				ms := membersOf(hostIDs(n), "counter", "room")
				b.ReportAllocs()
				for b.Loop() {
					newRing(v, NewTable(1, ms))
				}
			})
		}
	}
}
