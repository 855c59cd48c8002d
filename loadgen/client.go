package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// bodyMax bounds how much of a response body is read.
const bodyMax = 64 << 10

// client speaks the Flashstock HTTP API to a set of targets, round-robin.
// It is safe for concurrent use.
type client struct {
	http       *http.Client
	targets    []string
	next       atomic.Uint64
	identity   Identity
	adminToken string
	timeout    time.Duration
	now        func() time.Time
}

// newHTTPClient returns an HTTP client sized for conns concurrent requests.
func newHTTPClient(conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			MaxIdleConns:          conns + 16,
			MaxIdleConnsPerHost:   conns + 16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: timeout,
			DisableCompression:    true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// reply is one HTTP exchange as the loadgen sees it.
type reply struct {
	outcome    Outcome
	status     int    // 0 if no response
	code       string // the error code of an error body
	retryAfter time.Duration
	body       []byte // the body of a 2xx response
	err        error  // the transport error, or why a 2xx body was unusable
}

// apiError is the server's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// userAuth is who a request is sent as.
type userAuth struct {
	user  string // a shopper, through the Identity; "" for none
	admin bool   // the admin token (wins over user)
}

// do sends one request to the next target and reads the reply. The request is
// bounded by the client timeout; ctx cancels it early.
func (c *client) do(ctx context.Context, method, path string, in any, who userAuth) reply {
	base := c.targets[(c.next.Add(1)-1)%uint64(len(c.targets))]
	return c.doAt(ctx, base, method, path, in, who)
}

// doAt is do against one given target.
func (c *client) doAt(ctx context.Context, base, method, path string, in any, who userAuth) reply {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return reply{outcome: OutcomeClientError, err: fmt.Errorf("encode request: %w", err)}
		}
		body = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, base+path, body)
	if err != nil {
		return reply{outcome: OutcomeClientError, err: err}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case who.admin && c.adminToken != "":
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
	case who.user != "":
		c.identity.Authorize(req.Header, who.user)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{outcome: classifyErr(ctx, err), err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, bodyMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, bodyMax)) // let the connection be reused
	r := reply{status: resp.StatusCode, retryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())}
	if err != nil {
		r.outcome, r.err = classifyErr(ctx, err), fmt.Errorf("read body: %w", err)
		return r
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.body = data
		return r
	}
	var e apiError
	if json.Unmarshal(data, &e) == nil {
		r.code = e.Error.Code
	}
	return r
}

// flexString decodes a JSON string or number into a string, so IDs are read
// the same whichever way the server writes them.
type flexString string

// UnmarshalJSON accepts "abc", 123 and null.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = flexString(n.String())
	}
	return nil
}

// OrderView is an order as the server shows it (purchase reply or GET
// /v1/orders/{id}).
type OrderView struct {
	OrderID   string `json:"order_id"`
	ItemID    string `json:"item_id"`
	UserID    string `json:"user_id"`
	Quantity  int64  `json:"quantity"`
	Status    string `json:"status"`
	Persisted *bool  `json:"persisted,omitempty"`
}

// orderJSON is OrderView on the wire.
type orderJSON struct {
	OrderID   flexString `json:"order_id"`
	ItemID    flexString `json:"item_id"`
	UserID    flexString `json:"user_id"`
	Quantity  int64      `json:"quantity"`
	Status    string     `json:"status"`
	Persisted *bool      `json:"persisted"`
}

// decodeOrder reads an order body; it must carry an order ID.
func decodeOrder(b []byte) (OrderView, error) {
	var o orderJSON
	if err := json.Unmarshal(b, &o); err != nil {
		return OrderView{}, fmt.Errorf("decode order: %w", err)
	}
	if o.OrderID == "" {
		return OrderView{}, fmt.Errorf("decode order: no order_id")
	}
	return OrderView{
		OrderID: string(o.OrderID), ItemID: string(o.ItemID), UserID: string(o.UserID),
		Quantity: o.Quantity, Status: o.Status, Persisted: o.Persisted,
	}, nil
}

// ItemState is an item as GET /v1/items/{id} shows it.
type ItemState struct {
	ID           string `json:"id"`
	Name         string `json:"name,omitempty"`
	Stock        int64  `json:"stock"`
	Remaining    int64  `json:"remaining"`
	Sold         int64  `json:"sold"`
	PerUserLimit int64  `json:"per_user_limit"`
	Status       string `json:"status"`
}

