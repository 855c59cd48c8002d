package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/raftstore"
)

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status  int
	code    string
	message string
	retry   int // Retry-After seconds; 0 for the default of the status
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalid(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", message: fmt.Sprintf(format, args...)}
}

var (
	errInternal     = &apiError{status: http.StatusInternalServerError, code: "internal", message: "internal error"}
	errTooLarge     = &apiError{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", message: "request body too large"}
	errContentType  = &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "Content-Type must be application/json"}
	errUnauthorized = &apiError{status: http.StatusUnauthorized, code: "unauthenticated", message: "missing or invalid credentials"}
)

// errorBody is the JSON shape of every error.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ctxOutcome is the echo.Context key where handlers leave the outcome label
// for metrics.
const ctxOutcome = "outcome"

// classify maps an error to its API form. retry is the Retry-After value in
// seconds, 0 for none.
func classify(err error) (ae *apiError, retry int) {
	if errors.As(err, &ae) {
		retry = ae.retry
		if retry == 0 && (ae.status == http.StatusServiceUnavailable || ae.status == http.StatusTooManyRequests) {
			retry = 1
		}
		return ae, retry
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return &apiError{status: he.Code, code: "not_found", message: "no such route"}, 0
		case http.StatusMethodNotAllowed:
			return &apiError{status: he.Code, code: "method_not_allowed", message: "method not allowed"}, 0
		case http.StatusRequestEntityTooLarge:
			return errTooLarge, 0
		}
		if he.Code >= 400 && he.Code < 500 {
			return &apiError{status: he.Code, code: "invalid_argument", message: fmt.Sprint(he.Message)}, 0
		}
		return errInternal, 0
	}
	switch {
	case errors.Is(err, raftstore.ErrSoldOut):
		return &apiError{status: http.StatusConflict, code: "sold_out", message: "the item is sold out"}, 0
	case errors.Is(err, raftstore.ErrLimitExceeded):
		return &apiError{status: http.StatusConflict, code: "limit_exceeded", message: "the per-user limit for this item is reached"}, 0
	case errors.Is(err, raftstore.ErrNotOnSale):
		return &apiError{status: http.StatusForbidden, code: "not_on_sale", message: "the item is not on sale now"}, 0
	case errors.Is(err, raftstore.ErrItemNotFound):
		return &apiError{status: http.StatusNotFound, code: "item_not_found", message: "no such item"}, 0
	case errors.Is(err, raftstore.ErrItemExists):
		return &apiError{status: http.StatusConflict, code: "item_exists", message: "an item with this id exists"}, 0
	case errors.Is(err, raftstore.ErrInvalidQuantity):
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", message: "quantity must be between 1 and the item's per-user limit"}, 0
	case errors.Is(err, raftstore.ErrInvalidStock):
		return &apiError{status: http.StatusBadRequest, code: "invalid_argument", message: "the stock change would make remaining stock negative"}, 0
	case errors.Is(err, raftstore.ErrOrderExpired):
		return &apiError{status: http.StatusConflict, code: "order_expired", message: "the payment window closed; the order expired and its stock returned to the sale"}, 0
	case errors.Is(err, actors.ErrPaymentNotRequired):
		return &apiError{status: http.StatusConflict, code: "payment_not_required", message: "orders are final when confirmed; no payment window is configured"}, 0
	case errors.Is(err, actors.ErrOrderNotFound), errors.Is(err, raftstore.ErrOrderNotFound):
		return &apiError{status: http.StatusNotFound, code: "order_not_found", message: "no such order"}, 0
	case errors.Is(err, actors.ErrOverloaded):
		return &apiError{status: http.StatusServiceUnavailable, code: "overloaded", message: "too many purchases are waiting; retry shortly"}, 1
	case errors.Is(err, actors.ErrBacklogFull):
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "the order store is behind; retry later"}, 5
	case errors.Is(err, actors.ErrTimeout), errors.Is(err, raftstore.ErrUnknownOutcome):
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "outcome unknown; retry with the same request_id to learn it"}, 1
	case errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrUnavailable), errors.Is(err, actors.ErrClosed):
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", message: "the item's shard is not available on this node; retry shortly"}, 1
	}
	return errInternal, 0
}

// handleError is Echo's HTTPErrorHandler: the one place errors become
// responses. 5xx other than deliberate 503s are logged.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ae, retry := classify(err)
	if ae == errInternal {
		s.log.Error("request failed", "route", c.Path(), "err", err)
	}
	if c.Get(ctxOutcome) == nil {
		c.Set(ctxOutcome, ae.code)
	}
	if retry > 0 {
		c.Response().Header().Set("Retry-After", fmt.Sprint(retry))
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	if err := c.JSON(ae.status, &body); err != nil {
		s.log.Warn("write error response", "err", err)
	}
}
