package loadgen

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	const ms = time.Millisecond
	tests := []struct {
		n          int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{0, 0, 0, 50 * ms}, // d = 100ms, drawn from [50ms, 100ms]
		{0, 0, 0.5, 75 * ms},
		{0, 0, 0.999, 99950 * time.Microsecond},
		{1, 0, 0, 100 * ms},   // d = 200ms
		{2, 0, 0.5, 300 * ms}, // d = 400ms
		{3, 0, 0, 400 * ms},   // d = 800ms
		{4, 0, 0, 500 * ms},   // capped at 1s
		{4, 0, 0.999, 999500 * time.Microsecond},
		{1000, 0, 0, 500 * ms},                   // no overflow
		{0, 2 * time.Second, 0, 2 * time.Second}, // Retry-After wins
		{0, 2 * time.Second, 0.5, 2025 * ms},     // plus up to Base/2 of spread
		{3, 300 * ms, 0, 400 * ms},               // backoff already longer
		{0, 60 * ms, 0, 60 * ms},                 // Retry-After above the drawn 50ms
		{0, 60 * ms, 0.2, 60 * ms},               // drawn 60ms is not below it
		{0, 70 * ms, 0.2, 80 * ms},               // drawn 60ms is: 70ms + 0.2*Base/2
	}
	for _, tt := range tests {
		if got := b.Delay(tt.n, tt.retryAfter, func() float64 { return tt.rnd }); got != tt.want {
			t.Errorf("Delay(%d, %v, rnd=%v) = %v; want %v", tt.n, tt.retryAfter, tt.rnd, got, tt.want)
		}
	}
}

func TestBackoffSchedule(t *testing.T) {
	// With real randomness every delay stays in its [d/2, d] band.
	b := Backoff{Base: 10 * time.Millisecond, Max: 300 * time.Millisecond}
	bands := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for n, d := range bands {
		d *= time.Millisecond
		rnd := rand.New(rand.NewPCG(uint64(n), 7)).Float64
		for range 100 {
			if got := b.Delay(n, 0, rnd); got < d/2 || got > d {
				t.Fatalf("Delay(%d) = %v; want within [%v, %v]", n, got, d/2, d)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 10 ", 10 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}