// itemJSON is ItemState on the wire.
type itemJSON struct {
	ID           flexString `json:"id"`
	Name         string     `json:"name"`
	Stock        int64      `json:"stock"`
	Remaining    int64      `json:"remaining"`
	Sold         int64      `json:"sold"`
	PerUserLimit int64      `json:"per_user_limit"`
	Status       string     `json:"status"`
}

// purchaseBody is the body of POST /v1/items/{id}/purchase.
type purchaseBody struct {
	Quantity  int    `json:"quantity"`
	RequestID string `json:"request_id,omitempty"`
}

// createBody is the body of POST /v1/items.
type createBody struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Stock        int64     `json:"stock"`
	PerUserLimit int       `json:"per_user_limit"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
}

// purchase sends one purchase as user. A 2xx reply whose body has no order
// becomes OutcomeBadResponse.
func (c *client) purchase(ctx context.Context, item, user, requestID string, quantity int) (reply, OrderView) {
	r := c.do(ctx, http.MethodPost, "/v1/items/"+url.PathEscape(item)+"/purchase",
		purchaseBody{Quantity: quantity, RequestID: requestID}, userAuth{user: user})
	if r.status == 0 {
		return r, OrderView{}
	}
	r.outcome = classify(r.status, r.code)
	if !r.outcome.ok() {
		return r, OrderView{}
	}
	o, err := decodeOrder(r.body)
	if err != nil {
		r.outcome, r.err = OutcomeBadResponse, err
		return r, OrderView{}
	}
	return r, o
}

// page views an item as user (browse).
func (c *client) page(ctx context.Context, item, user string) reply {
	r := c.do(ctx, http.MethodGet, "/v1/items/"+url.PathEscape(item), nil, userAuth{user: user})
	switch {
	case r.status == 0:
	case r.status == http.StatusOK:
		r.outcome = OutcomePage
	default:
		r.outcome = classify(r.status, r.code)
	}
	return r
}

// item reads an item, as admin when there is an admin token.
func (c *client) item(ctx context.Context, id string) (ItemState, error) {
	r := c.do(ctx, http.MethodGet, "/v1/items/"+url.PathEscape(id), nil, userAuth{admin: true})
	if err := r.httpErr(http.StatusOK); err != nil {
		return ItemState{}, fmt.Errorf("get item %s: %w", id, err)
	}
	var it itemJSON
	if err := json.Unmarshal(r.body, &it); err != nil {
		return ItemState{}, fmt.Errorf("get item %s: decode: %w", id, err)
	}
	return ItemState{
		ID: string(it.ID), Name: it.Name, Stock: it.Stock, Remaining: it.Remaining,
		Sold: it.Sold, PerUserLimit: it.PerUserLimit, Status: it.Status,
	}, nil
}

// order reads an order as admin, or as its buyer when there is no admin token.
func (c *client) order(ctx context.Context, id, buyer string) (OrderView, error) {
	r := c.do(ctx, http.MethodGet, "/v1/orders/"+url.PathEscape(id), nil, userAuth{user: buyer, admin: true})
	if err := r.httpErr(http.StatusOK); err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	o, err := decodeOrder(r.body)
	if err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return o, nil
}

// errItemExists is createItem's answer for 409 item_exists.
var errItemExists = errors.New("loadgen: item exists")

// createItem creates one item as admin.
func (c *client) createItem(ctx context.Context, b createBody) error {
	r := c.do(ctx, http.MethodPost, "/v1/items", b, userAuth{admin: true})
	if r.status == http.StatusConflict && r.code == "item_exists" {
		return errItemExists
	}
	if err := r.httpErr(http.StatusCreated); err != nil {
		return fmt.Errorf("create item %s: %w", b.ID, err)
	}
	return nil
}

// httpStatusError is a reply with an unexpected status.
type httpStatusError struct {
	status int
	code   string
}

func (e *httpStatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.status)
	if e.code != "" {
		s += " " + e.code
	}
	return s
}

// httpErr returns nil if r has status want, else why not.
func (r reply) httpErr(want int) error {
	switch {
	case r.status == 0 && r.err != nil:
		return r.err
	case r.status != want:
		return &httpStatusError{status: r.status, code: r.code}
	}
	return nil
}

// transient reports whether err (from item, order or createItem) may go away
// on a retry.
func transient(err error) bool {
	var se *httpStatusError
	if !errors.As(err, &se) {
		return true // transport errors
	}
	return se.status == http.StatusTooManyRequests || se.status >= 500
}

// trimTarget drops a trailing slash so paths can be appended.
func trimTarget(t string) string { return strings.TrimRight(t, "/") }
