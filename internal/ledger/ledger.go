// Package ledger records the activations hosts run and checks that no two
// activations of one actor overlapped in time: the audit behind troupe's
// single-activation guarantee. A host appends one line when an activation
// starts and one when it ends (host.Config.OnActivation), and one each time
// its lease fence moves (host.Config.OnLeaseValid). The checker pairs the
// activation lines; an activation ends at its end line, or when its process
// was killed, and in any case no later than the last fence its host's
// incarnation reported, since the host runs no turn past it. Then it reports
// every overlap.
//
// Times are wall-clock nanoseconds: every host of a ledger must share one
// clock, as processes on one machine do.
package ledger

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/troupe-dev/troupe/host"
)

// Entry is one line of a ledger: an activation's start (End 0) or end.
type Entry struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	Host        string `json:"host"`
	Incarnation string `json:"inc"`
	Generation  uint64 `json:"gen"`
	Start       int64  `json:"start,omitempty"` // unix nanoseconds
	End         int64  `json:"end,omitempty"`   // unix nanoseconds; 0 on the start line
	// ValidUntil, on a fence line (no type, id or start), is the host
	// incarnation's new fence, in unix nanoseconds.
	ValidUntil int64 `json:"valid_until,omitempty"`
}

// Writer appends entries to a file, one write per line so that a process
// killed at any moment leaves every line it reported whole.
type Writer struct {
	mu sync.Mutex
	f  *os.File
}

// Create opens path for appending.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Writer{f: f}, nil
}

// Record appends r; use it as host.Config.OnActivation.
func (w *Writer) Record(r host.ActivationRecord) { w.write(entryOf(r)) }

// Fence appends r; use it as host.Config.OnLeaseValid.
func (w *Writer) Fence(r host.LeaseRecord) { w.write(fenceOf(r)) }

func (w *Writer) write(e Entry) {
	line, _ := json.Marshal(e)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.f.Write(append(line, '\n'))
}

func entryOf(r host.ActivationRecord) Entry {
	e := Entry{
		Type: string(r.Type), ID: string(r.ID), Host: string(r.Host), Incarnation: r.Incarnation,
		Generation: r.Generation, Start: r.Start.UnixNano(),
	}
	if !r.End.IsZero() {
		e.End = r.End.UnixNano()
	}
	return e
}

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }

// Activation is one activation's interval.
type Activation struct {
	Entry
	Open bool // no end line: the process died, or the ledger ended first
}

// Read parses a ledger file and pairs start and end lines. An activation
// with no end line ends at diedAt (unix nanoseconds) when the process was
// killed, and never (math.MaxInt64) otherwise.
func Read(r io.Reader, diedAt int64) ([]Activation, error) {
	var entries []Entry
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("ledger line %d: %w", n, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return pair(entries, diedAt), nil
}

// pair matches start and end entries, as Read describes.
func pair(entries []Entry, diedAt int64) []Activation {
	type key struct {
		host, inc, typ, id string
		start              int64
	}
	type incarnation struct{ host, inc string }
	fence := make(map[incarnation]int64)
	byKey := make(map[key]*Activation)
	var order []key
	for _, e := range entries {
		if e.ValidUntil != 0 {
			k := incarnation{e.Host, e.Incarnation}
			fence[k] = max(fence[k], e.ValidUntil)
			continue
		}
		k := key{e.Host, e.Incarnation, e.Type, e.ID, e.Start}
		a, ok := byKey[k]
		if !ok {
			a = &Activation{Entry: e, Open: true}
			byKey[k] = a
			order = append(order, k)
		}
		if e.End != 0 {
			a.End, a.Open = e.End, false
		}
	}
	out := make([]Activation, 0, len(order))
	for _, k := range order {
		a := *byKey[k]
		if a.Open {
			a.End = math.MaxInt64
			if diedAt != 0 {
				a.End = diedAt
			}
		}
		if f, ok := fence[incarnation{a.Host, a.Incarnation}]; ok && f < a.End {
			a.End = f
		}
		out = append(out, a)
	}
	return out
}

func fenceOf(r host.LeaseRecord) Entry {
	return Entry{Host: string(r.Host), Incarnation: r.Incarnation, ValidUntil: r.ValidUntil.UnixNano()}
}

// Collector keeps a ledger in memory, for hosts running in one process.
type Collector struct {
	mu      sync.Mutex
	entries []Entry
}

// Record adds r; use it as host.Config.OnActivation.
func (c *Collector) Record(r host.ActivationRecord) {
	e := entryOf(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, e)
}

// Fence adds r; use it as host.Config.OnLeaseValid.
func (c *Collector) Fence(r host.LeaseRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, fenceOf(r))
}

// Activations pairs what was recorded, as Read does for a live process.
func (c *Collector) Activations() []Activation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return pair(c.entries, 0)
}

// Overlap is two activations of one actor that ran at the same time.
type Overlap struct {
	A, B Activation
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s %q on %s/%s (gen %d, %s..%s) overlaps %s/%s (gen %d, %s..%s) by %v",
		o.A.Type, o.A.ID, o.A.Host, o.A.Incarnation, o.A.Generation, stamp(o.A.Start), stamp(o.A.End),
		o.B.Host, o.B.Incarnation, o.B.Generation, stamp(o.B.Start), stamp(o.B.End),
		time.Duration(min(o.A.End, o.B.End)-o.B.Start))
}

func stamp(ns int64) string {
	if ns == math.MaxInt64 {
		return "open"
	}
	return time.Unix(0, ns).UTC().Format("15:04:05.000000")
}

// Check returns every pair of activations of the same actor whose intervals
// intersect. An interval includes its start and excludes its end: an
// activation may start at the instant another ended.
func Check(acts []Activation) []Overlap {
	type actor struct{ typ, id string }
	by := make(map[actor][]Activation)
	for _, a := range acts {
		k := actor{a.Type, a.ID}
		by[k] = append(by[k], a)
	}
	var out []Overlap
	for _, list := range by {
		sort.Slice(list, func(i, j int) bool { return list[i].Start < list[j].Start })
		for i := range list {
			for j := i + 1; j < len(list) && list[j].Start < list[i].End; j++ {
				out = append(out, Overlap{A: list[i], B: list[j]})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].B.Start < out[j].B.Start })
	return out
}
