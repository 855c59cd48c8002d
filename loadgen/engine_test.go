package loadgen

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/client/clienttest"
)

// fakeShop is a tiny, correct (unless told to have a bug) stock counter
// behind the Flashstock HTTP API: a target for testing the loadgen itself.
type fakeShop struct {
	shopOpts
	adminToken string

	mu struct {
		sync.Mutex
		items     map[string]*fakeItem
		orders    map[string]fakeOrder
		byRequest map[string]string // user \x00 request_id -> order ID
		held      map[string]int64  // item \x00 user -> units
		nextID    int64
		purchases int64
	}
}

// shopOpts shape a fakeShop.
type shopOpts struct {
	secret    []byte        // JWT shoppers when set, else X-User-ID
	bug       string        // "oversell", "no_dedup", "hide_sales", "double_count"
	shedEvery int           // every n-th purchase is shed: 503 with shedCode, Retry-After: 0
	shedCode  string        // "" is overloaded
	delay     time.Duration // purchases wait this long (or until cancelled)
}

type fakeItem struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Stock        int64     `json:"stock"`
	Remaining    int64     `json:"remaining"`
	Sold         int64     `json:"sold"`
	PerUserLimit int64     `json:"per_user_limit"`
	StartsAt     time.Time `json:"starts_at"`
	EndsAt       time.Time `json:"ends_at"`
	Status       string    `json:"status"`
}

type fakeOrder struct {
	OrderID   string `json:"order_id"`
	ItemID    string `json:"item_id"`
	UserID    string `json:"user_id"`
	Quantity  int64  `json:"quantity"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	Persisted bool   `json:"persisted"`
}

// newFakeShop starts a shop; the server is closed with the test.
func newFakeShop(t *testing.T, opts shopOpts) (*fakeShop, *httptest.Server) {
	t.Helper()
	s := &fakeShop{shopOpts: opts, adminToken: "admin-tok"}
	s.mu.items = make(map[string]*fakeItem)
	s.mu.orders = make(map[string]fakeOrder)
	s.mu.byRequest = make(map[string]string)
	s.mu.held = make(map[string]int64)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/items", s.create)
	mux.HandleFunc("GET /v1/items/{id}", s.item)
	mux.HandleFunc("POST /v1/items/{id}/purchase", s.purchase)
	mux.HandleFunc("GET /v1/orders/{id}", s.order)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": code}})
}

func (s *fakeShop) admin(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer "+s.adminToken
}

// user authenticates a shopper: "" if not.
func (s *fakeShop) user(r *http.Request) string {
	if s.secret == nil {
		return r.Header.Get("X-User-ID")
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	c, err := clienttest.VerifyJWT(s.secret, tok, time.Now())
	if err != nil {
		return ""
	}
	return c.Sub
}

func (s *fakeShop) create(w http.ResponseWriter, r *http.Request) {
	if !s.admin(r) {
		writeErr(w, http.StatusUnauthorized, "unauthenticated")
		return
	}
	var it fakeItem
	if err := json.NewDecoder(r.Body).Decode(&it); err != nil || it.ID == "" || it.Stock < 1 {
		writeErr(w, http.StatusBadRequest, "invalid_argument")
		return
	}
	if it.PerUserLimit == 0 {
		it.PerUserLimit = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.mu.items[it.ID]; ok {
		writeErr(w, http.StatusConflict, "item_exists")
		return
	}
	it.Remaining, it.Sold = it.Stock, 0
	s.mu.items[it.ID] = &it
	writeJSON(w, http.StatusCreated, it.view(time.Now()))
}

func (it fakeItem) view(now time.Time) fakeItem {
	switch {
	case now.Before(it.StartsAt):
		it.Status = "upcoming"
	case !now.Before(it.EndsAt):
		it.Status = "ended"
	case it.Remaining <= 0:
		it.Status = "sold_out"
	default:
		it.Status = "on_sale"
	}
	return it
}

func (s *fakeShop) item(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.mu.items[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "item_not_found")
		return
	}
	v := it.view(time.Now())
	if s.bug == "hide_sales" {
		v.Sold, v.Remaining = v.Sold/2, v.Stock-v.Sold/2
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *fakeShop) purchase(w http.ResponseWriter, r *http.Request) {
	user := s.user(r)
	if user == "" {
		writeErr(w, http.StatusUnauthorized, "unauthenticated")
		return
	}
	var body struct {
		Quantity  int64  `json:"quantity"`
		RequestID string `json:"request_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Quantity < 1 {
		writeErr(w, http.StatusBadRequest, "invalid_argument")
		return
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.purchases++
	if s.shedEvery > 0 && s.mu.purchases%int64(s.shedEvery) == 0 {
		w.Header().Set("Retry-After", "0")
		writeErr(w, http.StatusServiceUnavailable, cmp.Or(s.shedCode, "overloaded"))
		return
	}
	reqKey := user + "\x00" + body.RequestID
	if id, ok := s.mu.byRequest[reqKey]; ok && body.RequestID != "" && s.bug != "no_dedup" {
		writeJSON(w, http.StatusOK, s.mu.orders[id])
		return
	}
	it, ok := s.mu.items[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "item_not_found")
		return
	}
	if now := time.Now(); now.Before(it.StartsAt) || !now.Before(it.EndsAt) {
		writeErr(w, http.StatusForbidden, "not_on_sale")
		return
	}
	holdKey := it.ID + "\x00" + user
	if s.mu.held[holdKey]+body.Quantity > it.PerUserLimit {
		writeErr(w, http.StatusConflict, "limit_exceeded")
		return
	}
	if it.Remaining < body.Quantity && s.bug != "oversell" {
		writeErr(w, http.StatusConflict, "sold_out")
		return
	}
	sold := body.Quantity
	if s.bug == "double_count" {
		sold *= 2
	}
	it.Remaining -= sold
	it.Sold += sold
	s.mu.held[holdKey] += body.Quantity
	s.mu.nextID++
	o := fakeOrder{OrderID: strconv.FormatInt(s.mu.nextID, 10), ItemID: it.ID, UserID: user,
		Quantity: body.Quantity, Status: "confirmed", CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Persisted: true}
	s.mu.orders[o.OrderID] = o
	if body.RequestID != "" {
		s.mu.byRequest[reqKey] = o.OrderID
	}
	writeJSON(w, http.StatusCreated, o)
}

