// Package metrics holds Flashstock's Prometheus collectors. Names start with
// flashstock_, latencies are histograms in seconds, counters end in _total.
// Metrics implements the observer interfaces of actors and orders, so those
// packages do not import Prometheus.
package metrics

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of collectors of one node.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests  *prometheus.CounterVec   // route, code
	HTTPDuration  *prometheus.HistogramVec // route, outcome
	AuthFailures  prometheus.Counter
	Purchases     *prometheus.CounterVec // outcome
	ApplyDuration prometheus.Histogram
	BatchSize     prometheus.Histogram
	ApplyErrors   prometheus.Counter
	FlushedOrders *prometheus.CounterVec // shard
	FlushErrors   *prometheus.CounterVec // shard
	FlushDuration prometheus.Histogram
	BreakerState  *prometheus.GaugeVec   // peer: 0 closed, 1 half open, 2 open
	BreakerMoves  *prometheus.CounterVec // to: changes of state
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
		AuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flashstock_http_auth_failures_total", Help: "Requests refused for a missing or invalid shopper or admin credential.",
		}),
		Purchases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_purchases_total", Help: "Purchase answers by outcome.",
		}, []string{"outcome"}),
		ApplyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flashstock_raft_apply_duration_seconds", Help: "Time to commit and apply one purchase batch.",
			Buckets: latencyBuckets,
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flashstock_raft_batch_size", Help: "Purchases per item actor batch (the shard's batcher packs several into one Raft entry; see flashstock_raft_entry_purchases_total).",
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
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flashstock_breaker_state", Help: "Circuit breaker of calls to a peer's actors: 0 closed, 1 half open, 2 open.",
		}, []string{"peer"}),
		BreakerMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flashstock_breaker_changes_total", Help: "Circuit breaker changes of state, by the state entered.",
		}, []string{"to"}),
	}
	for _, st := range []string{"closed", "open", "half_open"} {
		m.BreakerMoves.WithLabelValues(st) // present from the start, at 0
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPRequests, m.HTTPDuration, m.AuthFailures, m.Purchases, m.ApplyDuration, m.BatchSize, m.ApplyErrors,
		m.FlushedOrders, m.FlushErrors, m.FlushDuration, m.BreakerState, m.BreakerMoves,
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

// InitShards creates the per-shard series at 0, so that dashboards and
// alerts see 0 rather than no data before the first flush or error.
func (m *Metrics) InitShards(shards int) {
	for i := range shards {
		m.FlushedOrders.WithLabelValues(strconv.Itoa(i))
		m.FlushErrors.WithLabelValues(strconv.Itoa(i))
	}
}

// BreakerChanged implements actors.Observer.
func (m *Metrics) BreakerChanged(peer, state string) {
	v := map[string]float64{"closed": 0, "half_open": 1, "open": 2}[state]
	m.BreakerState.WithLabelValues(peer).Set(v)
	m.BreakerMoves.WithLabelValues(state).Inc()
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

// SetBuildInfo exports flashstock_build_info{version, role, goversion} 1,
// so that a dashboard can tell which version each node runs (an upgrade in
// progress shows two).
func (m *Metrics) SetBuildInfo(version, role string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "flashstock_build_info", Help: "1, labelled with this node's version, role and Go version.",
	}, []string{"version", "role", "goversion"})
	g.WithLabelValues(version, role, runtime.Version()).Set(1)
	m.Registry.MustRegister(g)
}

// ExportRaftMetrics sends the go-metrics that hashicorp/raft emits (commit
// time, leader last contact, FSM apply, snapshot and replication timings:
// raft_* series, all shard groups of the process together) to the registry
// through go-metrics' Prometheus sink. go-metrics keeps one global sink, so
// this is per process: cmd/node calls it once; in-process test clusters do
// not.
func (m *Metrics) ExportRaftMetrics() error {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: m.Registry, Expiration: 5 * time.Minute})
	if err != nil {
		return fmt.Errorf("metrics: raft sink: %w", err)
	}
	cfg := gometrics.DefaultConfig("")
	cfg.EnableHostname, cfg.EnableHostnameLabel, cfg.EnableRuntimeMetrics = false, false, false
	if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
		return fmt.Errorf("metrics: raft sink: %w", err)
	}
	return nil
}
