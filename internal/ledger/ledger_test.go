package ledger

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/host"
	"github.com/troupe-dev/troupe/placement"
)

func rec(hostID, id string, start, end int64) host.ActivationRecord {
	r := host.ActivationRecord{Type: "counter", ID: placement.ActorID("c" + id), Host: placement.HostID("h" + hostID), Incarnation: "i" + hostID, Start: time.Unix(0, start)}
	if end != 0 {
		r.End = time.Unix(0, end)
	}
	return r
}

// write records rs in a ledger file and reads it back as a process that
// died at diedAt.
func write(t *testing.T, diedAt int64, rs ...any) []Activation {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		switch r := r.(type) {
		case host.ActivationRecord:
			w.Record(r)
		case host.LeaseRecord:
			w.Fence(r)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	acts, err := Read(f, diedAt)
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

func TestCheckFindsOverlappingActivations(t *testing.T) {
	a := write(t, 0, rec("1", "1", 100, 0), rec("1", "1", 100, 200))
	b := write(t, 0, rec("2", "1", 150, 0), rec("2", "1", 150, 300))
	overlaps := Check(append(a, b...))
	if len(overlaps) != 1 {
		t.Fatalf("Check found %d overlaps, want 1: %v", len(overlaps), overlaps)
	}
	if s := overlaps[0].String(); !strings.Contains(s, `"c1" on h1`) || !strings.Contains(s, "by 50ns") {
		t.Fatalf("overlap reads %q", s)
	}
}

func TestCheckClosesAKilledProcessAtItsDeath(t *testing.T) {
	// h1 was killed at 180 with c1 active: an activation on h2 from 150 on
	// overlaps; one from 180 on does not.
	killed := write(t, 180, rec("1", "1", 100, 0))
	early := write(t, 0, rec("2", "1", 150, 0), rec("2", "1", 150, 400))
	if n := len(Check(append(killed, early...))); n != 1 {
		t.Fatalf("found %d overlaps with an activation of a killed host, want 1", n)
	}
	late := write(t, 0, rec("2", "1", 180, 0), rec("2", "1", 180, 400))
	if o := Check(append(killed, late...)); len(o) != 0 {
		t.Fatalf("an activation starting at the kill overlaps: %v", o)
	}
}

func TestCheckTreatsAnOpenActivationOfALiveProcessAsNeverEnding(t *testing.T) {
	open := write(t, 0, rec("1", "1", 100, 0))
	later := write(t, 0, rec("2", "1", 1e12, 0), rec("2", "1", 1e12, 2e12))
	if n := len(Check(append(open, later...))); n != 1 {
		t.Fatalf("found %d overlaps, want 1", n)
	}
}

func TestCheckAcceptsSequentialActivationsAndOtherActors(t *testing.T) {
	acts := write(t, 0,
		rec("1", "1", 100, 0), rec("1", "1", 100, 200),
		rec("2", "1", 200, 0), rec("2", "1", 200, 300),
		rec("1", "1", 300, 0), rec("1", "1", 300, 400),
		rec("1", "2", 100, 0), rec("1", "2", 100, 400),
		rec("2", "3", 150, 0), rec("2", "3", 150, 350),
	)
	if o := Check(acts); len(o) != 0 {
		t.Fatalf("sequential activations reported as overlapping: %v", o)
	}
}

func TestAFenceEndsTheActivationsOfItsIncarnation(t *testing.T) {
	// h1 reported its fence at 150 and was killed at 400 with c1 still
	// active: it ran no turn after 150, so h2 activating c1 at 200 is fine,
	// and at 120 it is not.
	fenced := func(diedAt int64) []Activation {
		return write(t, diedAt, rec("1", "1", 100, 0),
			host.LeaseRecord{Host: "h1", Incarnation: "i1", ValidUntil: time.Unix(0, 150)})
	}
	if o := Check(append(fenced(400), write(t, 0, rec("2", "1", 200, 0), rec("2", "1", 200, 300))...)); len(o) != 0 {
		t.Fatalf("an activation after the fence overlaps: %v", o)
	}
	if n := len(Check(append(fenced(400), write(t, 0, rec("2", "1", 120, 0), rec("2", "1", 120, 300))...))); n != 1 {
		t.Fatalf("found %d overlaps with an activation before the fence, want 1", n)
	}
	// A fence of another incarnation of the same host bounds nothing.
	other := write(t, 400, rec("1", "1", 100, 0),
		host.LeaseRecord{Host: "h1", Incarnation: "other", ValidUntil: time.Unix(0, 150)})
	if n := len(Check(append(other, write(t, 0, rec("2", "1", 200, 0), rec("2", "1", 200, 300))...))); n != 1 {
		t.Fatalf("found %d overlaps past another incarnation's fence, want 1", n)
	}
}
