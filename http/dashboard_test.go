package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// fakeEngine serves items from a table the test changes; the other Engine
// methods are not used by the console (calling one panics on the nil
// embedded interface).
type fakeEngine struct {
	Engine
	mu    sync.Mutex
	items []sale.Item // sorted by ID
	recon orders.Reconciliation
}

func (f *fakeEngine) ListItems(_ context.Context, after string, limit int) ([]sale.Item, bool, []int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sale.Item
	for _, it := range f.items {
		if it.ID > after {
			out = append(out, it)
		}
	}
	if len(out) > limit {
		return out[:limit], true, []int{}, nil
	}
	return out, false, []int{}, nil
}

func (f *fakeEngine) Reconcile(context.Context) (orders.Reconciliation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.recon, nil
}

func (f *fakeEngine) sell(id string, units int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.items {
		if f.items[i].ID == id {
			f.items[i].Remaining -= units
		}
	}
}

type fakeNode struct {
	mu sync.Mutex
	cv ClusterView
}

func (n *fakeNode) Readiness() Readiness       { return Readiness{Ready: true, All: true} }
func (n *fakeNode) Status(context.Context) any { return nil }
func (n *fakeNode) ClusterView(context.Context) ClusterView {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cv
}

func (n *fakeNode) set(f func(*ClusterView)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.cv)
}

const testToken = "console-admin-token-0123456789"

type consoleFixture struct {
	s     *Server
	eng   *fakeEngine
	node  *fakeNode
	clock time.Time
}

func newConsoleFixture(t testing.TB) *consoleFixture {
	t.Helper()
	f := &consoleFixture{eng: &fakeEngine{}, node: &fakeNode{}, clock: time.Unix(1_800_000_000, 0)}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		f.eng.items = append(f.eng.items, sale.Item{ID: id, Name: "Item " + id, Stock: 1000, Remaining: 1000, PerUserLimit: 1})
	}
	f.node.cv = ClusterView{Node: "n0", Ready: true,
		Members: []MemberView{{ID: "n0", Role: "node", State: "alive", Leads: []int{0}}, {ID: "n1", Role: "node", State: "alive", Leads: []int{1}}},
		Shards: []ShardView{{ID: 0, Leader: "n0", Voters: []string{"n0", "n1"}, Term: 2, CommitIndex: 10, AppliedIndex: 8},
			{ID: 1, Leader: "n1", Voters: []string{"n0", "n1"}, Term: 2}},
		Breakers: map[string]string{}}
	cfg := DefaultConfig()
	cfg.AdminToken, cfg.TrustUserHeader = testToken, true
	s, err := New(cfg, f.eng, f.node, metrics.New(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.console.now = func() time.Time { return f.clock }
	f.s = s
	t.Cleanup(s.console.close)
	return f
}

// tick advances the fake clock by one sampling interval and samples.
func (f *consoleFixture) tick() {
	f.clock = f.clock.Add(consoleTick)
	f.s.console.tick()
}

func (f *consoleFixture) get(t *testing.T, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(rec, r)
	return rec
}

func (f *consoleFixture) doc(t *testing.T, path string) dashboardDoc {
	t.Helper()
	rec := f.get(t, path, testToken)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s = %d %s; want 200", path, rec.Code, rec.Body)
	}
	var d dashboardDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
	}
	return d
}

func TestConsolePageIsStaticAndLockedDown(t *testing.T) {
	f := newConsoleFixture(t)
	for _, tc := range []struct{ path, ctype string }{
		{"/console", "text/html"}, {"/console/", "text/html"},
		{"/console/app.js", "text/javascript"}, {"/console/app.css", "text/css"},
	} {
		rec := f.get(t, tc.path, "")
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s = %d %q; want 200 %s", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.ctype)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tc.path, csp, want)
			}
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options = %q; want nosniff", tc.path, got)
		}
	}
	html := f.get(t, "/console", "").Body.String()
	// No inline script and nothing from elsewhere: every script and
	// stylesheet is one of ours.
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(m, `src="/console/`) {
			t.Errorf("console page has an inline or foreign script: %s", m)
		}
	}
	if strings.Contains(html, "http://") || strings.Contains(html, "https://") {
		t.Errorf("console page refers to another site")
	}
	js := f.get(t, "/console/app.js", "").Body.String()
	if strings.Contains(js, "innerHTML") || strings.Contains(js, "document.cookie") || strings.Contains(js, "localStorage") {
		t.Errorf("app.js uses innerHTML, cookies or local storage; it must render with textContent and keep the token in session storage")
	}
}

