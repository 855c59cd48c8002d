package loadgen

import (
	"context"
	"errors"
	"net/http"
)

// Outcome classifies one HTTP exchange.
type Outcome uint8

// The outcomes. "Definitive" ones tell the loadgen that the purchase did not
// happen; "unknown" ones (see Outcome.Unknown) leave open whether the server
// committed it.
const (
	OutcomeConfirmed     Outcome = iota // 201: a new order
	OutcomeReplayed                     // 200: the order an earlier send with this request_id created
	OutcomeSoldOut                      // 409 sold_out
	OutcomeLimitExceeded                // 409 limit_exceeded
	OutcomeNotOnSale                    // 403 not_on_sale
	OutcomeNotFound                     // 404
	OutcomeRateLimited                  // 429
	OutcomeOverloaded                   // 503 overloaded: shed before admission
	OutcomeUnavailable                  // 503 with any other code (unavailable): may have been mid-commit
	OutcomeClientError                  // any other 4xx (invalid_argument, unauthenticated, ...)
	OutcomeServerError                  // any other 5xx
	OutcomeBadResponse                  // a success status whose body could not be read
	OutcomeTimeout                      // no answer within the request timeout
	OutcomeNetError                     // connection refused, reset, ...
	OutcomeCanceled                     // the run was interrupted while waiting
	OutcomePage                         // 200 on an item page view
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"confirmed", "replayed", "sold_out", "limit_exceeded", "not_on_sale", "not_found",
	"rate_limited", "overloaded", "unavailable", "client_error", "server_error",
	"bad_response", "timeout", "net_error", "canceled", "page",
}

// String returns the outcome's report name.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown_outcome"
}

// Unknown reports whether the server may have committed a purchase that got
// this answer: it did not say yes (with an order) and did not say a definitive
// no. 503 "unavailable" is counted here because a node that lost leadership
// mid-commit answers it; 503 "overloaded" and 429 are shed before admission.
func (o Outcome) Unknown() bool {
	switch o {
	case OutcomeUnavailable, OutcomeServerError, OutcomeBadResponse,
		OutcomeTimeout, OutcomeNetError, OutcomeCanceled:
		return true
	}
	return false
}

// Retryable reports whether a shopper should send the purchase again (with the
// same request_id).
func (o Outcome) Retryable() bool {
	switch o {
	case OutcomeRateLimited, OutcomeOverloaded, OutcomeUnavailable, OutcomeServerError,
		OutcomeBadResponse, OutcomeTimeout, OutcomeNetError:
		return true
	}
	return false
}

// ok reports whether the purchase is known to hold an order.
func (o Outcome) ok() bool { return o == OutcomeConfirmed || o == OutcomeReplayed }

// rejected reports whether the server shed the request (429/503).
func (o Outcome) rejected() bool {
	return o == OutcomeRateLimited || o == OutcomeOverloaded || o == OutcomeUnavailable
}

// classify maps an answered purchase to its outcome by status and error code.
func classify(status int, code string) Outcome {
	switch {
	case status == http.StatusCreated:
		return OutcomeConfirmed
	case status == http.StatusOK:
		return OutcomeReplayed
	case status == http.StatusConflict && code == "sold_out":
		return OutcomeSoldOut
	case status == http.StatusConflict && code == "limit_exceeded":
		return OutcomeLimitExceeded
	case status == http.StatusForbidden && code == "not_on_sale":
		return OutcomeNotOnSale
	case status == http.StatusNotFound:
		return OutcomeNotFound
	case status == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case status == http.StatusServiceUnavailable && code == "overloaded":
		return OutcomeOverloaded
	case status == http.StatusServiceUnavailable:
		return OutcomeUnavailable
	case status >= 400 && status < 500:
		return OutcomeClientError
	case status >= 500:
		return OutcomeServerError
	}
	return OutcomeBadResponse // 1xx, other 2xx, 3xx
}

// classifyErr maps a failed exchange (no response) to its outcome. runCtx is
// the run's context: once it is done, a failure is the run stopping, not the
// server.
func classifyErr(runCtx context.Context, err error) Outcome {
	switch {
	case runCtx.Err() != nil:
		return OutcomeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	}
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return OutcomeTimeout
	}
	return OutcomeNetError
}
