package telemetry

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/pb"
)

// TestCallsBoundTheirLabels: however many callers send however many
// names, the series stay within the caps, names that were never accepted
// are "other", and every call is counted once.
func TestCallsBoundTheirLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := NewCalls(reg, "test", "calls", "call_duration", "latency")
	if err != nil {
		t.Fatal(err)
	}
	const callers, each = 16, 200
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				typ, method := fmt.Sprintf("t%d", i%(MaxTypes+8)), fmt.Sprintf("m%d-%d", g, i)
				code := int32(0)
				if i%3 == 0 {
					code = int32(pb.ErrorCode_UNKNOWN_METHOD) // never earns a label
				}
				c.Observe(typ, method, code, i%5 != 0, time.Microsecond)
			}
		})
	}
	wg.Wait()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types, methods := map[string]bool{}, map[string]map[string]bool{}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "test_calls_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			types[l["type"]] = true
			if methods[l["type"]] == nil {
				methods[l["type"]] = map[string]bool{}
			}
			methods[l["type"]][l["method"]] = true
			total += m.GetCounter().GetValue()
			if l["outcome"] == "unknown_method" && l["method"] != Other {
				t.Errorf("method %q has a label of its own, but no actor accepted it", l["method"])
			}
		}
	}
	if total != callers*each {
		t.Errorf("counted %v calls, want %d", total, callers*each)
	}
	if len(types) > MaxTypes+1 {
		t.Errorf("%d type labels, want at most %d and other", len(types), MaxTypes)
	}
	for typ, ms := range methods {
		if len(ms) > MaxMethodsPerType+1 {
			t.Errorf("type %s has %d method labels, want at most %d and other", typ, len(ms), MaxMethodsPerType)
		}
		if typ == Other && (len(ms) != 1 || !ms[Other]) {
			t.Errorf("type other has methods %v, want only other", ms)
		}
	}
}

func TestOutcome(t *testing.T) {
	for code, want := range map[int32]string{0: "ok", 9: "busy", 17: "outcome_unknown", 999: "unknown", -1: "unknown"} {
		if got := Outcome(code); got != want {
			t.Errorf("Outcome(%d) = %q, want %q", code, got, want)
		}
	}
}
