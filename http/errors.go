package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/sale"
)

// apiError is an error with its HTTP status and machine-readable code.
type apiError struct {
	status  int
	code    string
	message string
	retry   int    // Retry-After seconds; 0 for the default of the status
	body    []byte // the encoded body, for errors whose text never varies
}

// static returns an error whose body is encoded once: the answers a flash
// sale gives thousands of times a second (sold out, overloaded) cost no
// JSON encoding.
func static(status int, code, message string) *apiError {
	e := &apiError{status: status, code: code, message: message}
	var b errorBody
	b.Error.Code, b.Error.Message = code, message
	e.body, _ = json.Marshal(&b)
	e.body = append(e.body, '\n')
	return e
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalid(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "invalid_argument", message: fmt.Sprintf(format, args...)}
}

var (
	errInternal     = static(http.StatusInternalServerError, "internal", "internal error")
	errTooLarge     = static(http.StatusRequestEntityTooLarge, "payload_too_large", "request body too large")
	errContentType  = static(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	errUnauthorized = static(http.StatusUnauthorized, "unauthenticated", "missing or invalid credentials")

	errNoRoute = static(http.StatusNotFound, "not_found", "no such route")
	errMethod  = static(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed")
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
			return errNoRoute, 0
		case http.StatusMethodNotAllowed:
			return errMethod, 0
		case http.StatusRequestEntityTooLarge:
			return errTooLarge, 0
		}
		if he.Code >= 400 && he.Code < 500 {
			return &apiError{status: he.Code, code: "invalid_argument", message: fmt.Sprint(he.Message)}, 0
		}
		return errInternal, 0
	}
	if c, ok := sale.CodeOf(err); ok {
		return saleErrors[c.Wire], c.RetryAfter
	}
	return errInternal, 0
}

// saleErrors holds the API form of every row of sale's error table, with
// its body encoded once: the answers a flash sale gives thousands of times
// a second (sold out, overloaded) cost no JSON encoding.
var saleErrors = func() [256]*apiError {
	var t [256]*apiError
	for _, c := range sale.Codes() {
		t[c.Wire] = static(c.Status, c.API, c.Message)
	}
	return t
}()

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
		c.Response().Header().Set("Retry-After", strconv.Itoa(retry))
	}
	if ae.body != nil {
		if err := c.Blob(ae.status, echo.MIMEApplicationJSON, ae.body); err != nil {
			s.log.Warn("write error response", "err", err)
		}
		return
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ae.code, ae.message
	if err := c.JSON(ae.status, &body); err != nil {
		s.log.Warn("write error response", "err", err)
	}
}
