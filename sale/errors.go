package sale

import (
	"errors"
	"net/http"
	"strconv"
)

// Errors a purchase, an order or an admin action can end in. Callers match
// them with errors.Is. Each has one row in the table below.
//
// Definite answers: the purchase certainly did not happen, and will not
// (sold out, limit exceeded, not on sale, overloaded, unavailable...). A
// shopper may give up, or try again later as a new purchase.
//
// Unknown outcome (ErrUnknownOutcome, ErrTimeout): the purchase may have
// been committed or not. Only a retry with the same request ID can tell:
// the state machine remembers the ID and answers with the original order,
// or decides the purchase afresh if it never happened. A shopper who
// retries with a new request ID may buy twice.
var (
	ErrSoldOut         = errors.New("sale: sold out")
	ErrLimitExceeded   = errors.New("sale: per-user limit exceeded")
	ErrNotOnSale       = errors.New("sale: item not on sale")
	ErrItemNotFound    = errors.New("sale: item not found")
	ErrItemExists      = errors.New("sale: item exists")
	ErrInvalidQuantity = errors.New("sale: invalid quantity")
	ErrInvalidStock    = errors.New("sale: stock would become negative")
	ErrOrderNotFound   = errors.New("sale: order not found")
	ErrOrderExpired    = errors.New("sale: order expired before payment")
	ErrOrderCancelled  = errors.New("sale: order cancelled")
	ErrOrderPaid       = errors.New("sale: order paid")
	// ErrOrderNotCancellable: the order is older than what the shard
	// still holds of it (--order-retention after it reached the order
	// store); cancelling it there could return its unit twice.
	ErrOrderNotCancellable = errors.New("sale: order too old to cancel")
	// ErrFeatureUnavailable: the command is new and a server of its shard
	// runs a version that cannot apply it yet (a rolling upgrade in
	// progress). Nothing was applied.
	ErrFeatureUnavailable = errors.New("sale: not every node runs a version that applies this yet")
	// ErrInvalidRequest: an ID, a name or a batch is outside the bounds
	// of this package; nothing was applied.
	ErrInvalidRequest = errors.New("sale: request outside the sale's bounds")
	// ErrPaymentNotRequired: no payment window is configured; orders are
	// final when confirmed.
	ErrPaymentNotRequired = errors.New("sale: payment not required")
	// ErrStockMax: a restock would take the item's stock past StockMax;
	// nothing was applied.
	ErrStockMax = errors.New("sale: stock would exceed the maximum")
	// ErrItemsFull: the item's shard holds ItemsPerShardMax items; nothing
	// was created.
	ErrItemsFull = errors.New("sale: too many items")

	// ErrOverloaded: a bounded queue is full; nothing was applied.
	ErrOverloaded = errors.New("sale: overloaded")
	// ErrBacklogFull: too many confirmed orders wait for the order store;
	// nothing was applied.
	ErrBacklogFull = errors.New("sale: order store backlog full")
	// ErrNotLeader: this node does not lead the item's shard; nothing was
	// applied, and the leader may be asked.
	ErrNotLeader = errors.New("sale: not the shard leader")
	// ErrUnavailable: the shard cannot serve now (no leader, shutting
	// down, a failing node); nothing was applied.
	ErrUnavailable = errors.New("sale: shard unavailable")
	// ErrRateLimited: the shopper sends purchases faster than the rate
	// limit; nothing was applied.
	ErrRateLimited = errors.New("sale: rate limited")
	// ErrDiskFull: a node's disk is too full to take purchases; nothing
	// was applied.
	ErrDiskFull = errors.New("sale: disk full")
	// ErrClosed: the node is shutting down; nothing was applied.
	ErrClosed = errors.New("sale: node shutting down")
	// ErrUnknownOutcome: the command may or may not have been committed
	// (leadership lost after it was sent). Retry with the same request ID.
	ErrUnknownOutcome = errors.New("sale: outcome unknown")
	// ErrTimeout: no answer in time; the command may still commit. Retry
	// with the same request ID.
	ErrTimeout = errors.New("sale: timed out waiting for the answer")
)

// Code is how one error crosses the wire between nodes and how the HTTP API
// answers it.
type Code struct {
	Err error
	// Wire is the error's number in messages between nodes: stable, never
	// renumbered or reused.
	Wire uint8
	// Status, API and Message are the HTTP answer: the status code and
	// the body {"error":{"code":API,"message":Message}}.
	Status  int
	API     string
	Message string
	// RetryAfter is the Retry-After header in seconds; 0 for none.
	RetryAfter int
	// Definite reports whether a purchase that got this answer certainly
	// did not happen. False means the outcome is unknown.
	Definite bool
}

