package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	httpapi "github.com/flashstock/flashstock/http"
)

// TestServerAuthFailureLimit: failed authentications are counted per client
// IP; past the limit the IP gets 429 before its credential is checked (a
// valid one too), on shopper and admin routes alike, and other IPs are
// unaffected.
func TestServerAuthFailureLimit(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":100,"per_user_limit":100}`)
	c := apiConfig()
	c.RateAuthFail = 1 // burst 2
	h := newHandler(t, a.n, c)
	const attacker, other = "198.51.100.7:4000", "198.51.100.8:4000"
	bad := []req{
		{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: "not.a.jwt", remote: attacker},
		{method: http.MethodGet, path: "/v1/cluster/status", bearer: "wrong-admin-token-000000", remote: attacker},
	}
	for _, r := range bad {
		checkError(t, r, serve(h, r), http.StatusUnauthorized, "unauthenticated")
	}
	for _, r := range append(bad,
		req{method: http.MethodGet, path: "/v1/cluster/status", bearer: adminToken, remote: attacker},
		req{method: http.MethodGet, path: "/v1/orders/1", bearer: adminToken, remote: attacker},
		req{method: http.MethodPost, path: "/v1/items/sku/purchase", user: "alice", remote: attacker}) {
		rec := serve(h, r)
		checkError(t, r, rec, http.StatusTooManyRequests, "rate_limited")
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", r)
		}
	}
	// Another address, and reads that need no identity, are unaffected.
	serveOK(t, h, req{method: http.MethodGet, path: "/v1/cluster/status", bearer: adminToken, remote: other}, http.StatusOK)
	serveOK(t, h, req{method: http.MethodPost, path: "/v1/items/sku/purchase", user: "bob", remote: other}, http.StatusCreated)
	serveOK(t, h, req{method: http.MethodGet, path: "/v1/items/sku", remote: attacker}, http.StatusOK)
	// Successes take nothing from the bucket.
	for i := 0; i < 20; i++ {
		serveOK(t, h, req{method: http.MethodGet, path: "/v1/cluster/status", bearer: adminToken, remote: other}, http.StatusOK)
	}
	if got := metricValue(t, h, "flashstock_http_auth_failures_total"); got != 2 {
		t.Errorf("flashstock_http_auth_failures_total = %v; want 2", got)
	}
}

func serveOK(t *testing.T, h http.Handler, r req, want int) {
	t.Helper()
	if rec := serve(h, r); rec.Code != want {
		t.Fatalf("%v = %d %s; want %d", r, rec.Code, rec.Body, want)
	}
}

func metricValue(t *testing.T, h http.Handler, name string) float64 {
	t.Helper()
	rec := serve(h, req{method: http.MethodGet, path: "/metrics"})
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		var v float64
		if strings.HasPrefix(line, name+" ") {
			if _, err := fmt.Sscanf(line[len(name)+1:], "%g", &v); err == nil {
				return v
			}
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestServerMetricsElsewhere(t *testing.T) {
	a := newAPI(t)
	c := apiConfig()
	c.MetricsElsewhere = true
	h := newHandler(t, a.n, c)
	if rec := serve(h, req{method: http.MethodGet, path: "/metrics"}); rec.Code != http.StatusNotFound {
		t.Fatalf("GET /metrics with MetricsElsewhere = %d; want 404", rec.Code)
	}
	rec := serve(httpapi.MetricsHandler(a.n.Metrics), req{method: http.MethodGet, path: "/metrics"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "flashstock_http_requests_total") {
		t.Fatalf("MetricsHandler = %d; want the Prometheus text", rec.Code)
	}
}

func TestServerSaleWindowBounds(t *testing.T) {
	a := newAPI(t)
	for _, body := range []string{
		`{"id":"w1","stock":1,"starts_at":"0001-01-01T00:00:00Z"}`,
		`{"id":"w2","stock":1,"ends_at":"9999-12-31T00:00:00Z"}`,
		`{"id":"w3","stock":1,"starts_at":"1999-12-31T23:59:59Z"}`,
		`{"id":"w4","stock":1,"starts_at":"2026-01-01T00:00:00Z","ends_at":"2300-01-01T00:00:00Z"}`,
		`{"id":"w5","stock":1,"starts_at":"1677-09-21T00:00:00Z"}`,
	} {
		r := admin(http.MethodPost, "/v1/items", body)
		checkError(t, r, a.do(r), http.StatusBadRequest, "invalid_argument")
	}
	it := a.createItem(t, `{"id":"w6","stock":1,"starts_at":"2000-01-01T00:00:00Z","ends_at":"2200-01-01T00:00:00Z"}`)
	if it.StartsAt == nil || it.StartsAt.Year() != 2000 || it.EndsAt == nil || it.EndsAt.Year() != 2200 {
		t.Fatalf("w6 window = %v..%v; want 2000..2200", it.StartsAt, it.EndsAt)
	}
}

func TestServerRestockPastStockMax(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"full","stock":999999999}`)
	r := admin(http.MethodPost, "/v1/items/full/stock", `{"delta":2}`)
	checkError(t, r, a.do(r), http.StatusBadRequest, "invalid_argument")
	a.mustDo(t, admin(http.MethodPost, "/v1/items/full/stock", `{"delta":1}`), http.StatusOK, nil)
	if got := a.remaining(t, "full"); got != 1_000_000_000 {
		t.Fatalf("remaining = %d; want 1000000000", got)
	}
}

func TestServerStrictBodies(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":100,"per_user_limit":10}`)
	for _, r := range []req{
		purchase("sku", "u1", `{"quantity":1,"quantity":5}`),
		purchase("sku", "u1", `{"QUANTITY":3}`),
		purchase("sku", "u1", `{"quantity":1,"request_id":"r\u0031","quantity":5}`),
		admin(http.MethodPost, "/v1/items", `{"id":"x","stock":1,"stock":5}`),
		admin(http.MethodPost, "/v1/items", `{"ID":"x","stock":1}`),
		admin(http.MethodPost, "/v1/items/sku/stock", `{"Delta":5}`),
	} {
		checkError(t, r, a.do(r), http.StatusBadRequest, "invalid_argument")
	}
	if got := a.remaining(t, "sku"); got != 100 {
		t.Fatalf("remaining = %d; want 100 (nothing bought)", got)
	}
}

func TestServerReconcilePages(t *testing.T) {
	a := newAPI(t)
	var ids []string
	for i := 0; i < 7; i++ {
		id := fmt.Sprintf("r%02d", i)
		ids = append(ids, id)
		a.createItem(t, fmt.Sprintf(`{"id":%q,"stock":5}`, id))
	}
	type page struct {
		Items []struct {
			ItemID string `json:"item_id"`
		} `json:"items"`
		Next string `json:"next"`
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var p page
		rec := a.do(admin(http.MethodGet, "/v1/admin/reconcile?limit=3&after="+after, ""))
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Fatalf("reconcile page after %q = %d %s", after, rec.Code, rec.Body)
		}
		if len(p.Items) > 3 {
			t.Fatalf("page of %d items; want at most 3", len(p.Items))
		}
		for _, it := range p.Items {
			got = append(got, it.ItemID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("pages gave %v; want %v once each, in order", got, ids)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=bad%20id"} {
		r := admin(http.MethodGet, "/v1/admin/reconcile?"+q, "")
		checkError(t, r, a.do(r), http.StatusBadRequest, "invalid_argument")
	}
}
