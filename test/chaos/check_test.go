package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-dev/troupe/internal/ledger"
)

// report is what a chaos run found.
type report struct {
	Seed        int64          `json:"seed"`
	Faults      map[string]int `json:"faults"`
	Calls       int            `json:"calls"`
	Acked       int64          `json:"acked"`
	Failed      map[string]int `json:"failed_by_code"`
	Available   float64        `json:"acked_fraction"`
	OutageP50   time.Duration  `json:"outage_p50_ns"`
	OutageP99   time.Duration  `json:"outage_p99_ns"`
	OutageMax   time.Duration  `json:"outage_max_ns"`
	Outages     int            `json:"outages"`
	Longest     []string       `json:"longest_outages"`
	MaxOverrun  time.Duration  `json:"max_overrun_ns"`
	LateCalls   int            `json:"late_calls"`
	Activations int            `json:"activations"`
	Overlaps    []string       `json:"overlaps"`
	Lost        []string       `json:"counters_below_acked"`
	Phantom     []string       `json:"counters_above_sent"`
}

// verify checks the run, logs the report, writes it where -chaos.report
// says, and fails the test on what the report found.
func (h *harness) verify(l *load, finals []int64) *report {
	h.t.Helper()
	rep := h.check(l, finals)
	rep.log(h.t)
	if *flagReport != "" {
		rep.write(h.t, *flagReport)
	}
	rep.assert(h.t)
	return rep
}

// check reads the ledgers and compares the counters with what the load saw.
func (h *harness) check(l *load, finals []int64) *report {
	h.t.Helper()
	rep := &report{Seed: h.seed, Faults: h.faults, Failed: l.codes, Calls: l.calls,
		MaxOverrun: l.maxOver, LateCalls: len(l.late), Outages: len(l.outages)}
	var acts []ledger.Activation
	for _, p := range h.runs {
		f, err := os.Open(p.ledger)
		if err != nil {
			h.t.Fatalf("ledger of %s: %v", p.name, err)
		}
		got, err := ledger.Read(f, p.diedAt)
		f.Close()
		if err != nil {
			h.t.Fatalf("ledger of %s: %v", p.name, err)
		}
		acts = append(acts, got...)
	}
	rep.Activations = len(acts)
	for _, o := range ledger.Check(acts) {
		rep.Overlaps = append(rep.Overlaps, o.String())
	}
	for i, final := range finals {
		rep.Acked += l.acked[i]
		switch {
		case final < l.acked[i]:
			rep.Lost = append(rep.Lost, string(actorID(i)))
		case final > l.acked[i]+l.failed[i]:
			rep.Phantom = append(rep.Phantom, string(actorID(i)))
		}
	}
	rep.Available = float64(rep.Acked) / float64(max(rep.Calls, 1))
	if n := len(l.outages); n > 0 {
		o := slices.Clone(l.outages)
		slices.SortFunc(o, func(a, b outage) int { return int(a.length() - b.length()) })
		rep.OutageP50, rep.OutageP99, rep.OutageMax = o[n/2].length(), o[n*99/100].length(), o[n-1].length()
		for _, x := range o[max(0, n-5):] {
			rep.Longest = append(rep.Longest, fmt.Sprintf("%s %s..%s (%v)", actorID(x.actor),
				x.from.Format("15:04:05.000"), x.to.Format("15:04:05.000"), x.length().Round(time.Millisecond)))
		}
	}
	return rep
}

func (r *report) log(t *testing.T) {
	t.Logf("faults %v", r.Faults)
	t.Logf("calls %d, acknowledged %d (%.2f%%), failed by code %v", r.Calls, r.Acked, 100*r.Available, r.Failed)
	t.Logf("per-counter outages (first failure after a success until the next success): %d, p50 %v, p99 %v, max %v",
		r.Outages, r.OutageP50.Round(time.Millisecond), r.OutageP99.Round(time.Millisecond), r.OutageMax.Round(time.Millisecond))
	t.Logf("longest outages: %v", r.Longest)
	t.Logf("latest end past a deadline %v; calls later than %v: %d", r.MaxOverrun.Round(time.Millisecond), deadlineMargin, r.LateCalls)
	t.Logf("activations %d, overlapping pairs %d, counters below acknowledged %d, above sent %d",
		r.Activations, len(r.Overlaps), len(r.Lost), len(r.Phantom))
}

func (r *report) write(t *testing.T, path string) {
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Error(err)
	}
}

func (r *report) assert(t *testing.T) {
	for _, o := range r.Overlaps {
		t.Errorf("overlapping activations: %s", o)
	}
	if len(r.Lost) > 0 {
		t.Errorf("acknowledged increments lost on %d counters: %v", len(r.Lost), r.Lost)
	}
	if len(r.Phantom) > 0 {
		t.Errorf("increments never sent applied on %d counters: %v", len(r.Phantom), r.Phantom)
	}
	for code, n := range r.Failed {
		if strings.HasPrefix(code, "untyped") {
			t.Errorf("%d calls failed without a typed error: %s", n, code)
		}
	}
	if r.LateCalls > 0 {
		t.Errorf("%d calls ended more than %v past their deadline (latest %v)", r.LateCalls, deadlineMargin, r.MaxOverrun)
	}
	if r.Activations == 0 || r.Acked == 0 {
		t.Errorf("the run activated %d actors and acknowledged %d calls: it tested nothing", r.Activations, r.Acked)
	}
}
