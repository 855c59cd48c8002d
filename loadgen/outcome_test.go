package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status  int
		code    string
		want    Outcome
		unknown bool
		retry   bool
	}{
		{201, "", OutcomeConfirmed, false, false},
		{200, "", OutcomeReplayed, false, false},
		{409, "sold_out", OutcomeSoldOut, false, false},
		{409, "limit_exceeded", OutcomeLimitExceeded, false, false},
		{409, "item_exists", OutcomeClientError, false, false},
		{403, "not_on_sale", OutcomeNotOnSale, false, false},
		{404, "item_not_found", OutcomeNotFound, false, false},
		{400, "invalid_argument", OutcomeClientError, false, false},
		{401, "unauthenticated", OutcomeClientError, false, false},
		{429, "rate_limited", OutcomeRateLimited, false, true},
		{503, "overloaded", OutcomeOverloaded, false, true},
		{503, "unavailable", OutcomeUnavailable, true, true},
		{503, "", OutcomeUnavailable, true, true},
		{500, "internal", OutcomeServerError, true, true},
		{504, "", OutcomeServerError, true, true},
		{302, "", OutcomeBadResponse, true, true},
	}
	for _, tt := range tests {
		got := classify(tt.status, tt.code)
		if got != tt.want || got.Unknown() != tt.unknown || got.Retryable() != tt.retry {
			t.Errorf("classify(%d, %q) = %v (unknown %v, retryable %v); want %v (%v, %v)",
				tt.status, tt.code, got, got.Unknown(), got.Retryable(), tt.want, tt.unknown, tt.retry)
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
		{"run cancelled", done, context.Canceled, OutcomeCanceled},
	}
	for _, tt := range tests {
		if got := classifyErr(tt.ctx, tt.err); got != tt.want || !got.Unknown() {
			t.Errorf("%s: classifyErr(%v) = %v; want %v, unknown", tt.name, tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string { return "i/o timeout" }
func (timeoutErr) Timeout() bool { return true }
