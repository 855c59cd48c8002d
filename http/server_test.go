package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flashstock/flashstock/actors/enginetest"
	httpapi "github.com/flashstock/flashstock/http"
	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
)

const adminToken = "admin-token-0123456789abcdef"

var secret = []byte("jwt-secret-0123456789abcdef0123")

// nodeView implements httpapi.Node over a store, as cmd/node does.
type nodeView struct{ s *raftstore.Store }

func (v nodeView) Readiness() httpapi.Readiness {
	r := httpapi.Readiness{Ready: v.s.Ready(), All: v.s.Ready()}
	for i := 0; i < v.s.Shards(); i++ {
		_, leader := v.s.Shard(i).Leader()
		r.Shards = append(r.Shards, httpapi.ShardReadiness{Shard: i, Leader: leader, Seat: true, Served: leader != ""})
	}
	return r
}

func (v nodeView) Status(context.Context) any {
	var shards []raftstore.ShardStatus
	for i := 0; i < v.s.Shards(); i++ {
		shards = append(shards, v.s.Shard(i).Status())
	}
	return map[string]any{"shards": shards}
}

func (v nodeView) ClusterView(context.Context) httpapi.ClusterView {
	cv := httpapi.ClusterView{Node: "node-1", Ready: v.s.Ready()}
	for i := 0; i < v.s.Shards(); i++ {
		st := v.s.Shard(i).Status()
		cv.Shards = append(cv.Shards, httpapi.ShardView{ID: st.ID, State: st.State, Leader: st.Leader, Voters: st.Voters,
			Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, Items: st.Items,
			Unflushed: st.Unflushed, FlushedSeq: st.FlushedSeq})
	}
	return cv
}

// api is the real server over a real single-node stack.
type api struct {
	n *enginetest.Node
	h http.Handler
}

func apiConfig() httpapi.Config {
	c := httpapi.DefaultConfig()
	c.AdminToken = adminToken
	c.AuthSecret = secret
	c.TrustUserHeader = true
	// Rate limits are off: these tests send many requests as one user.
	// TestServerRateLimit turns them on.
	c.RateNode, c.RateUser, c.RateIP, c.RateAuthFail = 0, 0, 0, 0
	return c
}

func newAPI(tb testing.TB) *api {
	tb.Helper()
	n := enginetest.NewNode(tb, enginetest.NodeOptions{})
	return &api{n: n, h: newHandler(tb, n, apiConfig())}
}

func newHandler(tb testing.TB, n *enginetest.Node, cfg httpapi.Config) http.Handler {
	tb.Helper()
	s, err := httpapi.New(cfg, n.Engine, nodeView{n.Store}, n.Metrics, testutil.Logger(tb))
	if err != nil {
		tb.Fatalf("httpapi.New: %v", err)
	}
	return s.Handler()
}

// req describes one request. Content-Type is application/json when there
// is a body, unless ctype says otherwise ("-" for none).
type req struct {
	method, path, body string
	ctype              string
	user               string // X-User-ID
	bearer             string // Authorization: Bearer
	chunked            bool   // no Content-Length
	remote             string // the client's address; "" means httptest's 192.0.2.1:1234
	key                string // Idempotency-Key
}

func (r req) String() string { return r.method + " " + r.path + " " + strconv.Quote(r.body) }

func serve(h http.Handler, r req) *httptest.ResponseRecorder {
	var body io.Reader = strings.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(strings.NewReader(r.body))
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	switch {
	case r.ctype == "-":
	case r.ctype != "":
		hr.Header.Set("Content-Type", r.ctype)
	case r.body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.user != "" {
		hr.Header.Set("X-User-ID", r.user)
	}
	if r.key != "" {
		hr.Header.Set("Idempotency-Key", r.key)
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return rec
}

func (a *api) do(r req) *httptest.ResponseRecorder { return serve(a.h, r) }

// mustDo sends r and fails unless the status is want; it decodes the body
// into out when out is not nil.
func (a *api) mustDo(tb testing.TB, r req, want int, out any) {
	tb.Helper()
	rec := a.do(r)
	if rec.Code != want {
		tb.Fatalf("%v = %d %s; want %d", r, rec.Code, rec.Body, want)
	}
	if out != nil {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			tb.Fatalf("%v: body %s: %v", r, rec.Body, err)
		}
	}
}

// checkError checks the error body shape and code.
func checkError(tb testing.TB, r req, rec *httptest.ResponseRecorder, status int, code string) {
	tb.Helper()
	if rec.Code != status {
		tb.Errorf("%v = %d %s; want %d %s", r, rec.Code, strings.TrimSpace(rec.Body.String()), status, code)
		return
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("%v: Content-Type = %q; want application/json", r, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil || len(top) != 1 || top["error"] == nil {
		tb.Errorf("%v: body = %s; want {\"error\":{...}} only", r, rec.Body)
		return
	}
	var inner map[string]any
	if err := json.Unmarshal(top["error"], &inner); err != nil || len(inner) != 2 {
		tb.Errorf("%v: error = %s; want exactly code and message", r, top["error"])
		return
	}
	if got, _ := inner["code"].(string); got != code {
		tb.Errorf("%v: error.code = %q; want %q", r, got, code)
	}
	if msg, _ := inner["message"].(string); msg == "" {
		tb.Errorf("%v: error.message is empty; want a message", r)
	}
}

type itemBody struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Stock        int64      `json:"stock"`
	Remaining    int64      `json:"remaining"`
	Sold         int64      `json:"sold"`
	PerUserLimit int32      `json:"per_user_limit"`
	StartsAt     *time.Time `json:"starts_at"`
	EndsAt       *time.Time `json:"ends_at"`
	Status       string     `json:"status"`
}

type orderBody struct {
	OrderID   string    `json:"order_id"`
	ItemID    string    `json:"item_id"`
	UserID    string    `json:"user_id"`
	Quantity  int32     `json:"quantity"`
	Status    string    `json:"status"`
	RequestID string    `json:"request_id"`
	CreatedAt time.Time `json:"created_at"`
	Persisted *bool     `json:"persisted"`
}

func admin(method, path, body string) req {
	return req{method: method, path: path, body: body, bearer: adminToken}
}

func purchase(item, user, body string) req {
	return req{method: http.MethodPost, path: "/v1/items/" + item + "/purchase", body: body, user: user}
}

func (a *api) createItem(tb testing.TB, body string) itemBody {
	tb.Helper()
	var it itemBody
	a.mustDo(tb, admin(http.MethodPost, "/v1/items", body), http.StatusCreated, &it)
	return it
}

func (a *api) remaining(tb testing.TB, id string) int64 {
	tb.Helper()
	it, err := a.n.Engine.Item(context.Background(), id)
	if err != nil {
		tb.Fatalf("Item(%q) = %v", id, err)
	}
	return it.Remaining
}

// token mints a JWT for sub.
func token(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("SignedString: %v", err)
	}
	return s
}

func shopperToken(tb testing.TB, sub string) string {
	return token(tb, jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))})
}

