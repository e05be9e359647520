// Package promtest reads Prometheus metrics in tests: from a registry or by
// scraping a /metrics endpoint.
package promtest

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape fetches and parses the text exposition at url.
func Scrape(url string) ([]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	mfs := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		mfs = append(mfs, mf)
	}
	return mfs, nil
}

// Value sums the samples (counter, gauge, or histogram count) of the series
// of name whose labels include labels ("k=v,k=v"; "" matches all).
func Value(mfs []*dto.MetricFamily, name, labels string) float64 {
	total := 0.0
	each(mfs, name, labels, func(m *dto.Metric) {
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	})
	return total
}

// Series counts the series of name whose labels include labels.
func Series(mfs []*dto.MetricFamily, name, labels string) int {
	n := 0
	each(mfs, name, labels, func(*dto.Metric) { n++ })
	return n
}

// LabelsWithValue returns "metric label=value" for every label whose
// value is one of values.
func LabelsWithValue(mfs []*dto.MetricFamily, values []string) []string {
	var found []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if slices.Contains(values, l.GetValue()) {
					found = append(found, fmt.Sprintf("%s %s=%q", mf.GetName(), l.GetName(), l.GetValue()))
				}
			}
		}
	}
	return found
}

func each(mfs []*dto.MetricFamily, name, labels string, f func(*dto.Metric)) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				f(m)
			}
		}
	}
}

func hasLabels(m *dto.Metric, labels string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for _, kv := range strings.Split(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && have[k] != v {
			return false
		}
	}
	return true
}
