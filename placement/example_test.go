package placement_test

import (
	"fmt"

	"github.com/troupe-dev/troupe/placement"
)

func ExampleKeyHash() {
	fmt.Println(placement.HashVersion, placement.KeyHash("counter", "user-42"))
	// Output: troupe-hrw-1 11227629338008659329
}

func ExampleTable_Owner() {
	t := placement.NewTable(7, []placement.Member{
		{ID: "host-0", Subject: "troupe.host.host-0", Types: []placement.ActorType{"counter"}},
		{ID: "host-1", Subject: "troupe.host.host-1", Types: []placement.ActorType{"counter"}},
		{ID: "host-2", Subject: "troupe.host.host-2", Types: []placement.ActorType{"counter"}},
	})
	for _, id := range []placement.ActorID{"user-42", "hello world", "bob", "a.b.c"} {
		m, _ := t.Owner("counter", id)
		fmt.Printf("%q → %s at %s\n", id, m.ID, m.Subject)
	}
	_, ok := t.Owner("room", "lobby")
	fmt.Println("room served:", ok)
	// Output:
	// "user-42" → host-1 at troupe.host.host-1
	// "hello world" → host-0 at troupe.host.host-0
	// "bob" → host-2 at troupe.host.host-2
	// "a.b.c" → host-0 at troupe.host.host-0
	// room served: false
}

func ExampleNewTable() {
	t := placement.NewTable(12, []placement.Member{
		{ID: "b", Types: []placement.ActorType{"room", "counter", "room"}},
		{ID: "a", Types: []placement.ActorType{"counter"}},
		{ID: "c", Types: []placement.ActorType{"counter"}, Draining: true},
		{ID: "a", Types: []placement.ActorType{"counter", "chat"}}, // replaces the first "a"
	})
	for _, m := range t.Members() {
		fmt.Println(m.ID, m.Types, m.Draining)
	}
	fmt.Println("generation", t.Generation())
	fmt.Println("types", t.Types())
	fmt.Println("counter hosts", t.Hosts("counter"))
	// Output:
	// a [chat counter] false
	// b [counter room] false
	// c [counter] true
	// generation 12
	// types [chat counter room]
	// counter hosts [a b]
}

// Adding a host moves only the ids the new host wins, about 1/(n+1) of them.
func Example_rebalance() {
	members := func(n int) []placement.Member {
		var ms []placement.Member
		for i := range n {
			ms = append(ms, placement.Member{ID: placement.HostID(fmt.Sprint("host-", i)), Types: []placement.ActorType{"counter"}})
		}
		return ms
	}
	before, after := placement.NewTable(1, members(3)), placement.NewTable(2, members(4))
	moved, toNew := 0, 0
	for i := range 10000 {
		id := placement.ActorID(fmt.Sprint("user-", i))
		b, _ := before.Owner("counter", id)
		a, _ := after.Owner("counter", id)
		if a.ID != b.ID {
			moved++
			if a.ID == "host-3" {
				toNew++
			}
		}
	}
	fmt.Printf("moved %d of 10000, %d to the new host\n", moved, toNew)
	// Output: moved 2535 of 10000, 2535 to the new host
}
