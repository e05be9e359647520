package placement

import "testing"

func TestOwnerOfKeyMatchesOwner(t *testing.T) {
	tab := NewTable(7, membersOf(hostIDs(5), "a", "b"))
	for _, id := range actorIDs(2000) {
		for _, typ := range []ActorType{"a", "b"} {
			want, _ := tab.Owner(typ, id)
			got, ok := tab.OwnerOfKey(typ, KeyHash(typ, id))
			if !ok || got.ID != want.ID {
				t.Fatalf("OwnerOfKey(%s, KeyHash(%q)) = %v, want %s", typ, id, got, want.ID)
			}
		}
	}
	if _, ok := tab.OwnerOfKey("nosuch", 1); ok {
		t.Error("OwnerOfKey of an unserved type reports an owner")
	}
	var nilTable *Table
	if _, ok := nilTable.OwnerOfKey("a", 1); ok {
		t.Error("nil table reports an owner")
	}
}

func TestKeySpace(t *testing.T) {
	ids := hostIDs(4)
	tab := NewTable(1, membersOf(ids, "a"))
	if got := tab.KeySpace("nosuch", 10); got != nil {
		t.Errorf("KeySpace of an unserved type = %v, want nil", got)
	}
	if got := tab.KeySpace("a", 0); got != nil {
		t.Errorf("KeySpace with n = 0 = %v, want nil", got)
	}
	if got := tab.KeySpace("a", 1); len(got) != 1 {
		t.Errorf("KeySpace with n = 1 = %v, want one owner", got)
	}
	const n = 4096
	space := tab.KeySpace("a", n)
	share := map[HostID]int{}
	for i, h := range space {
		step := ^uint64(0) / n
		if m, _ := tab.OwnerOfKey("a", uint64(i)*step+step/2); m.ID != h {
			t.Fatalf("point %d: KeySpace says %s, OwnerOfKey says %s", i, h, m.ID)
		}
		share[h]++
	}
	if len(share) != len(ids) {
		t.Fatalf("KeySpace gives %d hosts a share, want %d: %v", len(share), len(ids), share)
	}
	for h, c := range share {
		// Each host's expected share is n/4 = 1024; a binomial standard
		// deviation is about 28, so 850..1200 fails only on a broken hash.
		if c < 850 || c > 1200 {
			t.Errorf("host %s owns %d of %d key-space points, want about %d", h, c, n, n/len(ids))
		}
	}
}