func TestServerHappyPaths(t *testing.T) {
	a := newAPI(t)
	starts := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	ends := starts.Add(24 * time.Hour)

	it := a.createItem(t, fmt.Sprintf(`{"id":"sku-1","name":"Phone","stock":10,"per_user_limit":2,"starts_at":%q,"ends_at":%q}`,
		starts.Format(time.RFC3339), ends.Format(time.RFC3339)))
	want := itemBody{ID: "sku-1", Name: "Phone", Stock: 10, Remaining: 10, Sold: 0, PerUserLimit: 2, Status: "on_sale"}
	if it.StartsAt == nil || !it.StartsAt.Equal(starts) || it.EndsAt == nil || !it.EndsAt.Equal(ends) {
		t.Errorf("POST /v1/items: window = %v..%v; want %v..%v", it.StartsAt, it.EndsAt, starts, ends)
	}
	it.StartsAt, it.EndsAt = nil, nil
	if it != want {
		t.Errorf("POST /v1/items = %+v; want %+v", it, want)
	}
	// per_user_limit defaults to 1; no window means always on sale.
	if d := a.createItem(t, `{"id":"sku-2","stock":3}`); d.PerUserLimit != 1 || d.StartsAt != nil || d.EndsAt != nil || d.Status != "on_sale" {
		t.Errorf("POST /v1/items with defaults = %+v; want per_user_limit 1, no window", d)
	}
	var got itemBody
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/items/sku-1"}, http.StatusOK, &got)
	if got.ID != "sku-1" || got.Remaining != 10 {
		t.Errorf("GET /v1/items/sku-1 = %+v; want remaining 10", got)
	}

	// Purchase: 201, then the same request id answers 200 with the same order.
	var o, again orderBody
	a.mustDo(t, purchase("sku-1", "alice", `{"quantity":2,"request_id":"req-1"}`), http.StatusCreated, &o)
	if o.ItemID != "sku-1" || o.UserID != "alice" || o.Quantity != 2 || o.Status != "confirmed" || o.RequestID != "req-1" || o.OrderID == "" || o.CreatedAt.IsZero() {
		t.Errorf("purchase = %+v; want a confirmed order of 2 for alice", o)
	}
	if _, err := strconv.ParseUint(o.OrderID, 10, 64); err != nil {
		t.Errorf("order_id = %q; want a decimal string", o.OrderID)
	}
	a.mustDo(t, purchase("sku-1", "alice", `{"quantity":2,"request_id":"req-1"}`), http.StatusOK, &again)
	if again.OrderID != o.OrderID {
		t.Errorf("retried purchase = order %s; want the original %s", again.OrderID, o.OrderID)
	}
	// An empty body buys one.
	var one orderBody
	a.mustDo(t, purchase("sku-1", "bob", ""), http.StatusCreated, &one)
	if one.Quantity != 1 {
		t.Errorf("purchase with an empty body = quantity %d; want 1", one.Quantity)
	}
	a.mustDo(t, purchase("sku-1", "carol", `{"quantity":1}`+"\n"), http.StatusCreated, nil)
	if got := a.remaining(t, "sku-1"); got != 6 {
		t.Errorf("remaining = %d; want 6", got)
	}

	// Orders: the buyer and the admin read it.
	path := "/v1/orders/" + o.OrderID
	for _, r := range []req{{method: http.MethodGet, path: path, user: "alice"}, {method: http.MethodGet, path: path, bearer: adminToken}} {
		var ob orderBody
		a.mustDo(t, r, http.StatusOK, &ob)
		if ob.OrderID != o.OrderID || ob.UserID != "alice" || ob.Persisted == nil {
			t.Errorf("%v = %+v; want order %s with persisted set", r, ob, o.OrderID)
		}
	}
	testutil.WaitFor(t, 10*time.Second, func() bool { return a.n.Pending() == 0 })
	var stored orderBody
	a.mustDo(t, req{method: http.MethodGet, path: path, user: "alice"}, http.StatusOK, &stored)
	if stored.Persisted == nil || !*stored.Persisted || !stored.CreatedAt.Equal(o.CreatedAt) || stored.Quantity != 2 {
		t.Errorf("GET %s after flush = %+v; want persisted, as confirmed %+v", path, stored, o)
	}

	// The buyer's order list: newest first, from Raft or the order store.
	var mine struct {
		Orders []orderBody `json:"orders"`
	}
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/users/me/orders", user: "alice"}, http.StatusOK, &mine)
	if len(mine.Orders) != 1 || mine.Orders[0].OrderID != o.OrderID {
		t.Errorf("GET /v1/users/me/orders as alice = %+v; want her one order %s", mine.Orders, o.OrderID)
	}
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/users/me/orders?limit=1", bearer: shopperToken(t, "nobody")}, http.StatusOK, &mine)
	if len(mine.Orders) != 0 {
		t.Errorf("GET /v1/users/me/orders as a user with none = %+v; want none", mine.Orders)
	}
	var rep struct {
		Items       []map[string]any `json:"items"`
		Differences int              `json:"differences"`
	}
	a.mustDo(t, admin(http.MethodGet, "/v1/admin/reconcile", ""), http.StatusOK, &rep)
	if rep.Differences != 0 || len(rep.Items) != 2 {
		t.Errorf("GET /v1/admin/reconcile after the flush = %+v; want 2 items, no differences", rep)
	}

	// Admin: restock, pause, resume.
	var rs itemBody
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-1/stock", `{"delta":5}`), http.StatusOK, &rs)
	if rs.Stock != 15 || rs.Remaining != 11 || rs.Sold != 4 {
		t.Errorf("restock +5 = %+v; want stock 15 remaining 11 sold 4", rs)
	}
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-1/stock", `{"delta":-11}`), http.StatusOK, &rs)
	if rs.Remaining != 0 || rs.Status != "sold_out" {
		t.Errorf("restock -11 = %+v; want remaining 0, sold_out", rs)
	}
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-1/stock", `{"delta":3}`), http.StatusOK, nil)
	var ps itemBody
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-1/pause", ""), http.StatusOK, &ps)
	if ps.Status != "paused" {
		t.Errorf("pause = status %q; want paused", ps.Status)
	}
	a.mustDo(t, admin(http.MethodPost, "/v1/items/sku-1/resume", ""), http.StatusOK, &ps)
	if ps.Status != "on_sale" {
		t.Errorf("resume = status %q; want on_sale", ps.Status)
	}

	// Operations.
	var health map[string]string
	a.mustDo(t, req{method: http.MethodGet, path: "/healthz"}, http.StatusOK, &health)
	if health["status"] != "ok" {
		t.Errorf("GET /healthz = %v; want status ok", health)
	}
	var ready httpapi.Readiness
	a.mustDo(t, req{method: http.MethodGet, path: "/readyz"}, http.StatusOK, &ready)
	if ready.Status != "ready" || !ready.All || len(ready.Shards) == 0 {
		t.Errorf("GET /readyz = %+v; want status ready with every shard", ready)
	}
	var status struct {
		Shards []raftstore.ShardStatus `json:"shards"`
	}
	a.mustDo(t, admin(http.MethodGet, "/v1/cluster/status", ""), http.StatusOK, &status)
	if len(status.Shards) != 2 || status.Shards[0].State != "Leader" {
		t.Errorf("GET /v1/cluster/status = %+v; want two led shards", status)
	}
	rec := a.do(req{method: http.MethodGet, path: "/metrics"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "flashstock_http_requests_total") || !strings.Contains(rec.Body.String(), `flashstock_purchases_total{outcome="confirmed"}`) {
		t.Errorf("GET /metrics = %d; want 200 with the request and purchase counters", rec.Code)
	}
}

func TestServerErrors(t *testing.T) {
	a := newAPI(t)
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a.createItem(t, `{"id":"sku","stock":10,"per_user_limit":2}`)
	a.createItem(t, `{"id":"one","stock":1}`)
	a.createItem(t, fmt.Sprintf(`{"id":"later","stock":5,"starts_at":%q}`, later))
	a.createItem(t, `{"id":"paused","stock":5}`)
	a.mustDo(t, admin(http.MethodPost, "/v1/items/paused/pause", ""), http.StatusOK, nil)
	a.mustDo(t, purchase("sku", "at-limit", `{"quantity":2}`), http.StatusCreated, nil)
	a.mustDo(t, purchase("one", "first", ""), http.StatusCreated, nil)
	var o orderBody
	a.mustDo(t, purchase("sku", "owner", `{"request_id":"r-1"}`), http.StatusCreated, &o)

	items := []string{"sku", "one", "later", "paused"}
	before := map[string]int64{}
	for _, id := range items {
		before[id] = a.remaining(t, id)
	}

	hour := time.Hour
	claims := func(sub string, exp time.Duration) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp))}
	}
	long := strings.Repeat("x", 65)
	big := `{"request_id":"` + strings.Repeat("a", 5000) + `"}`
	orderPath := "/v1/orders/" + o.OrderID
	tests := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		// Routing.
		{"unknown route", req{method: http.MethodGet, path: "/v1/nope"}, 404, "not_found"},
		{"wrong method", req{method: http.MethodDelete, path: "/v1/items/sku"}, 405, "method_not_allowed"},

		// GET /v1/items/:id
		{"get: bad id", req{method: http.MethodGet, path: "/v1/items/bad!id"}, 400, "invalid_argument"},
		{"get: long id", req{method: http.MethodGet, path: "/v1/items/" + long}, 400, "invalid_argument"},
		{"get: unknown item", req{method: http.MethodGet, path: "/v1/items/nope"}, 404, "item_not_found"},

		// POST /v1/items/:id/purchase: input.
		{"purchase: bad item id", purchase("bad!id", "u1", ""), 400, "invalid_argument"},
		{"purchase: long item id", purchase(long, "u1", ""), 400, "invalid_argument"},
		{"purchase: quantity 0", purchase("sku", "u1", `{"quantity":0}`), 400, "invalid_argument"},
		{"purchase: quantity -1", purchase("sku", "u1", `{"quantity":-1}`), 400, "invalid_argument"},
		{"purchase: quantity 1001", purchase("sku", "u1", `{"quantity":1001}`), 400, "invalid_argument"},
		{"purchase: quantity over the item's limit", purchase("sku", "u1", `{"quantity":3}`), 400, "invalid_argument"},
		{"purchase: quantity overflows int32", purchase("sku", "u1", `{"quantity":4294967297}`), 400, "invalid_argument"},
		{"purchase: quantity as string", purchase("sku", "u1", `{"quantity":"1"}`), 400, "invalid_argument"},
		{"purchase: fractional quantity", purchase("sku", "u1", `{"quantity":1.5}`), 400, "invalid_argument"},
		{"purchase: bad request_id", purchase("sku", "u1", `{"request_id":"has space"}`), 400, "invalid_argument"},
		{"purchase: long request_id", purchase("sku", "u1", `{"request_id":"`+long+`"}`), 400, "invalid_argument"},
		{"purchase: unknown field", purchase("sku", "u1", `{"qty":1}`), 400, "invalid_argument"},
		{"purchase: malformed JSON", purchase("sku", "u1", `{"quantity":`), 400, "invalid_argument"},
		{"purchase: not an object", purchase("sku", "u1", `[1]`), 400, "invalid_argument"},
		{"purchase: trailing object", purchase("sku", "u1", `{"quantity":1} {"quantity":1}`), 400, "invalid_argument"},
		{"purchase: trailing garbage", purchase("sku", "u1", `{"quantity":1} x`), 400, "invalid_argument"},
		{"purchase: too large", purchase("sku", "u1", big), 413, "payload_too_large"},
		{"purchase: too large, chunked", req{method: http.MethodPost, path: "/v1/items/sku/purchase", body: big, user: "u1", chunked: true}, 413, "payload_too_large"},
		{"purchase: text/plain", req{method: http.MethodPost, path: "/v1/items/sku/purchase", body: `{"quantity":1}`, ctype: "text/plain", user: "u1"}, 415, "unsupported_media_type"},
		{"purchase: no content type", req{method: http.MethodPost, path: "/v1/items/sku/purchase", body: `{"quantity":1}`, ctype: "-", user: "u1"}, 415, "unsupported_media_type"},
		{"purchase: bad content type", req{method: http.MethodPost, path: "/v1/items/sku/purchase", body: `{"quantity":1}`, ctype: "application/json; =", user: "u1"}, 415, "unsupported_media_type"},

		// Identity.
		{"purchase: no credentials", purchase("sku", "", `{"quantity":1}`), 401, "unauthenticated"},
		{"purchase: bad X-User-ID", purchase("sku", "bad user", `{"quantity":1}`), 400, "invalid_argument"},
		{"purchase: garbage JWT", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: "not.a.jwt", user: "u1"}, 401, "unauthenticated"},
		{"purchase: expired JWT", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS256, secret, claims("u1", -hour))}, 401, "unauthenticated"},
		{"purchase: JWT without exp", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS256, secret, jwt.RegisteredClaims{Subject: "u1"})}, 401, "unauthenticated"},
		{"purchase: JWT wrong alg HS512", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS512, secret, claims("u1", hour))}, 401, "unauthenticated"},
		{"purchase: JWT alg none", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("u1", hour))}, 401, "unauthenticated"},
		{"purchase: JWT wrong key", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef"), claims("u1", hour))}, 401, "unauthenticated"},
		{"purchase: JWT bad subject", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS256, secret, claims("bad user", hour))}, 401, "unauthenticated"},
		{"purchase: JWT no subject", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: token(t, jwt.SigningMethodHS256, secret, claims("", hour))}, 401, "unauthenticated"},
		{"purchase: invalid JWT does not fall back to X-User-ID", req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: "garbage", user: "u1"}, 401, "unauthenticated"},

		// Business outcomes.
		{"purchase: unknown item", purchase("nope", "u1", ""), 404, "item_not_found"},
		{"purchase: sold out", purchase("one", "u1", ""), 409, "sold_out"},
		{"purchase: limit exceeded", purchase("sku", "at-limit", ""), 409, "limit_exceeded"},
		{"purchase: not started", purchase("later", "u1", ""), 403, "not_on_sale"},
		{"purchase: paused", purchase("paused", "u1", ""), 403, "not_on_sale"},

		// POST /v1/items
		{"create: no credentials", req{method: http.MethodPost, path: "/v1/items", body: `{"id":"n1","stock":1}`}, 401, "unauthenticated"},
		{"create: wrong admin token", req{method: http.MethodPost, path: "/v1/items", body: `{"id":"n1","stock":1}`, bearer: adminToken + "x"}, 401, "unauthenticated"},
		{"create: shopper JWT", req{method: http.MethodPost, path: "/v1/items", body: `{"id":"n1","stock":1}`, bearer: shopperToken(t, "u1")}, 401, "unauthenticated"},
		{"create: shopper header", req{method: http.MethodPost, path: "/v1/items", body: `{"id":"n1","stock":1}`, user: "u1"}, 401, "unauthenticated"},
		{"create: exists", admin(http.MethodPost, "/v1/items", `{"id":"sku","stock":1}`), 409, "item_exists"},
		{"create: bad id", admin(http.MethodPost, "/v1/items", `{"id":"bad id","stock":1}`), 400, "invalid_argument"},
		{"create: empty id", admin(http.MethodPost, "/v1/items", `{"stock":1}`), 400, "invalid_argument"},
		{"create: long name", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"name":"`+strings.Repeat("n", 257)+`"}`), 400, "invalid_argument"},
		{"create: no stock", admin(http.MethodPost, "/v1/items", `{"id":"n1"}`), 400, "invalid_argument"},
		{"create: negative stock", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":-1}`), 400, "invalid_argument"},
		{"create: huge stock", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1000000001}`), 400, "invalid_argument"},
		{"create: limit 0", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"per_user_limit":0}`), 400, "invalid_argument"},
		{"create: limit 1001", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"per_user_limit":1001}`), 400, "invalid_argument"},
		{"create: ends before starts", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"starts_at":"2030-01-02T00:00:00Z","ends_at":"2030-01-01T00:00:00Z"}`), 400, "invalid_argument"},
		{"create: bad time", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"starts_at":"tomorrow"}`), 400, "invalid_argument"},
		{"create: unknown field", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"price":5}`), 400, "invalid_argument"},
		{"create: malformed", admin(http.MethodPost, "/v1/items", `{"id":`), 400, "invalid_argument"},
		{"create: empty body", req{method: http.MethodPost, path: "/v1/items", ctype: "application/json", bearer: adminToken}, 400, "invalid_argument"},
		{"create: empty body, no content type", admin(http.MethodPost, "/v1/items", ``), 415, "unsupported_media_type"},
		{"create: trailing data", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1}{}`), 400, "invalid_argument"},
		{"create: text/plain", req{method: http.MethodPost, path: "/v1/items", body: `{"id":"n1","stock":1}`, ctype: "text/plain", bearer: adminToken}, 415, "unsupported_media_type"},
		{"create: too large", admin(http.MethodPost, "/v1/items", `{"id":"n1","stock":1,"name":"`+strings.Repeat("n", 5000)+`"}`), 413, "payload_too_large"},

		// POST /v1/items/:id/stock, pause, resume
		{"restock: no credentials", req{method: http.MethodPost, path: "/v1/items/sku/stock", body: `{"delta":1}`}, 401, "unauthenticated"},
		{"restock: zero", admin(http.MethodPost, "/v1/items/sku/stock", `{"delta":0}`), 400, "invalid_argument"},
		{"restock: missing", admin(http.MethodPost, "/v1/items/sku/stock", `{}`), 400, "invalid_argument"},
		{"restock: too big", admin(http.MethodPost, "/v1/items/sku/stock", `{"delta":1000000001}`), 400, "invalid_argument"},
		{"restock: below zero remaining", admin(http.MethodPost, "/v1/items/sku/stock", `{"delta":-1000}`), 400, "invalid_argument"},
		{"restock: unknown item", admin(http.MethodPost, "/v1/items/nope/stock", `{"delta":1}`), 404, "item_not_found"},
		{"restock: bad id", admin(http.MethodPost, "/v1/items/bad!id/stock", `{"delta":1}`), 400, "invalid_argument"},
		{"restock: unknown field", admin(http.MethodPost, "/v1/items/sku/stock", `{"delta":1,"x":1}`), 400, "invalid_argument"},
		{"pause: unknown item", admin(http.MethodPost, "/v1/items/nope/pause", ""), 404, "item_not_found"},
		{"pause: no credentials", req{method: http.MethodPost, path: "/v1/items/sku/pause"}, 401, "unauthenticated"},
		{"resume: unknown item", admin(http.MethodPost, "/v1/items/nope/resume", ""), 404, "item_not_found"},
		{"resume: shopper", req{method: http.MethodPost, path: "/v1/items/paused/resume", user: "u1"}, 401, "unauthenticated"},

		// GET /v1/orders/:id
		{"order: another user", req{method: http.MethodGet, path: orderPath, user: "u1"}, 404, "order_not_found"},
		{"order: another user's JWT", req{method: http.MethodGet, path: orderPath, bearer: shopperToken(t, "u1")}, 404, "order_not_found"},
		{"order: no credentials", req{method: http.MethodGet, path: orderPath}, 401, "unauthenticated"},
		{"order: not a number", req{method: http.MethodGet, path: "/v1/orders/abc", user: "owner"}, 400, "invalid_argument"},
		{"order: zero", req{method: http.MethodGet, path: "/v1/orders/0", user: "owner"}, 400, "invalid_argument"},
		{"order: negative", req{method: http.MethodGet, path: "/v1/orders/-1", user: "owner"}, 400, "invalid_argument"},
		{"order: too long", req{method: http.MethodGet, path: "/v1/orders/" + strings.Repeat("9", 21), user: "owner"}, 400, "invalid_argument"},
		{"order: unknown", req{method: http.MethodGet, path: "/v1/orders/12345", user: "owner"}, 404, "order_not_found"},
		{"order: unknown shard", req{method: http.MethodGet, path: "/v1/orders/18446744073709551615", bearer: adminToken}, 404, "order_not_found"},

		// GET /v1/users/me/orders
		{"my orders: no credentials", req{method: http.MethodGet, path: "/v1/users/me/orders"}, 401, "unauthenticated"},
		{"my orders: limit 0", req{method: http.MethodGet, path: "/v1/users/me/orders?limit=0", user: "owner"}, 400, "invalid_argument"},
		{"my orders: limit 101", req{method: http.MethodGet, path: "/v1/users/me/orders?limit=101", user: "owner"}, 400, "invalid_argument"},
		{"my orders: limit x", req{method: http.MethodGet, path: "/v1/users/me/orders?limit=x", user: "owner"}, 400, "invalid_argument"},

		// Admin reads.
		{"status: shopper", req{method: http.MethodGet, path: "/v1/cluster/status", user: "u1"}, 401, "unauthenticated"},
		{"reconcile: shopper", req{method: http.MethodGet, path: "/v1/admin/reconcile", bearer: shopperToken(t, "u1")}, 401, "unauthenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, tc.r, a.do(tc.r), tc.status, tc.code)
		})
	}

	// Bad input changed nothing.
	for _, id := range items {
		if got := a.remaining(t, id); got != before[id] {
			t.Errorf("remaining(%q) = %d after the error cases; want %d", id, got, before[id])
		}
	}
	for _, u := range []string{"u1", "bad user", ""} {
		for _, id := range items {
			if got := a.n.ShardOf(id).FSM().Bought(id, u); got != 0 {
				t.Errorf("Bought(%q, %q) = %d after rejected purchases; want 0", id, u, got)
			}
		}
	}
	if _, err := a.n.Engine.Item(context.Background(), "n1"); err == nil {
		t.Errorf("item n1 exists after rejected creates; want none")
	}
}

// TestServerRejectsTrailingData: a body with anything but white space after
// the JSON object is invalid, and buys nothing.
func TestServerRejectsTrailingData(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":10,"per_user_limit":2}`)
	for _, body := range []string{
		`{"quantity":1} {"quantity":1}`,
		`{"quantity":1} x`,
		`{"quantity":1} 1`,
		`{"quantity":1}}`,
		`{"quantity":1}]`,
		`{"quantity":1}]]]`,
	} {
		t.Run(body, func(t *testing.T) {
			r := purchase("sku", "u1", body)
			checkError(t, r, a.do(r), 400, "invalid_argument")
		})
	}
	if got := a.remaining(t, "sku"); got != 10 {
		t.Errorf("remaining(%q) = %d after bodies with trailing data; want 10", "sku", got)
	}
}