func TestConsoleRoutesNeedTheAdminToken(t *testing.T) {
	f := newConsoleFixture(t)
	for _, path := range []string{"/v1/admin/dashboard", "/v1/items"} {
		for _, tok := range []string{"", "wrong-token-0123456789abcdef"} {
			if rec := f.get(t, path, tok); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q = %d; want 401", path, tok, rec.Code)
			}
		}
		if rec := f.get(t, path, testToken); rec.Code != http.StatusOK {
			t.Errorf("GET %s as admin = %d %s; want 200", path, rec.Code, rec.Body)
		}
	}
}

func TestListItemsPages(t *testing.T) {
	f := newConsoleFixture(t)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("GET /v1/items never reached the last page")
		}
		rec := f.get(t, "/v1/items?limit=2&after="+after, testToken)
		var p itemsPage
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &p) != nil {
			t.Fatalf("GET /v1/items?limit=2&after=%s = %d %s", after, rec.Code, rec.Body)
		}
		for _, it := range p.Items {
			got = append(got, it.ID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if strings.Join(got, ",") != "a,b,c,d,e" {
		t.Errorf("paging GET /v1/items by 2 gave %v; want a..e once each, in order", got)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "after=%20bad"} {
		if rec := f.get(t, "/v1/items?"+q, testToken); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /v1/items?%s = %d; want 400", q, rec.Code)
		}
	}
}

func TestDashboardRatesAndSparklines(t *testing.T) {
	f := newConsoleFixture(t)
	// 10 units per tick on "b" is 20 units/s.
	for range 3 * sparkTicks {
		f.eng.sell("b", 10)
		f.tick()
	}
	d := f.doc(t, "/v1/admin/dashboard")
	if len(d.Items) != 5 {
		t.Fatalf("dashboard has %d items; want 5", len(d.Items))
	}
	b := d.Items[1]
	if b.ID != "b" || b.Rate != 20 || b.Sold != 300 || b.Status != "on_sale" {
		t.Errorf("item b = %+v; want 300 sold at 20 units/s", b)
	}
	if len(b.Spark) != sparkPoints || b.Spark[sparkPoints-1] != 20 || b.Spark[sparkPoints-2] != 20 || b.Spark[0] != -1 {
		t.Errorf("item b's sparkline ends %v; want 60 points, the last ones 20, the first without samples", b.Spark[sparkPoints-4:])
	}
	if a := d.Items[0]; a.Rate != 0 {
		t.Errorf("item a sells nothing; rate %v", a.Rate)
	}
	if d.Shards[0].Lag != 2 {
		t.Errorf("shard 0 lag = %d; want commit 10 - applied 8", d.Shards[0].Lag)
	}
	// Paging the dashboard's items.
	p := f.doc(t, "/v1/admin/dashboard?limit=2&after=b")
	if len(p.Items) != 2 || p.Items[0].ID != "c" || p.ItemsNext != "d" {
		t.Errorf("dashboard page after b, 2 items = %d items, next %q; want c, d and next d", len(p.Items), p.ItemsNext)
	}
}

