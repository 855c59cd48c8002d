package httpapi_test

import (
	"net/http"
	"testing"
)

// TestServerIdempotencyKeyHeader: a purchase's request ID may come as an
// Idempotency-Key header (what a proxy can see to resend it safely): the
// same key is the same purchase, with or without the body's request_id;
// a header and a body that disagree are refused and change nothing.
func TestServerIdempotencyKeyHeader(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku-k","stock":5,"per_user_limit":3}`)
	buy := func(body, key string) req {
		r := purchase("sku-k", "kim", body)
		r.key = key
		return r
	}
	var first, again, viaBody orderBody
	a.mustDo(t, buy("", "k-1"), http.StatusCreated, &first)
	if first.RequestID != "k-1" {
		t.Errorf("keyed purchase = %+v; want request_id k-1", first)
	}
	a.mustDo(t, buy("", "k-1"), http.StatusOK, &again) // resent by a proxy
	a.mustDo(t, buy(`{"request_id":"k-1"}`, ""), http.StatusOK, &viaBody)
	if again.OrderID != first.OrderID || viaBody.OrderID != first.OrderID {
		t.Errorf("resends = %s, %s; want the original order %s", again.OrderID, viaBody.OrderID, first.OrderID)
	}
	a.mustDo(t, buy(`{"request_id":"k-2"}`, "k-2"), http.StatusCreated, nil)
	a.mustDo(t, buy(`{"request_id":"k-3"}`, "k-9"), http.StatusBadRequest, nil)
	a.mustDo(t, buy("", "bad key with spaces"), http.StatusBadRequest, nil)
	if got := a.remaining(t, "sku-k"); got != 3 {
		t.Errorf("remaining = %d; want 3 (two purchases, the refused ones changed nothing)", got)
	}
}
