package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/flashstock/flashstock/sale"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status                   int
		code                     string
		want                     Outcome
		unknown, rejected, retry bool
	}{
		{201, "", OutcomeConfirmed, false, false, false},
		{200, "", OutcomeReplayed, false, false, false},
		{409, "sold_out", OutcomeSoldOut, false, false, false},
		{409, "limit_exceeded", OutcomeLimitExceeded, false, false, false},
		{409, "item_exists", OutcomeClientError, false, false, false},
		{403, "not_on_sale", OutcomeNotOnSale, false, false, false},
		{404, "item_not_found", OutcomeNotFound, false, false, false},
		{404, "not_found", OutcomeNotFound, false, false, false},
		{400, "invalid_argument", OutcomeClientError, false, false, false},
		{401, "unauthenticated", OutcomeClientError, false, false, false},
		{429, "rate_limited", OutcomeRateLimited, false, true, true},
		{503, "overloaded", OutcomeOverloaded, false, true, true},
		// The fix: unavailable is the table's definite "not applied".
		{503, "unavailable", OutcomeUnavailable, false, true, true},
		{503, "unknown_outcome", OutcomeUnknown, true, false, true},
		// A 503 the table does not make (a proxy's): nothing says no.
		{503, "", OutcomeServerError, true, false, true},
		{503, "bad_gateway", OutcomeServerError, true, false, true},
		{500, "internal", OutcomeServerError, true, false, true},
		{504, "", OutcomeServerError, true, false, true},
		{302, "", OutcomeBadResponse, true, false, true},
	}
	for _, tt := range tests {
		got := Classify(tt.status, tt.code)
		if got != tt.want || got.Unknown() != tt.unknown || got.Rejected() != tt.rejected || got.Retryable() != tt.retry {
			t.Errorf("Classify(%d, %q) = %v (unknown %v, rejected %v, retryable %v); want %v (%v, %v, %v)",
				tt.status, tt.code, got, got.Unknown(), got.Rejected(), got.Retryable(), tt.want, tt.unknown, tt.rejected, tt.retry)
		}
		if got.Decided() == (tt.unknown || tt.rejected) {
			t.Errorf("Classify(%d, %q).Decided() = %v; want %v", tt.status, tt.code, got.Decided(), !(tt.unknown || tt.rejected))
		}
	}
}

// TestClassifyFollowsTable: every answer sale's table can make is unknown
// exactly when its row is not Definite; the load generator and the fault
// suite read 503s the way the server means them.
func TestClassifyFollowsTable(t *testing.T) {
	for _, c := range sale.Codes() {
		o := Classify(c.Status, c.API)
		if o.Unknown() == c.Definite {
			t.Errorf("Classify(%d, %q) = %v, unknown %v; the table says definite %v (%v)", c.Status, c.API, o, o.Unknown(), c.Definite, c.Err)
		}
		if c.Definite && c.Status == 503 && !o.Rejected() {
			t.Errorf("Classify(%d, %q) = %v; a definite 503 is shed before the sale (Rejected)", c.Status, c.API, o)
		}
	}
}

func TestClassifyErr(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want Outcome
	}{
		{"deadline", live, fmt.Errorf("do: %w", context.DeadlineExceeded), OutcomeTimeout},
		{"net timeout", live, &net.OpError{Op: "read", Err: timeoutErr{}}, OutcomeTimeout},
		{"refused", live, errors.New("connection refused"), OutcomeNetError},
		{"caller cancelled", done, context.Canceled, OutcomeCanceled},
	}
	for _, tt := range tests {
		if got := classifyErr(tt.ctx, tt.err); got != tt.want || !got.Unknown() {
			t.Errorf("%s: classifyErr(%v) = %v; want %v, unknown", tt.name, tt.err, got, tt.want)
		}
	}
	if OutcomeCanceled.Retryable() {
		t.Error("OutcomeCanceled.Retryable() = true; a caller that gave up does not retry")
	}
}

func TestOutcomeNames(t *testing.T) {
	for o := range numOutcomes {
		got, ok := ParseOutcome(o.String())
		if !ok || got != o {
			t.Errorf("ParseOutcome(%q) = %v, %v; want %v", o.String(), got, ok, o)
		}
	}
	if _, ok := ParseOutcome("maybe"); ok {
		t.Error(`ParseOutcome("maybe") found an outcome`)
	}
	if s := numOutcomes.String(); s != "invalid" {
		t.Errorf("numOutcomes.String() = %q; want invalid", s)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }
