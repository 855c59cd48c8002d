package loadgen

import (
	"testing"

	"github.com/flashstock/flashstock/client"
)

func TestFmtUs(t *testing.T) {
	tests := []struct {
		us   uint64
		want string
	}{
		{0, "0µs"}, {999, "999µs"}, {1000, "1.00ms"}, {12_345, "12.35ms"}, {2_500_000, "2.50s"},
	}
	for _, tt := range tests {
		if got := fmtUs(tt.us); got != tt.want {
			t.Errorf("fmtUs(%d) = %q; want %q", tt.us, got, tt.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var p progress
	p.requests[client.OutcomeConfirmed] = 5
	p.requests[client.OutcomeReplayed] = 2
	p.requests[client.OutcomeSoldOut] = 7
	p.requests[client.OutcomeRateLimited] = 1
	p.requests[client.OutcomeOverloaded] = 2
	p.requests[client.OutcomeUnavailable] = 4
	p.requests[client.OutcomeUnknown] = 1
	p.requests[client.OutcomeTimeout] = 3
	p.requests[client.OutcomePage] = 9
	p.dropped, p.intervalN, p.intervalP50, p.intervalP99 = 4, 500, 800, 12_000
	got := progressLine(p, 3e9, 5e8)
	want := "[   3.0s] rate=1000/s confirmed=5 sold_out=7 rejected=7 other=4 dropped=4 inflight=0 p50=800µs p99=12.00ms"
	if got != want {
		t.Errorf("progressLine() = %q; want %q", got, want)
	}
}
