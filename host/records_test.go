package host

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/internal/natstest"
	"github.com/troupe-dev/troupe/pb"
	"github.com/troupe-dev/troupe/placement"
)

// A join takes actors from every host of its types, and costs no release
// record when the settled record follows the hosts' notices: the collectors
// count a notice as the record. A host writes its record only when the
// settled record has not covered its release within recordAfter, here
// because another host's running turn holds up that host's release.
func TestReleaseRecordsOnlyWhenTheSettledRecordIsLate(t *testing.T) {
	s := natstest.Server(t)
	seen := make(chan turnSeen, 16)
	unblock := make(chan struct{})
	register := registerRec(seen, unblock)
	// Long enough for the settled record to come first on a loaded machine.
	const after = 3 * time.Second
	a := startOn(t, s, Config{ID: "a", recordAfter: after}, register)
	b := startOn(t, s, Config{ID: "b", recordAfter: after}, register)
	waitTable(t, a, 2)
	waitTable(t, b, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// recorded is the generation of id's release record, 0 for none.
	recorded := func(id placement.HostID) uint64 {
		t.Helper()
		e, err := a.members.Get(ctx, placement.ReleaseKey(id))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0
		}
		rec := new(pb.ReleaseRecord)
		if err == nil {
			err = proto.Unmarshal(e.Value(), rec)
		}
		if err != nil {
			t.Fatal(err)
		}
		return rec.GetGeneration()
	}
	settledRecord := func(gen uint64) {
		t.Helper()
		for a.w.SettledRecord() < gen {
			select {
			case <-a.w.Changed():
			case <-ctx.Done():
				t.Fatalf("the settled record never reached generation %d", gen)
			}
		}
	}

	startOn(t, s, Config{ID: "c", recordAfter: after}, register)
	waitTable(t, a, 3)
	join := a.w.Table().Generation()
	settledRecord(join)
	for _, h := range []*Host{a, b} { // the settled record covers their releases: no record will follow
		for h.recorded.Load() < join {
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("%s does not count its release at %d as recorded by the settled record", h.ID(), join)
			}
		}
	}
	if ra, rb := recorded("a"), recorded("b"); ra >= join || rb >= join {
		t.Fatalf("release records at generations %d and %d after a join at %d the settled record covered", ra, rb, join)
	}

	// An actor of b's that d's join moves to d, held up in a turn.
	now := a.w.Table()
	then := placement.NewTable(0, append(slices.Clone(now.Members()), placement.Member{ID: "d", Types: []placement.ActorType{"rec"}}))
	var actor placement.ActorID
	for i := 0; actor == ""; i++ {
		id := placement.ActorID("y" + strconv.Itoa(i))
		from, _ := now.Owner("rec", id)
		to, _ := then.Owner("rec", id)
		if from.ID == "b" && to.ID == "d" {
			actor = id
		}
	}
	called := make(chan error, 1)
	go func() {
		_, err := a.Router().Call(ctx, "rec", actor, "block", nil)
		called <- err
	}()
	for turn := range seen {
		if turn.method == "block" {
			break
		}
	}
	startOn(t, s, Config{ID: "d", recordAfter: after}, register)
	waitTable(t, a, 4)
	next := a.w.Table().Generation()
	for recorded("a") < next {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("a wrote no release record while b's turn held the settled record back")
		}
	}
	if got := a.w.SettledRecord(); got >= next {
		t.Fatalf("settled at %d while b still runs a turn of an actor it lost at %d", got, next)
	}
	close(unblock)
	if err := <-called; err != nil {
		t.Fatal(err)
	}
	settledRecord(next)
}