// TestServerRequestIDScopedToItem: request IDs are scoped to the user and
// the item, so reusing one for another item is a new purchase, wherever the
// two items are placed, and repeating it for the same item is not.
func TestServerRequestIDScopedToItem(t *testing.T) {
	a := newAPI(t)
	shards := a.n.Store.Shards()
	first := raftstoretest.ItemIDForShard("first", 0, shards)
	tests := []struct {
		name string
		item string
	}{
		{"same shard", raftstoretest.ItemIDForShard("same", 0, shards)},
		{"another shard", raftstoretest.ItemIDForShard("cross", 1, shards)},
	}
	a.createItem(t, `{"id":"`+first+`","stock":10}`)
	a.mustDo(t, purchase(first, "owner", `{"request_id":"r-1"}`), http.StatusCreated, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.createItem(t, `{"id":"`+tc.item+`","stock":10}`)
			a.mustDo(t, purchase(tc.item, "owner", `{"request_id":"r-1"}`), http.StatusCreated, nil)
			a.mustDo(t, purchase(tc.item, "owner", `{"request_id":"r-1"}`), http.StatusOK, nil)
			if got := a.remaining(t, tc.item); got != 9 {
				t.Errorf("remaining(%q) = %d; want 9 (one purchase, one replay)", tc.item, got)
			}
		})
	}
	if got := a.remaining(t, first); got != 9 {
		t.Errorf("remaining(%q) = %d; want 9", first, got)
	}
}

