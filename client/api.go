package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

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

// OrderView is an order as the server shows it (purchase answer or GET
// /v1/orders/{id}). Fields the server left out are empty.
type OrderView struct {
	OrderID   string `json:"order_id"`
	ItemID    string `json:"item_id,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Quantity  int64  `json:"quantity,omitempty"`
	Status    string `json:"status,omitempty"`
	Persisted *bool  `json:"persisted,omitempty"`
}

// orderJSON is OrderView on the wire.
type orderJSON struct {
	OrderID   flexString `json:"order_id"`
	ItemID    flexString `json:"item_id"`
	UserID    flexString `json:"user_id"`
	RequestID flexString `json:"request_id"`
	Quantity  int64      `json:"quantity"`
	Status    string     `json:"status"`
	Persisted *bool      `json:"persisted"`
}

// errNoOrderID is decodeOrder's answer for a body without an order ID.
var errNoOrderID = errors.New("client: order without an order_id")

// decodeOrder reads an order body; it must carry an order ID.
func decodeOrder(b []byte) (OrderView, error) {
	var o orderJSON
	if err := json.Unmarshal(b, &o); err != nil {
		return OrderView{}, fmt.Errorf("decode order: %w", err)
	}
	if o.OrderID == "" {
		return OrderView{}, errNoOrderID
	}
	return OrderView{
		OrderID: string(o.OrderID), ItemID: string(o.ItemID), UserID: string(o.UserID), RequestID: string(o.RequestID),
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

// NewItem is the body of POST /v1/items. Zero times leave the sale window
// open on that side.
type NewItem struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Stock        int64      `json:"stock"`
	PerUserLimit int        `json:"per_user_limit"`
	StartsAt     *time.Time `json:"starts_at,omitempty"`
	EndsAt       *time.Time `json:"ends_at,omitempty"`
}

// ShardStatus is one shard in GET /v1/cluster/status: the parts the
// harnesses read.
type ShardStatus struct {
	Leader          string `json:"leader"`
	Term            uint64 `json:"term"`
	UnflushedOrders int64  `json:"unflushed_orders"`
}

// ClusterStatus is GET /v1/cluster/status, the parts the harnesses read.
type ClusterStatus struct {
	Shards []ShardStatus `json:"shards"`
}

// Purchase sends one purchase of quantity units of item as user to target
// (Any for the next one). A 2xx answer whose body has no order is
// OutcomeBadResponse.
func (c *Client) Purchase(ctx context.Context, target int, item, user, requestID string, quantity int) (Reply, OrderView) {
	who := AsUser(user)
	who.IdempotencyKey = requestID
	r := c.Do(ctx, target, http.MethodPost, "/v1/items/"+url.PathEscape(item)+"/purchase",
		purchaseBody{Quantity: quantity, RequestID: requestID}, who)
	if !r.Outcome.OK() {
		return r, OrderView{}
	}
	o, err := decodeOrder(r.Body)
	if err != nil {
		r.Outcome, r.Err = OutcomeBadResponse, err
		return r, OrderView{}
	}
	return r, o
}

// Page views an item as user (a shopper's page view): 200 is OutcomePage.
func (c *Client) Page(ctx context.Context, item, user string) Reply {
	r := c.Do(ctx, Any, http.MethodGet, "/v1/items/"+url.PathEscape(item), nil, AsUser(user))
	if r.Status == http.StatusOK {
		r.Outcome = OutcomePage
	}
	return r
}

// Item reads an item from target (Any for the next one), as admin when there
// is an admin token.
func (c *Client) Item(ctx context.Context, target int, id string) (ItemState, error) {
	r := c.Do(ctx, target, http.MethodGet, "/v1/items/"+url.PathEscape(id), nil, AsAdmin)
	if err := r.Expect(http.StatusOK); err != nil {
		return ItemState{}, fmt.Errorf("get item %s: %w", id, err)
	}
	var it itemJSON
	if err := json.Unmarshal(r.Body, &it); err != nil {
		return ItemState{}, fmt.Errorf("get item %s: decode: %w", id, err)
	}
	return ItemState{
		ID: string(it.ID), Name: it.Name, Stock: it.Stock, Remaining: it.Remaining,
		Sold: it.Sold, PerUserLimit: it.PerUserLimit, Status: it.Status,
	}, nil
}

// Order reads an order as admin, or as its buyer when there is no admin
// token.
func (c *Client) Order(ctx context.Context, id, buyer string) (OrderView, error) {
	r := c.Do(ctx, Any, http.MethodGet, "/v1/orders/"+url.PathEscape(id), nil, Auth{User: buyer, Admin: true})
	if err := r.Expect(http.StatusOK); err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	o, err := decodeOrder(r.Body)
	if err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return o, nil
}

// ErrItemExists is CreateItem's answer for 409 item_exists.
var ErrItemExists = errors.New("client: item exists")

// CreateItem creates one item as admin, on target (Any for the next one).
func (c *Client) CreateItem(ctx context.Context, target int, it NewItem) error {
	r := c.Do(ctx, target, http.MethodPost, "/v1/items", it, AsAdmin)
	if r.Status == http.StatusConflict && r.Code == "item_exists" {
		return ErrItemExists
	}
	if err := r.Expect(http.StatusCreated); err != nil {
		return fmt.Errorf("create item %s: %w", it.ID, err)
	}
	return nil
}

// Ready reports whether target answers GET /readyz?all=1 with 200 (every shard
// has a leader and the node can serve); the error says why not.
func (c *Client) Ready(ctx context.Context, target int) error {
	return c.Do(ctx, target, http.MethodGet, "/readyz?all=1", nil, Auth{}).Expect(http.StatusOK)
}

// ClusterStatus reads GET /v1/cluster/status from target as admin; raw is
// the whole document, for the record.
func (c *Client) ClusterStatus(ctx context.Context, target int) (st ClusterStatus, raw []byte, err error) {
	r := c.Do(ctx, target, http.MethodGet, "/v1/cluster/status", nil, AsAdmin)
	if err := r.Expect(http.StatusOK); err != nil {
		return ClusterStatus{}, nil, fmt.Errorf("cluster status: %w", err)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return ClusterStatus{}, r.Body, fmt.Errorf("cluster status: decode: %w", err)
	}
	return st, r.Body, nil
}
