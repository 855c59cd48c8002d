package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the reference: the ceil(q*n)-th smallest sample.
func exactQuantile(sorted []uint64, q float64) uint64 {
	if q <= 0 {
		return sorted[0]
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func(i int) uint64
		n    int
	}{
		{"single", func(int) uint64 { return 4200 }, 1},
		{"constant", func(int) uint64 { return 777 }, 1000},
		{"exact range 0..255", func(i int) uint64 { return uint64(i % 256) }, 5000},
		{"uniform 0..10ms", func(int) uint64 { return rng.Uint64N(10_000) }, 20_000},
		{"exponential mean 2ms", func(int) uint64 { return uint64(rng.ExpFloat64() * 2000) }, 20_000},
		{"lognormal tail", func(int) uint64 { return uint64(math.Exp(rng.NormFloat64()*1.5 + 7)) }, 20_000},
		{"bimodal 1ms and 1s", func(i int) uint64 {
			if i%100 == 0 {
				return 1_000_000 + rng.Uint64N(50_000)
			}
			return 1000 + rng.Uint64N(100)
		}, 10_000},
		{"huge values", func(int) uint64 { return 1<<34 + rng.Uint64N(1<<33) }, 1000},
	}
	quantiles := []float64{0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]uint64, tt.n)
			for i := range vals {
				vals[i] = tt.gen(i)
				h.RecordValue(vals[i])
			}
			slices.Sort(vals)
			for _, q := range quantiles {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				// Never below the true sample, above it by at most 1/128 of it.
				if got < want || float64(got-want) > float64(want)/128 {
					t.Errorf("Quantile(%v) = %d; want %d (within +%.2f)", q, got, want, float64(want)/128)
				}
			}
			if h.Count() != uint64(tt.n) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("Count, Min, Max = %d, %d, %d; want %d, %d, %d", h.Count(), h.Min(), h.Max(), tt.n, vals[0], vals[len(vals)-1])
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := sum / float64(len(vals)); math.Abs(h.Mean()-mean) > 1e-6*mean+1e-9 {
				t.Errorf("Mean() = %v; want %v", h.Mean(), mean)
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets tile [0, HistogramMaxValue] without gaps or overlaps.
	if histLow(0) != 0 || histHigh(histBuckets-1) != HistogramMaxValue {
		t.Fatalf("range = [%d, %d]; want [0, %d]", histLow(0), histHigh(histBuckets-1), uint64(HistogramMaxValue))
	}
	for i := 0; i < histBuckets-1; i++ {
		if histHigh(i)+1 != histLow(i+1) {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, histHigh(i), i+1, histLow(i+1))
		}
		if w := histHigh(i) - histLow(i) + 1; histLow(i) >= histSubCount && w > histLow(i)/histHalf {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its start", i, histLow(i), histHigh(i), histHalf)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		v := rng.Uint64N(HistogramMaxValue + 1)
		if i := histIndex(v); v < histLow(i) || v > histHigh(i) {
			t.Fatalf("histIndex(%d) = %d, bucket [%d, %d]", v, i, histLow(i), histHigh(i))
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	h := NewHistogram()
	if got := h.Quantile(0.5); got != 0 || h.Min() != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Errorf("empty histogram: Quantile(0.5), Min, Max, Mean = %d, %d, %d, %v; want zeros", got, h.Min(), h.Max(), h.Mean())
	}
	h.Record(-time.Second)
	h.Record(time.Duration(math.MaxInt64))
	if h.Min() != 0 || h.Max() != HistogramMaxValue {
		t.Errorf("Record(-1s), Record(max): Min, Max = %d, %d; want 0, %d", h.Min(), h.Max(), uint64(HistogramMaxValue))
	}
	h.Record(1500 * time.Nanosecond) // truncates to 1µs
	if got := h.Quantile(0.5); got != 1 {
		t.Errorf("Quantile(0.5) after 0, 1, max = %d; want 1", got)
	}
	h.Reset()
	if h.Count() != 0 || h.Quantile(1) != 0 {
		t.Errorf("after Reset: Count, Quantile(1) = %d, %d; want 0, 0", h.Count(), h.Quantile(1))
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 10_000 {
		v := rng.Uint64N(1_000_000)
		all.RecordValue(v)
		if i%3 == 0 {
			a.RecordValue(v)
		} else {
			b.RecordValue(v)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	if a.Summary() != all.Summary() || a.Min() != all.Min() {
		t.Errorf("Merge: %+v; want %+v", a.Summary(), all.Summary())
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.RecordValue(uint64(i*7919) % 5_000_000)
	}
}