func (s *fakeShop) order(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.mu.orders[r.PathValue("id")]
	switch {
	case !ok:
		writeErr(w, http.StatusNotFound, "order_not_found")
	case !s.admin(r) && s.user(r) != o.UserID:
		writeErr(w, http.StatusForbidden, "forbidden")
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

// store returns an OrderStore over the shop's orders, dropping the ones for
// which drop is true.
func (s *fakeShop) store(drop func(id string) bool) clienttest.MemStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := clienttest.MemStore{Rows: make(map[string][]client.StoredOrder), Units: make(map[string]int64)}
	for id, o := range s.mu.orders {
		if drop(id) {
			continue
		}
		m.Rows[id] = []client.StoredOrder{{OrderID: id, ItemID: o.ItemID, UserID: o.UserID, Quantity: o.Quantity}}
		m.Units[o.ItemID] += o.Quantity
	}
	return m
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		shop shopOpts
		cfg  func(c *Config)
		// want* are exact purchase outcome counts; 0 skips.
		wantConfirmed, wantSoldOut, wantLimit int64
		wantFail                              string // "" for PASS
	}{
		{
			name: "crowd with shedding and replays",
			shop: shopOpts{shedEvery: 4},
			cfg: func(c *Config) {
				c.Scenario, c.Workers, c.Requests, c.Stock = ScenarioCrowd, 0, 150, 40
				c.ReplayFraction = 0.5
			},
			wantConfirmed: 40, wantSoldOut: 110,
		},
		{
			// 503 unavailable is sale's definite "not applied": retried,
			// and never an unknown outcome.
			name: "crowd shed as unavailable",
			shop: shopOpts{shedEvery: 3, shedCode: "unavailable"},
			cfg: func(c *Config) {
				c.Scenario, c.Workers, c.Requests, c.Stock = ScenarioCrowd, 0, 100, 30
			},
			wantConfirmed: 30, wantSoldOut: 70,
		},
		{
			name: "hot closed loop with JWT",
			shop: shopOpts{secret: []byte("jwt-secret")},
			cfg: func(c *Config) {
				c.AuthSecret, c.Requests, c.Stock, c.ReplayFraction = "jwt-secret", 200, 50, 1
			},
			wantConfirmed: 50, wantSoldOut: 150,
		},
		{
			name: "many items open loop",
			cfg: func(c *Config) {
				c.Scenario, c.Items, c.Workers, c.Rate, c.Requests, c.Stock = ScenarioMany, 3, 0, 3000, 300, 30
			},
			wantConfirmed: 90, wantSoldOut: 210,
		},
		{
			name: "browse then buy twice",
			cfg: func(c *Config) {
				c.Scenario, c.Workers, c.Rate, c.Requests, c.Stock = ScenarioBrowse, 0, 1000, 40, 100
				c.PageViews, c.BuysPerUser = 2, 2
			},
			wantConfirmed: 40, wantLimit: 40,
		},
		{
			name:     "server oversells",
			shop:     shopOpts{bug: "oversell"},
			cfg:      func(c *Config) { c.Requests, c.Stock = 60, 20 },
			wantFail: "oversold",
		},
		{
			name:     "server ignores request_id",
			shop:     shopOpts{bug: "no_dedup"},
			cfg:      func(c *Config) { c.Requests, c.Stock, c.ReplayFraction = 30, 100, 1 },
			wantFail: "request_id",
		},
		{
			name:     "server loses confirmed sales",
			shop:     shopOpts{bug: "hide_sales"},
			cfg:      func(c *Config) { c.Requests, c.Stock, c.VerifyTimeout = 30, 100, 400*time.Millisecond },
			wantFail: "confirmed orders lost",
		},
		{
			name:     "server sells more than it confirms",
			shop:     shopOpts{bug: "double_count"},
			cfg:      func(c *Config) { c.Requests, c.Stock = 30, 100 },
			wantFail: "sold without a confirmation",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop, srv := newFakeShop(t, tt.shop)
			cfg := LoopbackConfig(srv.URL)
			cfg.Create, cfg.AdminToken, cfg.VerifyOrders = true, shop.adminToken, 10
			cfg.MaxInFlight = 1000 // room for every arrival: exact counts even on a slow machine
			tt.cfg(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var progress strings.Builder
			rep, err := Run(ctx, cfg, Deps{Progress: &progress})
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			if rep.Verify == nil {
				t.Fatal("Run() report has no verdict")
			}
			var table strings.Builder
			if err := rep.WriteTable(&table); err != nil {
				t.Fatalf("WriteTable() = %v", err)
			}
			if tt.wantFail != "" {
				if rep.Passed() || !strings.Contains(strings.Join(rep.Verify.Problems, "\n"), tt.wantFail) {
					t.Fatalf("verdict pass %v, problems %q; want FAIL mentioning %q\n%s", rep.Verify.Pass, rep.Verify.Problems, tt.wantFail, table.String())
				}
				if !strings.Contains(table.String(), "verify: FAIL") {
					t.Errorf("table does not say FAIL:\n%s", table.String())
				}
				return
			}
			if !rep.Passed() {
				t.Fatalf("verdict FAIL %q; want PASS\n%s", rep.Verify.Problems, table.String())
			}
			// A purchase whose every send went unanswered (a timeout on a
			// loaded machine) stays unknown: it may be any of the others.
			by := rep.Purchases.ByOutcome
			slack := rep.UnknownPurchases
			for _, w := range []struct {
				o    client.Outcome
				want int64
			}{{client.OutcomeConfirmed, tt.wantConfirmed}, {client.OutcomeSoldOut, tt.wantSoldOut}, {client.OutcomeLimitExceeded, tt.wantLimit}} {
				if got := by[w.o.String()]; w.want != 0 && (got > w.want || got < w.want-slack) {
					t.Errorf("purchases %s = %d; want %d (%d unknown)\n%s", w.o, got, w.want, slack, table.String())
				}
			}
			if rep.Verify.OrdersChecked == 0 {
				t.Errorf("OrdersChecked = 0; want sampled orders read back")
			}
			// A shed answer is definite: only a send left without an answer
			// (a timeout on a loaded machine) makes a purchase unknown.
			noAnswer := rep.Requests.ByOutcome["timeout"] + rep.Requests.ByOutcome["net_error"]
			if shed := cmp.Or(tt.shop.shedCode, "overloaded"); tt.shop.shedEvery > 0 &&
				(rep.Retries == 0 || rep.Requests.ByOutcome[shed] == 0 || (noAnswer == 0 && rep.UnknownPurchases != 0)) {
				t.Errorf("retries %d, %s %d, unknown purchases %d (%d sends unanswered); want retries and shed answers, no unknown outcome",
					rep.Retries, shed, rep.Requests.ByOutcome[shed], rep.UnknownPurchases, noAnswer)
			}
			if s := rep.Latency["all"]; s.Count != uint64(rep.Requests.Total) || s.P50Us > s.P99Us || s.P99Us > s.MaxUs {
				t.Errorf("latency all = %+v with %d requests; want count equal and p50 <= p99 <= max", s, rep.Requests.Total)
			}
			if !strings.Contains(table.String(), "verify: PASS") {
				t.Errorf("table does not say PASS:\n%s", table.String())
			}
			var js strings.Builder
			if err := rep.WriteJSON(&js); err != nil || !json.Valid([]byte(js.String())) {
				t.Errorf("WriteJSON() = %v, valid %v", err, json.Valid([]byte(js.String())))
			}
		})
	}
}