func TestServerJWTIdentity(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":10}`)
	tok := shopperToken(t, "jwt-user")
	var o orderBody
	a.mustDo(t, req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: tok, user: "header-user"}, http.StatusCreated, &o)
	if o.UserID != "jwt-user" {
		t.Errorf("purchase with a JWT for %q and X-User-ID %q = user %q; want the JWT subject", "jwt-user", "header-user", o.UserID)
	}
	path := "/v1/orders/" + o.OrderID
	a.mustDo(t, req{method: http.MethodGet, path: path, bearer: tok}, http.StatusOK, nil)
	a.mustDo(t, req{method: http.MethodGet, path: path, user: "jwt-user"}, http.StatusOK, nil)
	// The header identity and the JWT identity are the same shopper: the
	// per-user limit holds across both.
	checkError(t, req{}, a.do(purchase("sku", "jwt-user", "")), 409, "limit_exceeded")

	// With the header not trusted, only a JWT identifies a shopper.
	c := apiConfig()
	c.TrustUserHeader = false
	h := newHandler(t, a.n, c)
	r := purchase("sku", "someone", "")
	checkError(t, r, serve(h, r), 401, "unauthenticated")
	r = req{method: http.MethodPost, path: "/v1/items/sku/purchase", bearer: shopperToken(t, "someone")}
	if rec := serve(h, r); rec.Code != http.StatusCreated {
		t.Errorf("%v with a JWT on a server that ignores X-User-ID = %d %s; want 201", r, rec.Code, rec.Body)
	}
}

