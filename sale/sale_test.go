package sale

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestOutcomeErr(t *testing.T) {
	tests := []struct {
		o    Outcome
		want error
	}{
		{OutcomeConfirmed, nil}, {OutcomeDuplicate, nil},
		{OutcomeSoldOut, ErrSoldOut}, {OutcomeLimitExceeded, ErrLimitExceeded}, {OutcomeNotOnSale, ErrNotOnSale},
		{OutcomeItemNotFound, ErrItemNotFound}, {OutcomeInvalidQuantity, ErrInvalidQuantity},
	}
	for _, tc := range tests {
		if got := tc.o.Err(); got != tc.want {
			t.Errorf("Outcome(%d).Err() = %v; want %v", tc.o, got, tc.want)
		}
	}
	if got := Outcome(0).Err(); got == nil {
		t.Errorf("Outcome(0).Err() = nil; want an error")
	}
}

func TestItemStatus(t *testing.T) {
	tests := []struct {
		name string
		it   Item
		now  int64
		want Status
	}{
		{"on sale", Item{Remaining: 1}, 10, StatusOnSale},
		{"upcoming", Item{Remaining: 1, StartsAt: 20}, 10, StatusUpcoming},
		{"starts now", Item{Remaining: 1, StartsAt: 10}, 10, StatusOnSale},
		{"ended", Item{Remaining: 1, EndsAt: 10}, 10, StatusEnded},
		{"ended beats paused and sold out", Item{Paused: true, EndsAt: 5}, 10, StatusEnded},
		{"paused", Item{Remaining: 1, Paused: true}, 10, StatusPaused},
		{"sold out", Item{Remaining: 0}, 10, StatusSoldOut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.it.Status(tc.now); got != tc.want {
				t.Errorf("Status(%d) of %+v = %q; want %q", tc.now, tc.it, got, tc.want)
			}
		})
	}
	it := Item{Stock: 10, Remaining: 3}
	if got := it.Sold(); got != 7 {
		t.Errorf("Sold() = %d; want 7", got)
	}
}

func TestAdmit(t *testing.T) {
	open := Item{Remaining: 5, PerUserLimit: 2}
	tests := []struct {
		name string
		it   Item
		qty  int32
		held int32
		now  int64
		want error
	}{
		{"admitted", open, 1, 0, 10, nil},
		{"up to the limit", open, 2, 0, 10, nil},
		{"zero quantity", open, 0, 0, 10, ErrInvalidQuantity},
		{"over the per-user limit in one purchase", open, 3, 0, 10, ErrInvalidQuantity},
		{"quantity before window", Item{Remaining: 5, PerUserLimit: 2, Paused: true}, 3, 0, 10, ErrInvalidQuantity},
		{"paused", Item{Remaining: 5, PerUserLimit: 2, Paused: true}, 1, 0, 10, ErrNotOnSale},
		{"before the window", Item{Remaining: 5, PerUserLimit: 2, StartsAt: 11}, 1, 0, 10, ErrNotOnSale},
		{"at the end", Item{Remaining: 5, PerUserLimit: 2, EndsAt: 10}, 1, 0, 10, ErrNotOnSale},
		{"window before the limit", Item{Remaining: 5, PerUserLimit: 2, EndsAt: 10}, 1, 2, 10, ErrNotOnSale},
		{"holds the limit", open, 1, 2, 10, ErrLimitExceeded},
		{"would pass the limit", open, 2, 1, 10, ErrLimitExceeded},
		{"limit before stock", Item{Remaining: 0, PerUserLimit: 1}, 1, 1, 10, ErrLimitExceeded},
		{"sold out", Item{Remaining: 0, PerUserLimit: 1}, 1, 0, 10, ErrSoldOut},
		{"fewer left than asked", Item{Remaining: 1, PerUserLimit: 2}, 2, 0, 10, ErrSoldOut},
		{"no overflow at a huge limit", Item{Remaining: 5, PerUserLimit: 1<<31 - 1}, 1<<31 - 1, 1<<31 - 1, 10, ErrLimitExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Admit(&tc.it, tc.qty, tc.held, tc.now); got != tc.want {
				t.Errorf("Admit(%+v, %d, %d, %d) = %v; want %v", tc.it, tc.qty, tc.held, tc.now, got, tc.want)
			}
			if tc.want != nil {
				if got := OutcomeOf(tc.want).Err(); got != tc.want {
					t.Errorf("OutcomeOf(%v).Err() = %v; want %v", tc.want, got, tc.want)
				}
			}
		})
	}
}

