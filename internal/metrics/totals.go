package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Totals are running totals read back from the collectors, for the admin
// console: it samples them once in a while instead of counting on the
// request path.
type Totals struct {
	TooMany     float64 // HTTP answers 429, every route
	Unavailable float64 // HTTP answers 503, every route
	FlushErrors float64 // failed order store flushes, every shard
}

// Totals returns the running totals. It reads every child of the
// collectors involved: call it about once a second, not per request.
func (m *Metrics) Totals() Totals {
	var t Totals
	collect(m.HTTPRequests, func(labels []*dto.LabelPair, v float64) {
		for _, l := range labels {
			if l.GetName() != "code" {
				continue
			}
			switch l.GetValue() {
			case "429":
				t.TooMany += v
			case "503":
				t.Unavailable += v
			}
		}
	})
	collect(m.FlushErrors, func(_ []*dto.LabelPair, v float64) { t.FlushErrors += v })
	return t
}

// collect calls f with the labels and value of every counter of c.
func collect(c prometheus.Collector, f func([]*dto.LabelPair, float64)) {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil && d.GetCounter() != nil {
			f(d.GetLabel(), d.GetCounter().GetValue())
		}
	}
}