// notReady is a Node that serves one shard of two: fault injection for
// /readyz.
type notReady struct{ nodeView }

func (notReady) Readiness() httpapi.Readiness {
	return httpapi.Readiness{Ready: false, Shards: []httpapi.ShardReadiness{{Shard: 0, Seat: true}}}
}

// partlyReady is a Node that serves one shard of two.
type partlyReady struct{ nodeView }

func (partlyReady) Readiness() httpapi.Readiness {
	return httpapi.Readiness{Ready: true, Shards: []httpapi.ShardReadiness{{Shard: 0, Seat: true}, {Shard: 1, Leader: "n1", Seat: true, Served: true}}}
}

func TestServerUnavailable(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":10}`)

	s, err := httpapi.New(apiConfig(), a.n.Engine, notReady{nodeView{a.n.Store}}, a.n.Metrics, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	var body httpapi.Readiness
	rec := serve(s.Handler(), req{method: http.MethodGet, path: "/readyz"})
	if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != http.StatusServiceUnavailable || err != nil || body.Ready || body.Status != "not_ready" || len(body.Shards) != 1 {
		t.Errorf("GET /readyz on a node that is not ready = %d %s; want 503 with the shards", rec.Code, rec.Body)
	}
	// A node that serves some shards is ready; ?all=1 wants every one.
	partly, err := httpapi.New(apiConfig(), a.n.Engine, partlyReady{nodeView{a.n.Store}}, a.n.Metrics, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/readyz": http.StatusOK, "/readyz?all=1": http.StatusServiceUnavailable, "/readyz?all=0": http.StatusOK} {
		if rec := serve(partly.Handler(), req{method: http.MethodGet, path: path}); rec.Code != want {
			t.Errorf("GET %s on a node serving 1 shard of 2 = %d %s; want %d", path, rec.Code, rec.Body, want)
		}
	}

	// A closed engine answers 503 with Retry-After: the shopper retries
	// elsewhere; reads still work.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.n.Engine.Close(ctx); err != nil {
		t.Fatalf("Engine.Close = %v", err)
	}
	r := purchase("sku", "u1", "")
	rec = a.do(r)
	checkError(t, r, rec, http.StatusServiceUnavailable, "unavailable")
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("%v: Retry-After = %q; want %q", r, got, "1")
	}
	if got := a.remaining(t, "sku"); got != 10 {
		t.Errorf("remaining = %d; want 10", got)
	}
	a.mustDo(t, req{method: http.MethodGet, path: "/v1/items/sku"}, http.StatusOK, nil)
}

