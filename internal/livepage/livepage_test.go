package livepage

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/placement"
)

func TestHistory(t *testing.T) {
	s := New(nil, nil, "troupe", "a", slog.New(slog.DiscardHandler))
	members := func(ids ...placement.HostID) []placement.Member {
		var ms []placement.Member
		for _, id := range ids {
			ms = append(ms, placement.Member{ID: id, Types: []placement.ActorType{"t"}})
		}
		return ms
	}
	now := time.Now()
	s.noteChange(placement.NewTable(3, members("a", "b")), now)
	s.noteChange(placement.NewTable(3, members("a", "b")), now) // no change
	s.noteChange(placement.NewTable(5, members("a", "c")), now)
	if len(s.history) != 2 {
		t.Fatalf("history has %d entries, want 2: %+v", len(s.history), s.history)
	}
	if c := s.history[1]; c.Generation != 5 || !slices.Equal(c.Joined, []string{"c"}) || !slices.Equal(c.Left, []string{"b"}) {
		t.Errorf("second change %+v, want c joined and b left at 5", c)
	}
	for g := range uint64(40) {
		s.noteChange(placement.NewTable(10+g, members("a")), now)
	}
	if len(s.history) != historyDepth || s.history[historyDepth-1].Generation != 49 {
		t.Errorf("history keeps %d entries ending at %d, want the last %d", len(s.history), s.history[len(s.history)-1].Generation, historyDepth)
	}
}
