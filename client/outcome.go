package client

import (
	"context"
	"errors"
	"net/http"

	"github.com/flashstock/flashstock/sale"
)

// Outcome classifies one HTTP exchange with the API.
type Outcome uint8

// The outcomes. A purchase that got an order is OK; one whose outcome
// Unknown is true may or may not have been committed; every other outcome
// is definite: the purchase did not happen on that send (see Rejected and
// Decided for the two kinds of no).
const (
	OutcomeConfirmed     Outcome = iota // 201: a new order
	OutcomeReplayed                     // 200: the order an earlier send with this request_id created
	OutcomeSoldOut                      // 409 sold_out
	OutcomeLimitExceeded                // 409 limit_exceeded
	OutcomeNotOnSale                    // 403 not_on_sale
	OutcomeNotFound                     // 404
	OutcomeRateLimited                  // 429: shed before admission
	OutcomeOverloaded                   // 503 overloaded: shed before admission
	OutcomeUnavailable                  // 503 unavailable: the shard could not take it; nothing was applied
	OutcomeUnknown                      // 503 unknown_outcome: it may have committed
	OutcomeClientError                  // any other 4xx (invalid_argument, unauthenticated, ...)
	OutcomeServerError                  // any other 5xx, and a 503 whose code sale's table does not know
	OutcomeBadResponse                  // a success status whose body could not be read, or a 1xx/3xx
	OutcomeTimeout                      // no answer within the request timeout
	OutcomeNetError                     // connection refused, reset, ...
	OutcomeCanceled                     // the caller gave up while waiting
	OutcomePage                         // 200 on an item page view
	numOutcomes
)

// NumOutcomes is the number of outcomes, for arrays indexed by Outcome.
const NumOutcomes = int(numOutcomes)

var outcomeNames = [numOutcomes]string{
	"confirmed", "replayed", "sold_out", "limit_exceeded", "not_on_sale", "not_found",
	"rate_limited", "overloaded", "unavailable", "unknown_outcome", "client_error", "server_error",
	"bad_response", "timeout", "net_error", "canceled", "page",
}

// String returns the outcome's report name.
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "invalid"
}

// ParseOutcome returns the outcome named s (String's inverse).
func ParseOutcome(s string) (Outcome, bool) {
	for o, name := range outcomeNames {
		if name == s {
			return Outcome(o), true
		}
	}
	return 0, false
}

// byAPICode maps the API error codes of sale's table to outcomes. A code
// missing here classifies by its status alone.
var byAPICode = map[string]Outcome{
	"sold_out":        OutcomeSoldOut,
	"limit_exceeded":  OutcomeLimitExceeded,
	"not_on_sale":     OutcomeNotOnSale,
	"item_not_found":  OutcomeNotFound,
	"order_not_found": OutcomeNotFound,
	"overloaded":      OutcomeOverloaded,
	"unavailable":     OutcomeUnavailable,
	"unknown_outcome": OutcomeUnknown,
	// A command no server of the shard can apply yet: refused before Raft.
	"upgrade_in_progress": OutcomeUnavailable,
}

// tableCode is a (status, API code) pair of sale's error table.
type tableCode struct {
	status int
	api    string
}

// tableCodes holds every (status, API code) pair of sale's error table: an
// answer with one of them was produced by the table, so the table says
// whether it is definite.
var tableCodes = func() map[tableCode]bool {
	m := make(map[tableCode]bool)
	for _, c := range sale.Codes() {
		m[tableCode{c.Status, c.API}] = true
	}
	return m
}()

// unknown[o] is true for the outcomes that leave open whether a purchase
// was committed. The transport failures, 5xx other than the table's and
// unreadable answers are fixed; an outcome that stands for table codes is
// unknown as soon as one of its rows is not Definite, so the answer is
// decided by sale's table, the same one the server answers from.
var unknown = func() [numOutcomes]bool {
	var u [numOutcomes]bool
	for _, o := range []Outcome{OutcomeServerError, OutcomeBadResponse, OutcomeTimeout, OutcomeNetError, OutcomeCanceled} {
		u[o] = true
	}
	for _, c := range sale.Codes() {
		if !c.Definite {
			u[Classify(c.Status, c.API)] = true
		}
	}
	return u
}()

// Classify maps an answer to its outcome by status and API error code.
// A 2xx is classified as the answer to a purchase (201 confirmed, 200
// replayed).
func Classify(status int, code string) Outcome {
	switch {
	case status == http.StatusCreated:
		return OutcomeConfirmed
	case status == http.StatusOK:
		return OutcomeReplayed
	case tableCodes[tableCode{status, code}]:
		if o, ok := byAPICode[code]; ok {
			return o
		}
		return byStatus(status)
	case status == http.StatusServiceUnavailable:
		// Not one of the table's 503s (a proxy's, or a code this client
		// does not know): nothing says the purchase was not applied.
		return OutcomeServerError
	}
	return byStatus(status)
}

// byStatus classifies an answer whose code sale's table does not settle.
// Any 4xx is the server refusing the request before the sale saw it.
func byStatus(status int) Outcome {
	switch {
	case status == http.StatusNotFound:
		return OutcomeNotFound
	case status == http.StatusTooManyRequests:
		return OutcomeRateLimited
	case status >= 400 && status < 500:
		return OutcomeClientError
	case status >= 500:
		return OutcomeServerError
	}
	return OutcomeBadResponse // 1xx, other 2xx, 3xx
}

// classifyErr maps a failed exchange (no answer) to its outcome. ctx is the
// caller's: once it is done, a failure is the caller giving up, not the
// server.
func classifyErr(ctx context.Context, err error) Outcome {
	switch {
	case ctx.Err() != nil:
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

// OK reports whether the answer carried an order.
func (o Outcome) OK() bool { return o == OutcomeConfirmed || o == OutcomeReplayed }

// Unknown reports whether the server may have committed a purchase that got
// this answer: it did not say yes with an order and did not say a definite
// no.
func (o Outcome) Unknown() bool { return o < numOutcomes && unknown[o] }

// Rejected reports whether the server shed the request before the sale
// looked at it (429, and the definite 503s: overloaded, unavailable). The
// send certainly did not happen, but that says nothing about an earlier
// send of the same request_id, and a later one may succeed.
func (o Outcome) Rejected() bool {
	return (o == OutcomeRateLimited || o == OutcomeOverloaded || o == OutcomeUnavailable) && !o.Unknown()
}

// Decided reports whether the answer is the sale's own decision about the
// purchase: an order, or a definite refusal by its rules (sold out, limit
// exceeded, not on sale, ...). A decided answer to a retry with the same
// request_id settles the purchase; a rejected or unknown one does not.
func (o Outcome) Decided() bool {
	return o < numOutcomes && o != OutcomePage && !o.Unknown() && !o.Rejected()
}

// Retryable reports whether a shopper should send the purchase again (with
// the same request_id): the server shed it, or its outcome is unknown. A
// caller that gave up (canceled) does not retry.
func (o Outcome) Retryable() bool {
	return o.Rejected() || (o.Unknown() && o != OutcomeCanceled)
}
