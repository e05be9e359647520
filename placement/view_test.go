package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/protocol"
)

// The table a watcher builds from its view, whose members and ring it keeps
// sorted as records come and go rather than sorting them per table, is the
// table NewTable builds from the same members: same members in the same
// order, same ring. Random joins (of both protocol versions), rejoins,
// drains and departures.
func TestTheWatchersTableIsTheOneNewTableBuilds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 8))
	ids := hostIDs(12)
	w := &Watcher{view: view{members: make(map[HostID]*member), releases: make(map[HostID]*release)}}
	rev := uint64(0)
	for step := range 2000 {
		id := ids[rng.IntN(len(ids))]
		rev++
		e := entry{key: protocol.HostKey(id), rev: rev, op: jetstream.KeyValuePut}
		if rng.IntN(4) == 0 {
			e.op = jetstream.KeyValuePurge
		} else {
			rec := &pb.HostRecord{HostId: string(id), Subject: "s." + string(id), ActorTypes: []string{"a"},
				Incarnation: fmt.Sprint(rng.IntN(3)), Protocol: uint32(1 + rng.IntN(2))}
			if rng.IntN(3) == 0 {
				rec.State = pb.HostState_HOST_STATE_DRAINING
			}
			val, err := proto.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			e.val = val
		}
		if eff, _ := w.view.apply(e); eff != memberEffect {
			continue
		}
		w.publish()
		got := w.Table()
		want := NewTable(got.Generation(), got.Members())
		if !slices.EqualFunc(got.Members(), want.Members(), func(a, b Member) bool { return a.ID == b.ID }) {
			t.Fatalf("step %d: members %v, want %v", step, got.Members(), want.Members())
		}
		ringIDs := func(t *Table) (out []HostID) {
			for _, at := range t.ring() {
				out = append(out, t.members[at].ID)
			}
			return out
		}
		if g, w := ringIDs(got), ringIDs(want); !slices.Equal(g, w) {
			t.Fatalf("step %d: ring %v, want %v", step, g, w)
		}
	}
}
