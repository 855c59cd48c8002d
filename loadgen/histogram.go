package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, in the manner of HdrHistogram: values below
// histSubCount are counted exactly, and every power-of-two range above that is
// split into histHalf equal-width buckets. A bucket is at most 1/histHalf of
// its lower bound wide, so a reported percentile exceeds the true sample by at
// most 1/128 (0.79%). Memory is fixed: histBuckets counters, about 29 KiB.
const (
	histSubBits  = 8
	histSubCount = 1 << histSubBits // values 0..255 µs get one bucket each
	histHalf     = histSubCount / 2 // buckets per power of two above that
	histMaxBits  = 35               // largest tracked value is 2^35-1 µs, about 9.5 hours
	histBuckets  = histSubCount + (histMaxBits-histSubBits)*histHalf

	// HistogramMaxValue is the largest value a Histogram tracks, in
	// microseconds; larger values are clamped to it.
	HistogramMaxValue = 1<<histMaxBits - 1
)

// Histogram counts latencies with microsecond resolution in bounded memory.
// Its zero value is not usable; call NewHistogram. It is not safe for
// concurrent use: callers serialise access.
type Histogram struct {
	counts []uint64
	count  uint64
	sum    uint64
	min    uint64
	max    uint64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, histBuckets), min: math.MaxUint64}
}

// Record adds one duration, truncated to whole microseconds. Negative
// durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.RecordValue(uint64(us))
}

// RecordValue adds one value in microseconds.
func (h *Histogram) RecordValue(v uint64) {
	if v > HistogramMaxValue {
		v = HistogramMaxValue
	}
	h.counts[histIndex(v)]++
	h.count++
	h.sum += v
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every sample of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.count == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties the histogram, keeping its memory.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.count, h.sum, h.min, h.max = 0, 0, math.MaxUint64, 0
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Min returns the smallest recorded value in microseconds, or 0 if empty.
func (h *Histogram) Min() uint64 {
	if h.count == 0 {
		return 0
	}
	return h.min
}

// Max returns the largest recorded value in microseconds (exact).
func (h *Histogram) Max() uint64 { return h.max }

// Mean returns the mean of the recorded values in microseconds.
func (h *Histogram) Mean() float64 {
	if h.count == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.count)
}

// Quantile returns the value at quantile q (0 <= q <= 1) in microseconds: the
// upper bound of the bucket holding the ceil(q*count)-th smallest sample,
// clamped to the observed minimum and maximum. So the result is never below
// the true sample and exceeds it by at most 1/128 of it. An empty histogram
// returns 0.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.count == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return max(min(histHigh(i), h.max), h.min)
		}
	}
	return h.max
}

// histIndex returns the bucket of value v (v <= HistogramMaxValue).
func histIndex(v uint64) int {
	if v < histSubCount {
		return int(v)
	}
	msb := bits.Len64(v) - 1 // histSubBits <= msb < histMaxBits
	shift := msb - (histSubBits - 1)
	return histSubCount + (msb-histSubBits)*histHalf + int(v>>shift) - histHalf
}

// histLow returns the smallest value that falls in bucket i.
func histLow(i int) uint64 {
	if i < histSubCount {
		return uint64(i)
	}
	g := (i - histSubCount) / histHalf
	off := (i - histSubCount) % histHalf
	return uint64(histHalf+off) << (g + 1)
}

// histHigh returns the largest value that falls in bucket i.
func histHigh(i int) uint64 {
	if i < histSubCount {
		return uint64(i)
	}
	g := (i - histSubCount) / histHalf
	return histLow(i) + 1<<(g+1) - 1
}

// LatencySummary is the digest of a histogram reported at the end of a run.
// All values are microseconds.
type LatencySummary struct {
	Count  uint64  `json:"count"`
	MeanUs float64 `json:"mean_us"`
	P50Us  uint64  `json:"p50_us"`
	P90Us  uint64  `json:"p90_us"`
	P99Us  uint64  `json:"p99_us"`
	P999Us uint64  `json:"p99_9_us"`
	MaxUs  uint64  `json:"max_us"`
}

// Summary digests h.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Count:  h.count,
		MeanUs: math.Round(h.Mean()*10) / 10,
		P50Us:  h.Quantile(0.50),
		P90Us:  h.Quantile(0.90),
		P99Us:  h.Quantile(0.99),
		P999Us: h.Quantile(0.999),
		MaxUs:  h.Max(),
	}
}
