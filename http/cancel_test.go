package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/testutil"
)

// TestServerCancelOrderAndEndSale: an admin cancels an order (its unit sells
// again, once, and the order store learns it: reconcile stays clean) and
// ends a sale (purchases are refused, orders stand). Shoppers can do
// neither, and bad input changes nothing.
func TestServerCancelOrderAndEndSale(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku-c","stock":2,"per_user_limit":1}`)
	var first, second orderBody
	a.mustDo(t, purchase("sku-c", "alice", `{"request_id":"r1"}`), http.StatusCreated, &first)
	a.mustDo(t, purchase("sku-c", "bob", ""), http.StatusCreated, &second)
	a.mustDo(t, purchase("sku-c", "carol", ""), http.StatusConflict, nil) // sold out

	path := "/v1/orders/" + first.OrderID + "/cancel"
	// Neither the buyer nor anyone else but the admin cancels.
	a.mustDo(t, req{method: http.MethodPost, path: path, user: "alice"}, http.StatusUnauthorized, nil)
	a.mustDo(t, admin(http.MethodPost, "/v1/orders/abc/cancel", ""), http.StatusBadRequest, nil)
	a.mustDo(t, admin(http.MethodPost, "/v1/orders/12345/cancel", ""), http.StatusNotFound, nil)
	if got := a.remaining(t, "sku-c"); got != 0 {
		t.Fatalf("remaining after refused cancels = %d; want 0", got)
	}

	var c orderBody
	a.mustDo(t, admin(http.MethodPost, path, ""), http.StatusOK, &c)
	if c.OrderID != first.OrderID || c.Status != "cancelled" {
		t.Errorf("cancel = %+v; want order %s cancelled", c, first.OrderID)
	}
	a.mustDo(t, admin(http.MethodPost, path, ""), http.StatusOK, &c) // again: the same answer
	if got := a.remaining(t, "sku-c"); got != 1 {
		t.Errorf("remaining after cancelling twice = %d; want 1 (returned once)", got)
	}
	var read orderBody
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/orders/" + first.OrderID, user: "alice"}, http.StatusOK, &read)
	if read.Status != "cancelled" {
		t.Errorf("GET the cancelled order = %+v; want status cancelled", read)
	}
	// The unit sells again; alice's allowance came back with it.
	a.mustDo(t, purchase("sku-c", "alice", `{"request_id":"r2"}`), http.StatusCreated, nil)
	a.mustDo(t, purchase("sku-c", "carol", ""), http.StatusConflict, nil)

	// The store sees the cancellation: no difference once flushed.
	testutil.WaitFor(t, 10*time.Second, func() bool { return a.n.Pending() == 0 })
	var rep struct {
		Differences int `json:"differences"`
	}
	a.mustDo(t, admin(http.MethodGet, "/v1/admin/reconcile", ""), http.StatusOK, &rep)
	if rep.Differences != 0 {
		t.Errorf("reconcile after a cancel = %+v; want no differences", rep)
	}
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/orders/" + first.OrderID, user: "alice"}, http.StatusOK, &read)
	if read.Status != "cancelled" || read.Persisted == nil || !*read.Persisted {
		t.Errorf("GET the cancelled order after the flush = %+v; want cancelled and persisted", read)
	}

	// End the sale: purchases are refused, the orders stand.
	a.createItem(t, `{"id":"sku-e","stock":5}`)
	a.mustDo(t, purchase("sku-e", "dave", ""), http.StatusCreated, nil)
	a.mustDo(t, req{method: http.MethodPost, path: "/v1/items/sku-e/end", user: "dave"}, http.StatusUnauthorized, nil)
	a.mustDo(t, admin(http.MethodPost, "/v1/items/nope/end", ""), http.StatusNotFound, nil)
	var ended itemBody
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-e/end", ""), http.StatusOK, &ended)
	if ended.EndsAt == nil || ended.EndsAt.After(time.Now()) || ended.Status == "on_sale" || ended.Remaining != 4 {
		t.Errorf("end sale = %+v; want an end at or before now, not on sale, 4 remaining", ended)
	}
	a.mustDo(t, purchase("sku-e", "erin", ""), http.StatusForbidden, nil)
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-e/end", ""), http.StatusOK, nil) // again: nothing changes
	if got := a.remaining(t, "sku-e"); got != 4 {
		t.Errorf("remaining after the end = %d; want 4", got)
	}
}
