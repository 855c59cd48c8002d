package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestDelay(t *testing.T) {
	p := Policy{Base: 100 * ms, Max: time.Second}
	tests := []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{0, 0, 50 * ms}, // d = 100ms, drawn from [50ms, 100ms]
		{0, 0.5, 75 * ms},
		{0, 0.999, 99950 * time.Microsecond},
		{1, 0, 100 * ms},   // d = 200ms
		{2, 0.5, 300 * ms}, // d = 400ms
		{3, 0, 400 * ms},   // d = 800ms
		{4, 0, 500 * ms},   // capped at 1s
		{4, 0.999, 999500 * time.Microsecond},
		{1000, 0, 500 * ms}, // no overflow
	}
	for _, tt := range tests {
		if got := p.Delay(tt.n, func() float64 { return tt.rnd }); got != tt.want {
			t.Errorf("Delay(%d, rnd=%v) = %v; want %v", tt.n, tt.rnd, got, tt.want)
		}
	}
}

func TestDelayAfter(t *testing.T) {
	p := Policy{Base: 100 * ms, Max: time.Second}
	tests := []struct {
		n          int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{0, 0, 0, 50 * ms},                       // no Retry-After: Delay
		{0, 2 * time.Second, 0, 2 * time.Second}, // Retry-After wins
		{0, 2 * time.Second, 0.5, 2025 * ms},     // plus up to Base/2 of spread
		{3, 300 * ms, 0, 400 * ms},               // backoff already longer
		{0, 60 * ms, 0, 60 * ms},                 // Retry-After above the drawn 50ms
		{0, 60 * ms, 0.2, 60 * ms},               // drawn 60ms is not below it
		{0, 70 * ms, 0.2, 80 * ms},               // drawn 60ms is: 70ms + 0.2*Base/2
	}
	for _, tt := range tests {
		if got := p.DelayAfter(tt.n, tt.retryAfter, func() float64 { return tt.rnd }); got != tt.want {
			t.Errorf("DelayAfter(%d, %v, rnd=%v) = %v; want %v", tt.n, tt.retryAfter, tt.rnd, got, tt.want)
		}
	}
}

func TestSchedule(t *testing.T) {
	// With real randomness (and with the default source) every delay stays
	// in its [d/2, d] band.
	p := Policy{Base: 10 * ms, Max: 300 * ms}
	bands := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for n, d := range bands {
		d *= ms
		rnds := []func() float64{rand.New(rand.NewPCG(uint64(n), 7)).Float64, nil}
		for _, rnd := range rnds {
			for range 100 {
				if got := p.Delay(n, rnd); got < d/2 || got > d {
					t.Fatalf("Delay(%d) = %v; want within [%v, %v]", n, got, d/2, d)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		p    Policy
		want error
	}{
		{Policy{Base: ms, Max: ms}, nil},
		{Policy{Base: ms, Max: time.Second}, nil},
		{Policy{Base: 0, Max: time.Second}, ErrInvalid},
		{Policy{Base: time.Second, Max: ms}, ErrInvalid},
	}
	for _, tt := range tests {
		if got := tt.p.Validate(); !errors.Is(got, tt.want) {
			t.Errorf("%+v.Validate() = %v; want %v", tt.p, got, tt.want)
		}
	}
}

func TestSleep(t *testing.T) {
	p := Policy{Base: 20 * ms, Max: 20 * ms}
	start := time.Now()
	if err := p.Sleep(context.Background(), 0, func() float64 { return 0 }); err != nil {
		t.Fatalf("Sleep() = %v; want nil", err)
	}
	if el := time.Since(start); el < 10*ms {
		t.Errorf("Sleep(0) returned after %v; want at least the drawn 10ms", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := Policy{Base: time.Hour, Max: time.Hour}
	if err := long.Sleep(ctx, 0, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(cancelled) = %v; want context.Canceled", err)
	}
}
