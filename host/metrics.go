package host

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-dev/troupe/internal/telemetry"
	"github.com/troupe-dev/troupe/placement"
)

// The host's Prometheus metrics. Labels are bounded: type is a registered
// actor type, method is a method the actor accepted (capped per type; the
// rest are "other", see telemetry.MaxMethodsPerType), outcome is "ok" or an
// error code in lower case. No label carries an actor id.
//
//	troupe_host_calls_total{type,method,outcome}        calls answered (turns, and calls refused as moved, busy or late)
//	troupe_host_turn_duration_seconds{type,method}      turn time: activation if needed, Receive, state save
//	troupe_host_mailbox_wait_seconds{type}              time from admission to the start of the turn
//	troupe_host_rejected_calls_total{outcome}           requests refused before naming a served actor (bad headers, unknown type, bad id or method)
//	troupe_host_gateway_forwards_total{how}             gateway calls this host followed to another host: direct (the owner answers the caller), relayed (through the host's router), lost (a probe found the owner gone: answered OUTCOME_UNKNOWN; calls with a call id are relayed instead)
//	troupe_host_activations_total{type}                 activations (state loaded, Activate hook ran)
//	troupe_host_deactivations_total{type}               activations ended (idle, moved, shutdown, failed turn)
//	troupe_host_active_actors{type}                     activations now (read at scrape time)
//	troupe_host_mailbox_depth{type}                     calls waiting in the type's mailboxes (scrape time)
//	troupe_host_mailbox_depth_max{type}                 the longest single mailbox of the type (scrape time)
//	troupe_host_call_repeats_total{type}                calls answered from the record of an earlier call with their call id (read at scrape time)
//	troupe_host_ready                                   1 when Ready reports nil (scrape time)
//	troupe_host_info{host,version}                      1
//	troupe_placement_generation                         the host's table generation (scrape time)
//	troupe_placement_hosts                              hosts in the host's table (scrape time)
//	troupe_placement_table_changes_total                table changes the host applied
//	troupe_lease_renewals_total{outcome}                lease renewals, ok or error
//	troupe_lease_renewal_duration_seconds               renewal latency
//	troupe_lease_losses_total                           times the lease was found lost
//	troupe_lease_age_seconds                            time since the send time of the last successful lease write (scrape time)
//	troupe_state_load_duration_seconds{type}            state reads on activation
//	troupe_state_save_duration_seconds{type}            state compare-and-set writes
//	troupe_state_conflicts_total{type}                  saves refused by compare-and-set
//	troupe_reminders_fired_total{type}                  reminder firings this host delivered (type: served here, else other)
//	troupe_timers_fired_total{type}                     timer ticks run in a mailbox
//	troupe_stream_*{type,subscription}                  stream subscriptions: metrics_streams.go
type metrics struct {
	h       *Host
	reg     prometheus.Registerer
	state   *stateCollector
	streams *streamCollector // metrics_streams.go

	calls        *telemetry.Calls
	rejected     *prometheus.CounterVec
	forwards     map[string]prometheus.Counter // by how: forwardDirect, forwardRelayed, forwardLost
	tableChanges prometheus.Counter
	renewals     *prometheus.CounterVec
	renewDur     prometheus.Histogram
	leaseLost    prometheus.Counter

	byType map[string]*prometheus.CounterVec   // counters by type, by metric name
	durs   map[string]*prometheus.HistogramVec // histograms by type, by metric name
	types  map[placement.ActorType]*typeMetrics
}

// typeMetrics are one registered type's children, resolved once.
type typeMetrics struct {
	wait, load, save                                         prometheus.Observer
	activations, deactivations, conflicts, reminders, timers prometheus.Counter
}

var fastBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(h *Host) (*metrics, error) {
	m := &metrics{h: h, reg: h.cfg.Metrics, types: map[placement.ActorType]*typeMetrics{},
		byType: map[string]*prometheus.CounterVec{}, durs: map[string]*prometheus.HistogramVec{}}
	var errs []error
	reg := func(c prometheus.Collector) prometheus.Collector {
		c, err := telemetry.Register(m.reg, c)
		errs = append(errs, err)
		return c
	}
	var err error
	m.calls, err = telemetry.NewCalls(m.reg, "troupe_host",
		"Calls answered by hosts, by actor type, method and outcome (ok or the error code in lower case).",
		"turn_duration", "Turn time at the host: activation if needed, Receive and the state save.")
	errs = append(errs, err)
	m.rejected = reg(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "troupe_host_rejected_calls_total",
		Help: "Requests refused before they named an actor the host serves, by outcome."}, []string{"outcome"})).(*prometheus.CounterVec)
	fwd := reg(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "troupe_host_gateway_forwards_total",
		Help: "Gateway calls the host followed to the actor's owner: direct (the owner answers the caller), relayed (through the host's router), lost (the owner went away with it)."},
		[]string{"how"})).(*prometheus.CounterVec)
	m.forwards = map[string]prometheus.Counter{}
	for _, how := range []string{forwardDirect, forwardRelayed, forwardLost} {
		m.forwards[how] = fwd.WithLabelValues(how)
	}
	m.tableChanges = reg(prometheus.NewCounter(prometheus.CounterOpts{Name: "troupe_placement_table_changes_total",
		Help: "Placement table changes the host applied."})).(prometheus.Counter)
	m.renewals = reg(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "troupe_lease_renewals_total",
		Help: "Lease renewals, by outcome (ok or error)."}, []string{"outcome"})).(*prometheus.CounterVec)
	m.renewDur = reg(prometheus.NewHistogram(prometheus.HistogramOpts{Name: "troupe_lease_renewal_duration_seconds",
		Help: "Latency of lease renewals.", Buckets: telemetry.LatencyBuckets})).(prometheus.Histogram)
	m.leaseLost = reg(prometheus.NewCounter(prometheus.CounterOpts{Name: "troupe_lease_losses_total",
		Help: "Times the host found its lease lost (expired or taken) and joined again."})).(prometheus.Counter)
	for name, help := range map[string]string{
		"troupe_host_activations_total":   "Actor activations, by type.",
		"troupe_host_deactivations_total": "Actor deactivations (idle, moved, shutdown or failed turn), by type.",
		"troupe_state_conflicts_total":    "State saves refused by compare-and-set, by type.",
		"troupe_reminders_fired_total":    "Reminders delivered to actors, by type.",
		"troupe_timers_fired_total":       "Actor timers fired, by type.",
	} {
		m.byType[name] = reg(prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})).(*prometheus.CounterVec)
	}
	for name, opts := range map[string]prometheus.HistogramOpts{
		"troupe_host_mailbox_wait_seconds":   {Help: "Time calls waited in the mailbox before their turn, by type.", Buckets: fastBuckets},
		"troupe_state_load_duration_seconds": {Help: "Latency of state reads on activation, by type.", Buckets: telemetry.LatencyBuckets},
		"troupe_state_save_duration_seconds": {Help: "Latency of state compare-and-set writes, by type.", Buckets: telemetry.LatencyBuckets},
	} {
		opts.Name = name
		m.durs[name] = reg(prometheus.NewHistogramVec(opts, []string{"type"})).(*prometheus.HistogramVec)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("host: metrics: %w", err)
	}
	m.state = newStateCollector(h)
	m.streams = newStreamCollector(h)
	return m, nil
}

func (m *metrics) addType(typ placement.ActorType) {
	t := string(typ)
	m.types[typ] = &typeMetrics{
		wait:          m.durs["troupe_host_mailbox_wait_seconds"].WithLabelValues(t),
		load:          m.durs["troupe_state_load_duration_seconds"].WithLabelValues(t),
		save:          m.durs["troupe_state_save_duration_seconds"].WithLabelValues(t),
		activations:   m.byType["troupe_host_activations_total"].WithLabelValues(t),
		deactivations: m.byType["troupe_host_deactivations_total"].WithLabelValues(t),
		conflicts:     m.byType["troupe_state_conflicts_total"].WithLabelValues(t),
		reminders:     m.byType["troupe_reminders_fired_total"].WithLabelValues(t),
		timers:        m.byType["troupe_timers_fired_total"].WithLabelValues(t),
	}
}

// register registers the collector of the host's state. Unlike the
// counters, it cannot be shared: a registry reports one host.
func (m *metrics) register() error {
	if err := m.reg.Register(m.state); err != nil {
		return fmt.Errorf("host: metrics: %w (a registry reports one host: give each host its own, or wrap it with prometheus.WrapRegistererWith and a host label)", err)
	}
	if err := m.reg.Register(m.streams); err != nil {
		m.reg.Unregister(m.state)
		return fmt.Errorf("host: metrics: %w", err)
	}
	return nil
}

func (m *metrics) unregister() {
	m.reg.Unregister(m.state)
	m.reg.Unregister(m.streams)
}

func (m *metrics) leaseRenewed(took time.Duration, err error) {
	m.renewDur.Observe(took.Seconds())
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.renewals.WithLabelValues(outcome).Inc()
}