func TestDashboardAlertsAndLeaderTimeline(t *testing.T) {
	f := newConsoleFixture(t)
	f.tick()
	if d := f.doc(t, "/v1/admin/dashboard"); len(d.Alerts) != 0 || len(d.LeaderChanges) != 0 {
		t.Fatalf("a healthy cluster shows alerts %v and leader changes %v; want none", d.Alerts, d.LeaderChanges)
	}
	// n1 dies: its shard has no leader for a moment, then n0 leads it.
	f.node.set(func(cv *ClusterView) {
		cv.Members[1].State = "dead"
		cv.Shards[1].Leader = ""
		cv.Breakers["127.0.0.1:9"] = "open"
	})
	f.tick()
	d := f.doc(t, "/v1/admin/dashboard")
	kinds := map[string]bool{}
	for _, a := range d.Alerts {
		kinds[a.Kind] = true
		if a.Severity != severityCritical && a.Severity != severityWarning {
			t.Errorf("alert %+v has no severity label", a)
		}
	}
	for _, k := range []string{"node_down", "no_leader", "circuit_open"} {
		if !kinds[k] {
			t.Errorf("alerts %v lack %s", d.Alerts, k)
		}
	}
	if d.Alerts[len(d.Alerts)-1].Severity != severityWarning {
		t.Errorf("alerts %v: want critical ones first", d.Alerts)
	}
	f.node.set(func(cv *ClusterView) { cv.Shards[1].Leader, cv.Shards[1].Term = "n0", 3 })
	f.tick()
	d = f.doc(t, "/v1/admin/dashboard")
	if len(d.LeaderChanges) != 2 || d.LeaderChanges[0].To != "n0" || d.LeaderChanges[0].Term != 3 || d.LeaderChanges[1].From != "n1" {
		t.Errorf("leader changes %+v; want n1 -> none, then none -> n0 (term 3), newest first", d.LeaderChanges)
	}
}

func TestDashboardOrderStoreAndReconcileAlerts(t *testing.T) {
	f := newConsoleFixture(t)
	// Orders wait on shard 0 and the watermark does not move.
	f.node.set(func(cv *ClusterView) { cv.Shards[0].Unflushed, cv.Shards[0].FlushedSeq = 40, 7 })
	f.eng.recon = orders.Reconciliation{Differences: 1, Items: []orders.ItemReconciliation{{ItemID: "c", RaftSold: 5, StoreSold: 3, Diff: 2}}}
	f.doc(t, "/v1/admin/dashboard") // a console is open: reconciliation runs
	for range int(storeStallMax/consoleTick) + 1 {
		f.tick()
	}
	// The first reconciliation may come before item c has been quiet for
	// 10 s: it is then shown as possibly in flight, and checked again
	// 30 s later.
	var d dashboardDoc
	var store, recon bool
	for i := 0; i < 400 && !recon; i++ {
		f.tick()
		d = f.doc(t, "/v1/admin/dashboard")
		store, recon = false, false
		for _, a := range d.Alerts {
			store = store || a.Kind == "order_store"
			recon = recon || (a.Kind == "reconcile" && strings.Contains(a.Message, "item c differs by 2"))
		}
		time.Sleep(time.Millisecond) // the reconciliation runs on its own goroutine
	}
	if !store || !recon {
		t.Errorf("alerts %v; want the order store stalled on shard 0 and item c's difference", d.Alerts)
	}
	if d.Reconcile == nil || d.Reconcile.Differences != 1 || len(d.Reconcile.Items) != 1 || !d.Reconcile.Items[0].Settled {
		t.Errorf("reconcile = %+v; want item c, settled", d.Reconcile)
	}
	if d.OrderStore.Unflushed != 40 {
		t.Errorf("order store unflushed = %d; want 40", d.OrderStore.Unflushed)
	}
	// The watermark moves: the stall alert goes.
	f.node.set(func(cv *ClusterView) { cv.Shards[0].FlushedSeq = 30 })
	f.tick()
	f.tick()
	d = f.doc(t, "/v1/admin/dashboard")
	for _, a := range d.Alerts {
		if a.Kind == "order_store" {
			t.Errorf("order store alert %q after the watermark moved", a.Message)
		}
	}
	if d.Shards[0].FlushRate <= 0 {
		t.Errorf("shard 0 flush rate = %v after the watermark moved; want > 0", d.Shards[0].FlushRate)
	}
}

