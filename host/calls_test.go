package host

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-dev/troupe/pb"
)

// A farewell carries the recorded calls of the last minute that the saved
// window dropped, oldest first before the window's own: not read-only
// calls, not records read with the state that were made over a minute ago,
// and none beyond its share of the max payload.
func TestFarewellCarriesTheLastMinutesRecordedCalls(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	lim := windowLimits{calls: 2, age: time.Hour, bytes: 1 << 20}
	rec := func(id string, at time.Time) *callRecord {
		return &callRecord{Id: id, Body: []byte("reply"), UnixMs: at.UnixMilli()}
	}
	w := loadWindow([]*callRecord{rec("old", now.Add(-2*time.Minute)), rec("a", now.Add(-time.Second))}, lim, now)
	for _, id := range []string{"b", "ro", "c"} {
		r, saved := rec(id, now), id != "ro"
		if saved {
			w.add(r, lim, now)
		}
		w.remember(r, saved, now)
	}
	ids := func(calls []byte) []string {
		var as pb.ActorState
		if err := proto.Unmarshal(calls, &as); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range as.Calls {
			out = append(out, r.Id)
		}
		return out
	}
	if got := ids(w.snapshot()); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("saved window %v, want [b c]", got)
	}
	calls, more := w.farewell(0, now)
	if got := ids(calls); !more || !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("farewell %v (more %v), want [a b c]", got, more)
	}
	// A max payload that leaves no room for a: the saved window alone.
	calls, more = w.farewell(int64(farewellShare*recordSize(rec("a", now))-1), now)
	if got := ids(calls); more || !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("farewell with no room %v (more %v), want [b c]", got, more)
	}
	// A minute later nothing is recent enough.
	if _, more := w.farewell(0, now.Add(MemoryWindowAge+time.Second)); more {
		t.Fatal("a farewell a minute later still adds records")
	}
}
