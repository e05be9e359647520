package telemetry

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/pb"
)

// LatencyBuckets are the buckets of every call and turn latency histogram,
// in seconds: 100 µs to 10 s, about 2.5× apart.
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// outcomes are the values of the outcome label, indexed by error code; 0 is
// success.
var outcomes = func() []string {
	n := int32(0)
	for c := range pb.ErrorCode_name {
		n = max(n, c)
	}
	o := make([]string, n+2) // the last one is for codes this build does not know
	for c, name := range pb.ErrorCode_name {
		o[c] = strings.ToLower(name)
	}
	o[0], o[n+1] = "ok", "unknown"
	return o
}()

// Outcome is the outcome label of an error code (0: "ok").
func Outcome(code int32) string { return outcomes[outcomeIndex(code)] }

func outcomeIndex(code int32) int {
	if code < 0 || int(code) >= len(outcomes)-1 {
		return len(outcomes) - 1
	}
	return int(code)
}

// MethodAccepted reports whether a call that ended with code shows that the
// actor has the method: it succeeded, or the actor itself refused it. Only
// such methods get a label of their own.
func MethodAccepted(code int32) bool {
	switch pb.ErrorCode(code) {
	case 0, pb.ErrorCode_APPLICATION, pb.ErrorCode_INVALID_ARGUMENT:
		return true
	}
	return false
}

// Calls counts calls by actor type, method and outcome, and observes their
// latency by type and method. Label values are bounded (see names), and the
// children for each (type, method) are cached, so recording a call takes no
// lock once its labels are known. Safe for concurrent use.
type Calls struct {
	total  *prometheus.CounterVec
	dur    *prometheus.HistogramVec
	types  names
	byType sync.Map // type label → *typeCalls
}

type typeCalls struct {
	label    string
	methods  names
	byMethod sync.Map // method label → *methodCalls
}

type methodCalls struct {
	typ     string
	method  string
	dur     prometheus.Observer
	outcome []atomic.Pointer[counter]
}

type counter struct{ prometheus.Counter }

// NewCalls registers <prefix>_calls_total{type,method,outcome} and
// <prefix>_<durName>_seconds{type,method} with reg.
func NewCalls(reg prometheus.Registerer, prefix, callsHelp, durName, durHelp string) (*Calls, error) {
	total, err := Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: prefix + "_calls_total", Help: callsHelp,
	}, []string{"type", "method", "outcome"}))
	if err != nil {
		return nil, err
	}
	dur, err := Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: prefix + "_" + durName + "_seconds", Help: durHelp, Buckets: LatencyBuckets,
	}, []string{"type", "method"}))
	if err != nil {
		return nil, err
	}
	return &Calls{total: total, dur: dur, types: names{max: MaxTypes}}, nil
}

// Observe records one call of method on typ that ended with code after d.
// typeOK says whether typ may get a label of its own (a host served it).
func (c *Calls) Observe(typ, method string, code int32, typeOK bool, d time.Duration) {
	m := c.typ(typ, typeOK).method(c, method, MethodAccepted(code))
	m.dur.Observe(d.Seconds())
	m.count(c, code).Inc()
}

// TypeLabel is the type label for typ, as Observe would choose it.
func (c *Calls) TypeLabel(typ string, typeOK bool) string { return c.typ(typ, typeOK).label }

func (c *Calls) typ(typ string, accept bool) *typeCalls {
	if v, ok := c.byType.Load(typ); ok {
		return v.(*typeCalls)
	}
	label, _ := c.types.lookup(typ, accept)
	v, _ := c.byType.LoadOrStore(label, &typeCalls{label: label, methods: names{max: MaxMethodsPerType}})
	return v.(*typeCalls)
}

func (t *typeCalls) method(c *Calls, method string, accept bool) *methodCalls {
	if v, ok := t.byMethod.Load(method); ok {
		return v.(*methodCalls)
	}
	label := Other
	if t.label != Other {
		label, _ = t.methods.lookup(method, accept)
	}
	v, ok := t.byMethod.Load(label)
	if !ok {
		m := &methodCalls{typ: t.label, method: label, dur: c.dur.WithLabelValues(t.label, label), outcome: make([]atomic.Pointer[counter], len(outcomes))}
		v, _ = t.byMethod.LoadOrStore(label, m)
	}
	return v.(*methodCalls)
}

func (m *methodCalls) count(c *Calls, code int32) prometheus.Counter {
	i := outcomeIndex(code)
	if p := m.outcome[i].Load(); p != nil {
		return p.Counter
	}
	p := &counter{c.total.WithLabelValues(m.typ, m.method, outcomes[i])}
	m.outcome[i].CompareAndSwap(nil, p)
	return m.outcome[i].Load().Counter
}