// TestDashboardConcurrentReaders runs the real sampler loop while many
// consoles read (run with -race).
func TestDashboardConcurrentReaders(t *testing.T) {
	f := newConsoleFixture(t)
	f.s.console.now = time.Now
	f.s.console.start()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				f.eng.sell("a", 1)
				path := "/v1/admin/dashboard"
				if (i+j)%2 == 1 {
					path += "?limit=3"
				}
				rec := f.get(t, path, testToken)
				if rec.Code != http.StatusOK {
					t.Errorf("GET %s = %d", path, rec.Code)
					return
				}
				_, _ = io.Copy(io.Discard, rec.Body)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	f.s.console.close()
	f.s.console.close() // twice is fine
}

// benchFixture is a node with 50 items on 8 shards and 3 members: the
// shape of the figures in docs/benchmarks.md.
func benchFixture(b *testing.B) *consoleFixture {
	f := newConsoleFixture(b)
	f.eng.items = nil
	for i := range 50 {
		f.eng.items = append(f.eng.items, sale.Item{ID: "item-" + strconv.Itoa(100+i), Name: "An item", Stock: 1e6, Remaining: 1e6, PerUserLimit: 1})
	}
	f.node.cv.Members = append(f.node.cv.Members, MemberView{ID: "n2", Role: "node", State: "alive", Leads: []int{}})
	f.node.cv.Shards = nil
	for i := range 8 {
		f.node.cv.Shards = append(f.node.cv.Shards, ShardView{ID: i, Leader: "n" + strconv.Itoa(i%3), Voters: []string{"n0", "n1", "n2"}, Term: 2})
	}
	for range historyTicks { // a full history
		f.eng.sell("item-120", 7)
		f.tick()
	}
	return f
}

// BenchmarkConsoleTick is the sampler's cost per sample (twice a second,
// whether or not a console is open): reading and encoding 50 items with
// their sparklines, 8 shards and 3 members. The fakes cost next to nothing,
// so this is the console's own work; the node's ListItems and ClusterView
// add a copy of the item tables and a Raft stats read per shard.
func BenchmarkConsoleTick(b *testing.B) {
	f := benchFixture(b)
	b.ReportAllocs()
	for b.Loop() {
		f.eng.sell("item-120", 7)
		f.tick()
	}
}

// BenchmarkDashboardRequest is the cost of one console's refresh: an
// authenticated GET of the first page, served from the encoded sample.
func BenchmarkDashboardRequest(b *testing.B) {
	f := benchFixture(b)
	h := f.s.Handler()
	r := httptest.NewRequest(http.MethodGet, "/v1/admin/dashboard?limit=50", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			b.Fatalf("GET = %d", rec.Code)
		}
	}
	b.ReportMetric(float64(len(f.s.console.snap.Load().defaultPage)), "bytes/doc")
}

// TestConsoleExemptFromNodeRateLimit: a sale that saturates --rate-node
// must not blind the admin.
func TestConsoleExemptFromNodeRateLimit(t *testing.T) {
	f := newConsoleFixture(t)
	cfg := DefaultConfig()
	cfg.AdminToken, cfg.TrustUserHeader, cfg.RateNode = testToken, true, 1
	s, err := New(cfg, f.eng, f.node, metrics.New(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.console.close)
	f.s = s
	limited := 0
	for range 10 {
		if rec := f.get(t, "/v1/items", testToken); rec.Code == http.StatusTooManyRequests {
			limited++
		}
		for _, path := range []string{"/v1/admin/dashboard", "/console", "/console/app.js"} {
			if rec := f.get(t, path, testToken); rec.Code != http.StatusOK {
				t.Fatalf("GET %s under a saturated node rate limit = %d; want 200", path, rec.Code)
			}
		}
	}
	if limited == 0 {
		t.Errorf("GET /v1/items was never rate limited at 1/s; the test does not saturate the limit")
	}
}