func TestServerRateLimit(t *testing.T) {
	a := newAPI(t)
	a.createItem(t, `{"id":"sku","stock":100,"per_user_limit":100}`)
	c := apiConfig()
	c.RateUser = 1 // burst 2
	h := newHandler(t, a.n, c)
	for i := 0; i < 2; i++ {
		if rec := serve(h, purchase("sku", "eager", "")); rec.Code != http.StatusCreated {
			t.Fatalf("purchase %d within the burst = %d %s; want 201", i, rec.Code, rec.Body)
		}
	}
	r := purchase("sku", "eager", "")
	rec := serve(h, r)
	checkError(t, r, rec, http.StatusTooManyRequests, "rate_limited")
	if got := rec.Header().Get("Retry-After"); got == "" {
		t.Errorf("%v: no Retry-After; want one", r)
	}
	// The limit is per shopper.
	if rec := serve(h, purchase("sku", "patient", "")); rec.Code != http.StatusCreated {
		t.Errorf("another shopper's purchase = %d %s; want 201", rec.Code, rec.Body)
	}
	if got := a.remaining(t, "sku"); got != 97 {
		t.Errorf("remaining = %d; want 97 (the limited purchase bought nothing)", got)
	}
}

func TestServerConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*httpapi.Config)
	}{
		{"no admin token", func(c *httpapi.Config) { c.AdminToken = "" }},
		{"short admin token", func(c *httpapi.Config) { c.AdminToken = "short" }},
		{"no shopper identity", func(c *httpapi.Config) { c.AuthSecret, c.TrustUserHeader = nil, false }},
		{"short secret", func(c *httpapi.Config) { c.AuthSecret = []byte("short") }},
		{"tiny body limit", func(c *httpapi.Config) { c.BodyLimit = 10 }},
		{"negative rate", func(c *httpapi.Config) { c.RateUser = -1 }},
		{"bad trusted proxy", func(c *httpapi.Config) { c.TrustedProxies = []string{"10.0.0.1"} }},
	}
	for _, tc := range tests {
		c := apiConfig()
		tc.change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil; want an error", tc.name)
		}
		if _, err := httpapi.New(c, nil, nil, nil, testutil.Logger(t)); err == nil {
			t.Errorf("%s: New() = nil error; want the validation error", tc.name)
		}
	}
}

