package host

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports the host's state when scraped: nothing on the call
// path keeps these numbers up to date.
type stateCollector struct {
	h                                        *Host
	active, depth, depthMax, repeats         *prometheus.Desc
	ready, info, generation, hosts, leaseAge *prometheus.Desc
}

func newStateCollector(h *Host) *stateCollector {
	typ := []string{"type"}
	return &stateCollector{
		h:          h,
		active:     prometheus.NewDesc("troupe_host_active_actors", "Active actors on the host, by type.", typ, nil),
		depth:      prometheus.NewDesc("troupe_host_mailbox_depth", "Calls waiting in the mailboxes of the type's actors.", typ, nil),
		depthMax:   prometheus.NewDesc("troupe_host_mailbox_depth_max", "Calls waiting in the type's longest mailbox.", typ, nil),
		repeats:    prometheus.NewDesc("troupe_host_call_repeats_total", "Calls answered with the recorded reply of an earlier call with the same call id, without running, by type.", typ, nil),
		ready:      prometheus.NewDesc("troupe_host_ready", "1 when the host is ready (joined, in its own table, lease fresh), else 0.", nil, nil),
		info:       prometheus.NewDesc("troupe_host_info", "The host's id and troupe version; always 1.", []string{"host", "version"}, nil),
		generation: prometheus.NewDesc("troupe_placement_generation", "The generation of the host's placement table.", nil, nil),
		hosts:      prometheus.NewDesc("troupe_placement_hosts", "Hosts in the host's placement table.", nil, nil),
		leaseAge:   prometheus.NewDesc("troupe_lease_age_seconds", "Time since the send time of the host's last successful lease write.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.active, c.depth, c.depthMax, c.repeats, c.ready, c.info, c.generation, c.hosts, c.leaseAge} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	h := c.h
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.info, 1, string(h.cfg.ID), Version)
	ready := 0.0
	if h.Ready() == nil {
		ready = 1
	}
	gauge(c.ready, ready)
	for name, t := range h.types {
		n, depth, deepest := 0, 0, 0
		t.dir.each(func(a *activation) {
			n++
			a.mu.Lock()
			q := len(a.queue) - a.head
			a.mu.Unlock()
			depth += q
			deepest = max(deepest, q)
		})
		gauge(c.active, float64(n), string(name))
		gauge(c.depth, float64(depth), string(name))
		gauge(c.depthMax, float64(deepest), string(name))
		ch <- prometheus.MustNewConstMetric(c.repeats, prometheus.CounterValue, float64(t.counters.repeats.Load()), string(name))
	}
	if !h.joined.Load() {
		return
	}
	t := h.w.Table()
	gauge(c.generation, float64(t.Generation()))
	gauge(c.hosts, float64(len(t.Members())))
	if renewed := h.lease().Renewed(); !renewed.IsZero() {
		gauge(c.leaseAge, time.Since(renewed).Seconds())
	}
}
