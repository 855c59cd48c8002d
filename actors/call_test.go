package actors

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flashstock/flashstock/sale"
)

// TestSettle: once an attempt may have reached Raft, a call must not end in
// a refusal that says "nothing happened" unless the item's state decided it
// (the owner looks the request ID up before it does). A retry that met a
// full queue on a new leader used to answer "overloaded" for a purchase the
// old leader may have committed.
func TestSettle(t *testing.T) {
	wrapped := fmt.Errorf("%w: no leader for item x", sale.ErrUnavailable)
	tests := []struct {
		err       error
		uncertain bool
		want      error
	}{
		{sale.ErrOverloaded, false, sale.ErrOverloaded},
		{wrapped, false, sale.ErrUnavailable},
		{sale.ErrOverloaded, true, sale.ErrUnknownOutcome},
		{sale.ErrBacklogFull, true, sale.ErrUnknownOutcome},
		{sale.ErrNotLeader, true, sale.ErrUnknownOutcome},
		{wrapped, true, sale.ErrUnknownOutcome},
		{sale.ErrClosed, true, sale.ErrUnknownOutcome},
		{sale.ErrTimeout, true, sale.ErrUnknownOutcome},
		{errors.New("something else"), true, sale.ErrUnknownOutcome},
		{sale.ErrSoldOut, true, sale.ErrSoldOut},
		{sale.ErrLimitExceeded, true, sale.ErrLimitExceeded},
		{sale.ErrNotOnSale, true, sale.ErrNotOnSale},
		{sale.ErrItemNotFound, true, sale.ErrItemNotFound},
	}
	for _, tc := range tests {
		got := settle(tc.err, tc.uncertain)
		if !errors.Is(got, tc.want) {
			t.Errorf("settle(%v, uncertain %v) = %v; want %v", tc.err, tc.uncertain, got, tc.want)
		}
		if code, _ := sale.CodeOf(got); tc.uncertain && code.Definite && code.Status >= 500 {
			t.Errorf("settle(%v, uncertain) = %v: a definite 5xx after an uncertain attempt", tc.err, got)
		}
	}
}