// allowedStatus are the answers POST /v1/items/:id/purchase may give.
var allowedStatus = map[int]bool{201: true, 200: true, 400: true, 409: true, 413: true, 415: true, 403: true, 404: true, 503: true}

func FuzzPurchaseBody(f *testing.F) {
	for _, seed := range []struct{ body, ctype string }{
		{`{"quantity":1}`, "application/json"},
		{`{"quantity":2,"request_id":"r-1"}`, "application/json"},
		{``, "application/json"},
		{``, ""},
		{`{}`, "application/json; charset=utf-8"},
		{`{"quantity":0}`, "application/json"},
		{`{"quantity":1001}`, "application/json"},
		{`{"quantity":1000}`, "application/json"},
		{`{"qty":1}`, "application/json"},
		{`{"quantity":1}}`, "application/json"},
		{`{"quantity":1} {}`, "application/json"},
		{`{"quantity":`, "application/json"},
		{`null`, "application/json"},
		{`[]`, "application/json"},
		{`{"request_id":"bad id"}`, "application/json"},
		{`{"quantity":"1"}`, "application/json"},
		{`{"quantity":1}`, "text/plain"},
		{`{"quantity":1}`, ""},
		{strings.Repeat(" ", 5000), "application/json"},
	} {
		f.Add(seed.body, seed.ctype)
	}
	a := newAPI(f)
	a.createItem(f, `{"id":"fz","stock":1000000000,"per_user_limit":1000}`)
	var user atomic.Int64
	f.Fuzz(func(t *testing.T, body, ctype string) {
		r := req{method: http.MethodPost, path: "/v1/items/fz/purchase", body: body, ctype: ctype, user: fmt.Sprint("fz-", user.Add(1))}
		if ctype == "" {
			r.ctype = "-"
		}
		before := a.remaining(t, "fz")
		rec := a.do(r)
		after := a.remaining(t, "fz")
		if !allowedStatus[rec.Code] {
			t.Fatalf("%v (Content-Type %q) = %d %s; want one of 201 200 400 409 413 415 403 404 503", r, ctype, rec.Code, rec.Body)
		}
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%v = %d %s; want no 5xx", r, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusCreated {
			var o orderBody
			if err := json.Unmarshal(rec.Body.Bytes(), &o); err != nil || o.Quantity < 1 {
				t.Fatalf("%v = 201 %s; want an order", r, rec.Body)
			}
			if before-after != int64(o.Quantity) {
				t.Fatalf("%v = 201 for %d units; remaining went %d -> %d", r, o.Quantity, before, after)
			}
			return
		}
		if before != after {
			t.Fatalf("%v = %d; remaining went %d -> %d, want unchanged", r, rec.Code, before, after)
		}
		if rec.Code != http.StatusOK {
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%v = %d %s; want an error body", r, rec.Code, rec.Body)
			}
		}
	})
}

func BenchmarkPurchaseHandler(b *testing.B) {
	a := newAPI(b)
	a.createItem(b, `{"id":"bench","stock":1000000000}`)
	var user, failed atomic.Int64
	b.SetParallelism(64) // shoppers per CPU: enough to fill group-commit batches
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			hr := httptest.NewRequest(http.MethodPost, "/v1/items/bench/purchase", strings.NewReader(`{"quantity":1}`))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("X-User-ID", "b-"+strconv.FormatInt(user.Add(1), 10))
			rec := httptest.NewRecorder()
			a.h.ServeHTTP(rec, hr)
			if rec.Code != http.StatusCreated {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d purchases were not 201", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
}