func TestValidID(t *testing.T) {
	long := string(make([]byte, IDLenMax+1))
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true}, {"sku-1.b:c_D", true}, {string(make([]byte, 0)), false},
		{"with space", false}, {`quote"`, false}, {"back\\slash", false}, {"é", false},
		{long, false}, {long[:IDLenMax], false}, // NUL bytes
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v; want %v", tc.id, got, tc.want)
		}
	}
	max := make([]byte, IDLenMax)
	for i := range max {
		max[i] = 'x'
	}
	if !ValidID(string(max)) || ValidID(string(max)+"x") {
		t.Errorf("ValidID: want %d characters accepted and %d refused", IDLenMax, IDLenMax+1)
	}
}

// TestCodes pins the error table: wire numbers are part of the protocol
// between nodes, and the API codes and statuses are part of the API.
func TestCodes(t *testing.T) {
	seen := map[uint8]bool{}
	for _, c := range Codes() {
		if seen[c.Wire] {
			t.Errorf("wire number %d used twice", c.Wire)
		}
		seen[c.Wire] = true
		if got, ok := FromWire(c.Wire); !ok || got != c.Err {
			t.Errorf("FromWire(%d) = %v, %v; want %v", c.Wire, got, ok, c.Err)
		}
		wrapped := fmt.Errorf("context: %w", c.Err)
		if got := WireOf(wrapped); got != c.Wire {
			t.Errorf("WireOf(%v) = %d; want %d", wrapped, got, c.Wire)
		}
		if c.Status < 400 || c.Status > 599 || c.API == "" || c.Message == "" {
			t.Errorf("%v: status %d, code %q, message %q; want a 4xx/5xx with a code and a message", c.Err, c.Status, c.API, c.Message)
		}
		if (c.Status == 503 || c.Status == 429) != (c.RetryAfter > 0) {
			t.Errorf("%v: status %d with Retry-After %d; want Retry-After exactly on 429s and 503s", c.Err, c.Status, c.RetryAfter)
		}
		if got, want := c.Definite, c.API != "unknown_outcome"; got != want {
			t.Errorf("%v: definite %v; want %v (only unknown_outcome leaves the outcome open)", c.Err, got, want)
		}
	}
	if _, ok := FromWire(6); ok {
		t.Error("FromWire(6): wire number 6 is retired and must stay unused")
	}
	for err, want := range map[error]string{
		ErrSoldOut: "sold_out", ErrOverloaded: "overloaded", ErrUnavailable: "unavailable",
		ErrUnknownOutcome: "unknown_outcome", ErrTimeout: "unknown_outcome",
	} {
		if c, _ := CodeOf(err); c.API != want {
			t.Errorf("CodeOf(%v).API = %q; want %q", err, c.API, want)
		}
	}
	unknown := errors.New("something else")
	if _, ok := CodeOf(unknown); ok || Definite(unknown) || WireOf(unknown) != 11 {
		t.Errorf("an error the table does not know: want no code, not definite, and wire 11 (unknown outcome)")
	}
}

func TestCheckRestock(t *testing.T) {
	tests := []struct {
		stock, remaining, delta int64
		want                    error
	}{
		{100, 40, 10, nil},
		{100, 40, -40, nil},
		{100, 40, -41, ErrInvalidStock},
		{StockMax - 5, 0, 5, nil},
		{StockMax - 5, 0, 6, ErrStockMax},
		{StockMax, StockMax, 1, ErrStockMax},
		{StockMax, StockMax, -1, nil},
		{1, 1, StockMax, ErrStockMax},
	}
	for _, tt := range tests {
		it := Item{Stock: tt.stock, Remaining: tt.remaining}
		if got := it.CheckRestock(tt.delta); got != tt.want {
			t.Errorf("Item{Stock: %d, Remaining: %d}.CheckRestock(%d) = %v; want %v", tt.stock, tt.remaining, tt.delta, got, tt.want)
		}
	}
}

func TestValidSaleTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC), true},
		{SaleTimeMin, true},
		{SaleTimeMax, true},
		{SaleTimeMin.Add(-time.Nanosecond), false},
		{SaleTimeMax.Add(time.Nanosecond), false},
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), false},    // wraps in UnixNano
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false}, // wraps in UnixNano
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), false}, // 0: "no bound"
	}
	for _, tt := range tests {
		if got := ValidSaleTime(tt.t); got != tt.want {
			t.Errorf("ValidSaleTime(%v) = %v; want %v", tt.t, got, tt.want)
		}
	}
	// Every accepted time survives the round trip through UnixNano.
	for _, b := range []time.Time{SaleTimeMin, SaleTimeMax} {
		if got := time.Unix(0, b.UnixNano()).UTC(); !got.Equal(b) {
			t.Errorf("%v does not survive UnixNano: %v", b, got)
		}
	}
}
