// Package metrics holds Flashstock's Prometheus collectors. Names start with
// flashstock_, latencies are histograms in seconds, counters end in _total.
// Metrics implements the observer interfaces of actors and orders, so those
// packages do not import Prometheus.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of collectors of one node.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests  *prometheus.CounterVec   // route, code
	HTTPDuration  *prometheus.HistogramVec // route, outcome
	Purchases     *prometheus.CounterVec   // outcome
	ApplyDuration prometheus.Histogram
	BatchSize     prometheus.Histogram
	ApplyErrors   prometheus.Counter
	FlushedOrders *prometheus.CounterVec // shard
	FlushErrors   *prometheus.CounterVec // shard
	FlushDuration prometheus.Histogram
}

// latencyBuckets cover 50 µs to 5 s.
var latencyBuckets = prometheus.ExponentialBucketsRange(0.00005, 5, 18)

// New registers every collector on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flashstock_http_request_duration_seconds", Help: "HTTP request latency by route and outcome.",
			Buckets: latencyBuckets,
		}, []string{"route", "outcome"}),
		Purchases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_purchases_total", Help: "Purchase answers by outcome.",
		}, []string{"outcome"}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flashstock_raft_apply_duration_seconds", Help: "Time to commit and apply one purchase batch.",
			Buckets: latencyBuckets,
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flashstock_raft_batch_size", Help: "Purchases per Raft log entry.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		ApplyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashstock_raft_apply_errors_total", Help: "Purchase batches that failed to apply.",
		}),
		FlushedOrders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_orders_flushed_total", Help: "Orders written to the order store.",
		}, []string{"shard"}),
		FlushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_order_flush_errors_total", Help: "Failed order store flushes.",
		}, []string{"shard"}),
		FlushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flashstock_order_flush_duration_seconds", Help: "Time to write one batch and commit its watermark.",
			Buckets: latencyBuckets,
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.Purchases, m.ApplyDuration, m.BatchSize, m.ApplyErrors,
		m.FlushedOrders, m.FlushErrors, m.FlushDuration,
	)
	return m
}

// GaugeFunc registers a gauge computed at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// CounterFunc registers a counter read at scrape time.
func (m *Metrics) CounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// BatchApplied implements actors.Observer.
func (m *Metrics) BatchApplied(shard, size int, elapsed time.Duration, err error) {
	if err != nil {
		m.ApplyErrors.Inc()
		return
	}
	m.ApplyDuration.Observe(elapsed.Seconds())
	m.BatchSize.Observe(float64(size))
}

// FlushedBatch implements orders.FlushObserver.
func (m *Metrics) FlushedBatch(shard int, n int, elapsed time.Duration) {
	m.FlushedOrders.WithLabelValues(strconv.Itoa(shard)).Add(float64(n))
	m.FlushDuration.Observe(elapsed.Seconds())
}

// FlushFailed implements orders.FlushObserver.
func (m *Metrics) FlushFailed(shard int, err error) {
	m.FlushErrors.WithLabelValues(strconv.Itoa(shard)).Inc()
}