// codes is the one error table. Wire 6 is retired (request ID conflict).
var codes = []Code{
	{ErrSoldOut, 1, http.StatusConflict, "sold_out", "the item is sold out", 0, true},
	{ErrLimitExceeded, 2, http.StatusConflict, "limit_exceeded", "the per-user limit for this item is reached", 0, true},
	{ErrNotOnSale, 3, http.StatusForbidden, "not_on_sale", "the item is not on sale now", 0, true},
	{ErrItemNotFound, 4, http.StatusNotFound, "item_not_found", "no such item", 0, true},
	{ErrInvalidQuantity, 5, http.StatusBadRequest, "invalid_argument", "quantity must be between 1 and the item's per-user limit", 0, true},
	{ErrOverloaded, 7, http.StatusServiceUnavailable, "overloaded", "too many purchases are waiting; retry shortly", 1, true},
	{ErrBacklogFull, 8, http.StatusServiceUnavailable, "unavailable", "the order store is behind; retry later", 5, true},
	{ErrNotLeader, 9, http.StatusServiceUnavailable, "unavailable", "the item's shard is not available on this node; retry shortly", 1, true},
	{ErrUnavailable, 10, http.StatusServiceUnavailable, "unavailable", "the item's shard is not available on this node; retry shortly", 1, true},
	{ErrUnknownOutcome, 11, http.StatusServiceUnavailable, "unknown_outcome", "outcome unknown; retry with the same request_id to learn it", 1, false},
	{ErrClosed, 12, http.StatusServiceUnavailable, "unavailable", "the node is shutting down; retry on another node", 1, true},
	{ErrItemExists, 13, http.StatusConflict, "item_exists", "an item with this id exists", 0, true},
	{ErrInvalidStock, 14, http.StatusBadRequest, "invalid_argument", "the stock change would make remaining stock negative", 0, true},
	{ErrOrderNotFound, 15, http.StatusNotFound, "order_not_found", "no such order", 0, true},
	{ErrOrderExpired, 16, http.StatusConflict, "order_expired", "the payment window closed; the order expired and its stock returned to the sale", 0, true},
	{ErrTimeout, 17, http.StatusServiceUnavailable, "unknown_outcome", "no answer in time; retry with the same request_id to learn the outcome", 1, false},
	{ErrInvalidRequest, 19, http.StatusBadRequest, "invalid_argument", "an id, a name or a batch is outside the sale's bounds", 0, true},
	{ErrRateLimited, 20, http.StatusTooManyRequests, "rate_limited", "too many purchases from this shopper; retry shortly", 1, true},
	{ErrDiskFull, 23, http.StatusServiceUnavailable, "unavailable", "a node's disk is full; retry shortly or on another node", 5, true},
	{ErrPaymentNotRequired, 18, http.StatusConflict, "payment_not_required", "orders are final when confirmed; no payment window is configured", 0, true},
	{ErrStockMax, 21, http.StatusBadRequest, "invalid_argument", "the restock would take the item's stock past " + strconv.Itoa(StockMax) + " units", 0, true},
	{ErrOrderCancelled, 24, http.StatusConflict, "order_cancelled", "the order was cancelled and its stock returned to the sale", 0, true},
	{ErrOrderPaid, 25, http.StatusConflict, "order_paid", "the order is paid; a paid order is settled and is not cancelled here (refund it through the payment system)", 0, true},
	{ErrOrderNotCancellable, 26, http.StatusConflict, "order_not_cancellable", "the order is older than the shard keeps it (--order-retention after it was stored); it can no longer be cancelled safely", 0, true},
	{ErrFeatureUnavailable, 27, http.StatusServiceUnavailable, "upgrade_in_progress", "not every node of the item's shard runs a version that applies this yet; retry after the upgrade", 30, true},
	{ErrItemsFull, 22, http.StatusConflict, "too_many_items", "the shard this item id maps to holds the most items it may (" + strconv.Itoa(ItemsPerShardMax) + " per shard)", 0, true},
}

// byWire indexes codes by wire number.
var byWire = func() [256]*Code {
	var t [256]*Code
	for i := range codes {
		c := &codes[i]
		if t[c.Wire] != nil || c.Wire == 0 {
			panic("sale: wire number used twice or zero")
		}
		t[c.Wire] = c
	}
	return t
}()

// Codes returns the error table, for tests and documentation.
func Codes() []Code { return append([]Code(nil), codes...) }

// CodeOf returns the row of err's sentinel (err may wrap it), and false
// for an error the table does not know.
func CodeOf(err error) (Code, bool) {
	if err == nil {
		return Code{}, false
	}
	for i := range codes {
		if err == codes[i].Err { // the common case: a bare sentinel
			return codes[i], true
		}
	}
	for i := range codes {
		if errors.Is(err, codes[i].Err) {
			return codes[i], true
		}
	}
	return Code{}, false
}

// WireOf returns the wire number of err. An error the table does not know
// travels as ErrUnknownOutcome: the receiver cannot tell what happened, so
// it must not report a definite answer.
func WireOf(err error) uint8 {
	if c, ok := CodeOf(err); ok {
		return c.Wire
	}
	return 11
}

// FromWire returns the sentinel of a wire number, and false for a number
// this version does not know.
func FromWire(n uint8) (error, bool) {
	if c := byWire[n]; c != nil {
		return c.Err, true
	}
	return nil, false
}

// Definite reports whether a purchase that ended in err certainly did not
// happen. An error the table does not know is not definite.
func Definite(err error) bool {
	c, ok := CodeOf(err)
	return ok && c.Definite
}