func TestRunStopsOnTime(t *testing.T) {
	// A server that never answers: every request times out, and the run
	// still ends shortly after its duration.
	shop, srv := newFakeShop(t, shopOpts{delay: time.Minute})
	cfg := LoopbackConfig(srv.URL)
	cfg.Create, cfg.AdminToken, cfg.Verify = true, shop.adminToken, false
	cfg.Scenario, cfg.Workers = ScenarioCrowd, 0
	cfg.Requests, cfg.Duration, cfg.ArrivalWindow, cfg.RequestTimeout = 20, 300*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg, Deps{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if el := time.Since(start); el > cfg.Duration+cfg.RequestTimeout+time.Second {
		t.Errorf("Run() took %v; want at most duration + timeout + 1s", el)
	}
	if rep.Requests.ByOutcome["timeout"] == 0 || rep.UnknownPurchases != rep.Purchases.Total || rep.Retries == 0 {
		t.Errorf("timeouts %d, unknown %d of %d purchases, retries %d; want timeouts, all unknown, retries",
			rep.Requests.ByOutcome["timeout"], rep.UnknownPurchases, rep.Purchases.Total, rep.Retries)
	}
}

func TestRunDropsWhenFull(t *testing.T) {
	// Open loop against a slow server with room for 2 shoppers: arrivals
	// beyond that are dropped, not queued, and the schedule holds.
	shop, srv := newFakeShop(t, shopOpts{delay: 50 * time.Millisecond})
	cfg := LoopbackConfig(srv.URL)
	cfg.Create, cfg.AdminToken, cfg.Stock = true, shop.adminToken, 1000
	cfg.Workers, cfg.Rate, cfg.MaxInFlight, cfg.Requests = 0, 1000, 2, 100
	rep, err := Run(context.Background(), cfg, Deps{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if rep.Arrivals != 100 || rep.Dropped < 50 || rep.Purchases.Total != rep.Arrivals-rep.Dropped {
		t.Errorf("arrivals %d, dropped %d, purchases %d; want 100 arrivals, most dropped, the rest bought",
			rep.Arrivals, rep.Dropped, rep.Purchases.Total)
	}
	if rep.ElapsedS > 2 {
		t.Errorf("elapsed %.2fs; want about 0.1s of schedule plus one 50ms purchase", rep.ElapsedS)
	}
	// Open-loop latency counts from the due time: never below the server's delay.
	if p50 := rep.Latency["confirmed"].P50Us; p50 < 50_000 {
		t.Errorf("confirmed p50 = %dµs; want >= 50ms", p50)
	}
	if !rep.Passed() {
		t.Errorf("verdict FAIL %q; want PASS", rep.Verify.Problems)
	}
}

func TestRunInterrupted(t *testing.T) {
	shop, srv := newFakeShop(t, shopOpts{delay: 20 * time.Millisecond})
	cfg := LoopbackConfig(srv.URL)
	cfg.Create, cfg.AdminToken = true, shop.adminToken
	cfg.Requests, cfg.Duration = 1_000_000, time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg, Deps{})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Run() took %v after an interrupt at 200ms", el)
	}
	if rep.Verify == nil || !rep.Verify.Pass {
		t.Errorf("verdict %+v; want PASS (cancelled purchases count as unknown)", rep.Verify)
	}
}

func TestRunOrderStore(t *testing.T) {
	tests := []struct {
		name string
		drop func(id string) bool
		want string
	}{
		{"complete", func(string) bool { return false }, ""},
		{"lost an order", func(id string) bool { return id == "3" }, "missing from the order store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shop, srv := newFakeShop(t, shopOpts{})
			cfg := LoopbackConfig(srv.URL)
			cfg.Create, cfg.AdminToken, cfg.Requests, cfg.Stock = true, shop.adminToken, 20, 10
			cfg.VerifyTimeout = 500 * time.Millisecond
			st := &lazyStore{shop: shop, drop: tt.drop}
			rep, err := Run(context.Background(), cfg, Deps{OrderStore: st})
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			got := strings.Join(rep.Verify.Problems, "\n")
			if (tt.want == "") != rep.Passed() || !strings.Contains(got, tt.want) {
				t.Errorf("verdict pass %v, problems %q; want %q", rep.Passed(), rep.Verify.Problems, tt.want)
			}
		})
	}
}

// lazyStore reads the shop's orders at call time.
type lazyStore struct {
	shop *fakeShop
	drop func(string) bool
}

func (l *lazyStore) Orders(ctx context.Context, ids []string) (map[string][]client.StoredOrder, error) {
	return l.shop.store(l.drop).Orders(ctx, ids)
}

func (l *lazyStore) SoldUnits(ctx context.Context, items []string) (map[string]int64, error) {
	return l.shop.store(l.drop).SoldUnits(ctx, items)
}
