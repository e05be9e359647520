package host

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// streamCollector reports the stream subscriptions this host has pulled,
// read at scrape time from their counts (puller.go):
//
//	troupe_stream_pending{type,subscription}           messages not yet delivered by the consumer (lag; read by the puller every second)
//	troupe_stream_ack_pending{type,subscription}       messages delivered and not yet acknowledged
//	troupe_stream_in_flight{type,subscription}         messages this host holds for delivery
//	troupe_stream_applied_total{type,subscription}     messages acknowledged after the actor had them (applied now, or covered by its cursor)
//	troupe_stream_terminated_total{type,subscription}  messages given up: no valid actor id, or MaxAttempts failed turns
//	troupe_stream_pulling{type,subscription}           1 while this host pulls the subscription
type streamCollector struct {
	h                                                     *Host
	pending, ackPending, inFlight, applied, term, pulling *prometheus.Desc
}

func newStreamCollector(h *Host) *streamCollector {
	l := []string{"type", "subscription"}
	return &streamCollector{
		h:          h,
		pending:    prometheus.NewDesc("troupe_stream_pending", "Stream messages the subscription's consumer has not delivered yet (lag).", l, nil),
		ackPending: prometheus.NewDesc("troupe_stream_ack_pending", "Stream messages delivered and not yet acknowledged.", l, nil),
		inFlight:   prometheus.NewDesc("troupe_stream_in_flight", "Stream messages this host holds for delivery to actors.", l, nil),
		applied:    prometheus.NewDesc("troupe_stream_applied_total", "Stream messages acknowledged after their actor had them.", l, nil),
		term:       prometheus.NewDesc("troupe_stream_terminated_total", "Stream messages given up: no valid actor, or too many failed turns.", l, nil),
		pulling:    prometheus.NewDesc("troupe_stream_pulling", "1 while this host pulls the subscription.", l, nil),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.ackPending, c.inFlight, c.applied, c.term, c.pulling} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	c.h.subsMu.Lock()
	defer c.h.subsMu.Unlock()
	for k, st := range c.h.subs {
		typ, name, _ := strings.Cut(k, "/")
		m := func(d *prometheus.Desc, kind prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(d, kind, v, typ, name)
		}
		pulling := 0.0
		if st.pulling.Load() {
			pulling = 1
		}
		m(c.pulling, prometheus.GaugeValue, pulling)
		m(c.pending, prometheus.GaugeValue, float64(st.pending.Load()))
		m(c.ackPending, prometheus.GaugeValue, float64(st.ackPending.Load()))
		m(c.inFlight, prometheus.GaugeValue, float64(st.inFlight.Load()))
		m(c.applied, prometheus.CounterValue, float64(st.applied.Load()))
		m(c.term, prometheus.CounterValue, float64(st.terminated.Load()))
	}
}
