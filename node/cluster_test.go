package node_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/node"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
	"github.com/flashstock/flashstock/raftstore"
	flashsale "github.com/flashstock/flashstock/sale"
)

// These tests run whole nodes in one process on real TCP (127.0.0.1,
// ports chosen at run time), real Raft on disk, real memberlist and
// protoactor remoting. protoactor's cluster layer has data races of its
// own (shared/research/protoactor.md §6), so this package runs without
// -race.

const adminToken = "test-admin-token-0123456789"

func freeAddr(t testing.TB) string { return testutil.FreeAddr(t) }

type testCluster struct {
	t     *testing.T
	cfgs  []config.Config
	nodes []*node.Node
	dsns  []string
	logs  logs     // what each node logged (security_test.go)
	via   []string // HTTP addresses of gateways shoppers go through (gateway_test.go); empty: the nodes
}

// mysqlDSNs returns the test MariaDB databases, or nil; in CI they are
// required.
func mysqlDSNs(t *testing.T) []string {
	v := os.Getenv("FLASHSTOCK_TEST_MYSQL_DSNS")
	if v == "" {
		if os.Getenv("FLASHSTOCK_REQUIRE_MYSQL") == "1" {
			t.Fatal("FLASHSTOCK_TEST_MYSQL_DSNS is not set but FLASHSTOCK_REQUIRE_MYSQL=1")
		}
		return nil
	}
	return strings.Split(v, ",")
}

// newTestCluster starts n nodes that bootstrap together. With dsns they
// share a MySQL order store (each test uses fresh tables: see freshMySQL).
func newTestCluster(t *testing.T, n int, dsns []string) *testCluster {
	t.Helper()
	return newTestClusterWith(t, n, dsns, nil)
}

// newTestClusterWith is newTestCluster with each node's configuration
// changed by tune (nil: the defaults).
func newTestClusterWith(t *testing.T, n int, dsns []string, tune func(*config.Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, dsns: dsns}
	var seed string
	for i := 0; i < n; i++ {
		c := config.Default()
		c.Name = fmt.Sprintf("n%d", i)
		c.DataDir = t.TempDir()
		c.HTTPAddr, c.RaftAddr, c.GossipAddr, c.ActorAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
		if i == 0 {
			seed = c.GossipAddr
		} else {
			c.Join = []string{seed}
		}
		c.BootstrapExpect = n
		c.Shards = 4
		c.Replicas = 3
		c.GossipProfile = "local"
		c.HeartbeatTimeout = 400 * time.Millisecond
		c.DeadNodeGrace = 3 * time.Second
		c.AdminToken = adminToken
		c.TrustUserHeader = true
		c.RequestTimeout = 3 * time.Second
		c.OrdersDSN = dsns
		c.LogLevel = "warn"
		c.DiskReserveMB = 1 // a CI machine's disk may be nearly full
		secure(t, &c)       // the cluster's keys on (security_test.go)
		if tune != nil {
			tune(&c)
		}
		tc.cfgs = append(tc.cfgs, c)
	}
	tc.nodes = make([]*node.Node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range tc.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc.nodes[i], errs[i] = tc.start(i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start n%d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range tc.nodes {
			if nd != nil {
				nd.Kill()
			}
		}
	})
	tc.waitReady()
	return tc
}

// start starts node i. A port picked free may be taken before the node
// binds it (another test binary runs in parallel); then it picks new ones
// and tries again. The first node's gossip address is the others' seed and
// keeps its port.
func (tc *testCluster) start(i int) (*node.Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(tc.logs.writer(i), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", i)
	for attempt := 1; ; attempt++ {
		nd, err := node.Start(ctx, tc.cfgs[i], openMySQL, io.Discard, log)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return nd, err
		}
		c := &tc.cfgs[i]
		c.HTTPAddr, c.RaftAddr, c.ActorAddr = freeAddr(tc.t), freeAddr(tc.t), freeAddr(tc.t)
		if i > 0 {
			c.GossipAddr = freeAddr(tc.t)
		}
	}
}

func openMySQL(ctx context.Context, cfg config.Config) (orders.Sink, error) {
	mc := mysql.DefaultConfig()
	mc.DSNs, mc.Tables = cfg.OrdersDSN, cfg.OrderTables
	return mysql.Open(ctx, mc)
}

// restart starts node i again on its data dir.
func (tc *testCluster) restart(i int) {
	tc.t.Helper()
	nd, err := tc.start(i)
	if err != nil {
		tc.t.Fatalf("restart n%d: %v", i, err)
	}
	tc.nodes[i] = nd
}

// replicas returns the live nodes that hold a seat in item's shard, as
// its leader's configuration has them: a replica removed while it was away
// never hears of it and still thinks it has one. Without a leader, as each
// replica knows itself.
func (tc *testCluster) replicas(item string) []int {
	var servers []raftstore.Server
	if l := tc.leaderOf(item); l >= 0 {
		st := tc.nodes[l].Store()
		servers, _ = st.Shard(st.ShardFor(item)).Servers()
	}
	var out []int
	for _, i := range tc.live() {
		st := tc.nodes[i].Store()
		in := st.Shard(st.ShardFor(item)).InGroup()
		if servers != nil {
			in = slices.ContainsFunc(servers, func(s raftstore.Server) bool { return s.ID == tc.cfgs[i].Name })
		}
		if in {
			out = append(out, i)
		}
	}
	return out
}

func (tc *testCluster) live() []int {
	var out []int
	for i, nd := range tc.nodes {
		if nd != nil && nd.Ready() {
			out = append(out, i)
		}
	}
	return out
}

// waitReady waits until every running node sees a leader for every shard.
func (tc *testCluster) waitReady() {
	tc.t.Helper()
	if !eventually(30*time.Second, func() bool {
		for _, nd := range tc.nodes {
			if nd != nil && !nd.Readiness().All {
				return false
			}
		}
		return true
	}) {
		for i, nd := range tc.nodes {
			if nd != nil {
				tc.t.Logf("n%d readiness %+v", i, nd.Readiness())
			}
		}
		tc.t.Fatalf("cluster ready: not within 30s")
	}
}

// waitLeader waits up to 10 s for a leader of the item's shard (an
// election may be under way) and returns its index.
func (tc *testCluster) waitLeader(item string) int {
	tc.t.Helper()
	l := -1
	waitFor(tc.t, 10*time.Second, "a leader for "+item, func() bool { l = tc.leaderOf(item); return l >= 0 })
	return l
}

// leaderOf returns the index of the node leading the item's shard.
func (tc *testCluster) leaderOf(item string) int {
	for i, nd := range tc.nodes {
		if nd == nil {
			continue
		}
		sh := nd.Store().Shard(nd.Store().ShardFor(item))
		if sh.Ready() {
			return i
		}
	}
	return -1
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventually(timeout, cond) {
		t.Fatalf("%s: not within %v", what, timeout)
	}
}

// eventually polls cond every 20 ms and reports whether it held within
// timeout.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// describeShard renders every running node's view of one shard, for the
// message of a test that waited for a leader in vain.
func (tc *testCluster) describeShard(shard int) string {
	var b strings.Builder
	for i, nd := range tc.nodes {
		if nd == nil {
			fmt.Fprintf(&b, "n%d: stopped\n", i)
			continue
		}
		sh := nd.Store().Shard(shard)
		st := sh.Status()
		fmt.Fprintf(&b, "n%d: state=%s ready=%v term=%d leader=%q commit=%d applied=%d last_contact=%s voters=%v\n",
			i, st.State, sh.Ready(), st.Term, st.Leader, st.CommitIndex, st.AppliedIndex, st.LastContact, st.Voters)
	}
	return b.String()
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

type response struct {
	status int
	body   map[string]any
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

func (tc *testCluster) do(i int, method, path, user string, body any) (response, error) {
	return doAt(tc.cfgs[i].HTTPAddr, method, path, user, body)
}

// doAt sends a request to the node serving HTTP at addr.
func doAt(addr, method, path, user string, body any) (response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+addr+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if user == "admin" {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	} else if user != "" {
		req.Header.Set("X-User-ID", user)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
		return r, fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return r, nil
}

func (tc *testCluster) mustDo(i int, method, path, user string, body any, want int) map[string]any {
	tc.t.Helper()
	r, err := tc.do(i, method, path, user, body)
	if err != nil {
		tc.t.Fatal(err)
	}
	if r.status != want {
		tc.t.Fatalf("n%d %s %s = %d %v; want %d", i, method, path, r.status, r.body, want)
	}
	return r.body
}

// mustBuy buys one unit of item as user through node i, with a request
// ID: a leader that moves mid-request (an election, the balancer) answers
// 503, and the same request is sent again until it has its order, new
// (201) or remembered (200).
func (tc *testCluster) mustBuy(i int, item, user string) map[string]any {
	tc.t.Helper()
	var r response
	var err error
	if !eventually(15*time.Second, func() bool {
		r, err = tc.do(i, "POST", "/v1/items/"+item+"/purchase", user, map[string]any{"quantity": 1, "request_id": "buy"})
		return err == nil && r.status != 503
	}) || (r.status != 201 && r.status != 200) {
		tc.t.Fatalf("n%d buy %s as %s = %d %v %v; want 201 or 200", i, item, user, r.status, r.body, err)
	}
	return r.body
}

// checkReplicas checks that every live replica of the item's shard agrees
// on the remaining stock once replication settles, and returns it. The
// agreeing replicas must include the shard's ready leader: followers learn
// of the last commits up to CommitTimeout late, and while a leadership
// moves (the balancer after a partition heals) the leader may drop out of
// live() for a moment, leaving two followers that agree on a stale figure.
func (tc *testCluster) checkReplicas(item string) int64 {
	tc.t.Helper()
	var rem int64
	waitFor(tc.t, 10*time.Second, "replicas agree on "+item, func() bool {
		seen := map[int64]bool{}
		leader := false
		for _, i := range tc.replicas(item) {
			sh := tc.nodes[i].Store().Shard(tc.nodes[i].Store().ShardFor(item))
			r, ok := sh.FSM().Remaining(item)
			if !ok {
				return false
			}
			seen[r] = true
			rem = r
			leader = leader || sh.Ready()
		}
		return leader && len(seen) == 1
	})
	return rem
}

// sale is a recorded run of buyers against the cluster.
type sale struct {
	mu        sync.Mutex
	confirmed map[string]string // request key (user/request) -> order id
	byOrder   map[string]string // order id -> request key
	unknown   map[string]bool   // request keys whose outcome we never learned
	uncertain map[string]bool   // request keys that ever got an unknown outcome
	shed      map[string]string // request keys whose last answer was a definite 429/503 -> code
	last      time.Time         // last confirmation
	maxGap    time.Duration
	errs      []string
}

func newSale() *sale {
	return &sale{confirmed: map[string]string{}, byOrder: map[string]string{}, unknown: map[string]bool{},
		uncertain: map[string]bool{}, shed: map[string]string{}, last: time.Now()}
}

// count returns how many purchases were confirmed so far.
func (s *sale) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.confirmed)
}

// waitSales waits until more than n purchases are confirmed.
func (s *sale) waitSales(t *testing.T, what string, n int) {
	t.Helper()
	waitFor(t, 20*time.Second, what, func() bool { return s.count() > n })
}

func (s *sale) record(key string, r response, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.shed, key)
	switch {
	case err != nil || r.status >= 500 && !definite(r.code()):
		s.unknown[key], s.uncertain[key] = true, true
	case r.status == 503 || r.status == 429:
		// Shed before Raft: this attempt certainly did not buy.
		s.shed[key] = r.code()
	case r.status == 201 || r.status == 200:
		id := r.body["order_id"].(string)
		if prev, ok := s.confirmed[key]; ok && prev != id {
			s.errs = append(s.errs, fmt.Sprintf("request %s confirmed as %s and %s", key, prev, id))
		}
		if k, ok := s.byOrder[id]; ok && k != key {
			s.errs = append(s.errs, fmt.Sprintf("order %s given to %s and %s", id, k, key))
		}
		s.confirmed[key], s.byOrder[id] = id, key
		delete(s.unknown, key)
		now := time.Now()
		if gap := now.Sub(s.last); gap > s.maxGap {
			s.maxGap = gap
		}
		s.last = now
	case r.status == 409:
		if r.code() != "sold_out" && r.code() != "limit_exceeded" {
			s.errs = append(s.errs, fmt.Sprintf("request %s: 409 %s", key, r.code()))
		}
		delete(s.unknown, key)
	default:
		s.errs = append(s.errs, fmt.Sprintf("request %s: %d %v", key, r.status, r.body))
	}
}

// definite reports whether an API error code says the purchase certainly
// did not happen (sale's error table).
func definite(code string) bool {
	for _, c := range flashsale.Codes() {
		if c.API == code {
			return c.Definite
		}
	}
	return code == "rate_limited"
}

// targets returns the HTTP addresses shoppers use: the gateways when the
// test set tc.via, else the running nodes.
func (tc *testCluster) targets() []string {
	if len(tc.via) > 0 {
		return tc.via
	}
	var out []string
	for _, i := range tc.live() {
		out = append(out, tc.cfgs[i].HTTPAddr)
	}
	return out
}

// buy runs workers that buy item until stop, each request with its own
// request ID, spread over the nodes that are up, retrying unknown outcomes
// with the same request ID a few times, as the API asks. A definite
// refusal (overloaded, unavailable) is not retried, so that checkSale can
// verify it: such a purchase must not be in Raft.
func (tc *testCluster) buy(ctx context.Context, s *sale, item string, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				user := fmt.Sprintf("w%d-u%d", w, n)
				key := user + "/r"
				for try := 0; try < 5 && ctx.Err() == nil; try++ {
					addrs := tc.targets()
					if len(addrs) == 0 {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					addr := addrs[(w+n+try)%len(addrs)]
					r, err := doAt(addr, "POST", "/v1/items/"+item+"/purchase", user, map[string]any{"request_id": "r"})
					s.record(key, r, err)
					if err == nil && (r.status < 500 || definite(r.code())) {
						break
					}
					time.Sleep(time.Duration(20*(try+1)) * time.Millisecond)
				}
			}
		}()
	}
	return &wg
}

// settleUnknown retries every request whose outcome is unknown with the
// same request ID until each has a definite answer.
func (tc *testCluster) settleUnknown(s *sale, item string) {
	tc.t.Helper()
	s.mu.Lock()
	keys := make([]string, 0, len(s.unknown))
	for k := range s.unknown {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, key := range keys {
		user := strings.TrimSuffix(key, "/r")
		waitFor(tc.t, 15*time.Second, "definite answer for "+key, func() bool {
			r, err := doAt(tc.targets()[0], "POST", "/v1/items/"+item+"/purchase", user, map[string]any{"request_id": "r"})
			s.record(key, r, err)
			return err == nil && (r.status < 500 || definite(r.code()))
		})
	}
}

// checkSale checks the invariants: no request or order confirmed twice,
// sold == confirmed on every replica, and every confirmed order remembered
// by every replica (its request ID resolves to the same order).
func (tc *testCluster) checkSale(s *sale, item string, stock int64) {
	tc.t.Helper()
	tc.settleUnknown(s, item)
	for _, e := range s.errs {
		tc.t.Error(e)
	}
	rem := tc.checkReplicas(item)
	if sold := stock - rem; sold != int64(len(s.confirmed)) {
		tc.t.Fatalf("sold %d in Raft; %d confirmed to shoppers", sold, len(s.confirmed))
	}
	// A purchase answered with a definite refusal, and never with an
	// unknown outcome, certainly did not buy.
	for key, code := range s.shed {
		if s.uncertain[key] {
			continue
		}
		user := strings.TrimSuffix(key, "/r")
		for _, i := range tc.replicas(item) {
			if o, ok := tc.nodes[i].Store().Shard(tc.nodes[i].Store().ShardFor(item)).FSM().LookupRequest(item, user, "r"); ok {
				tc.t.Fatalf("request %s was answered 503 %s (definite: not applied), but n%d holds its order %d", key, code, i, o.ID)
			}
		}
	}
	for key, id := range s.confirmed {
		user := strings.TrimSuffix(key, "/r")
		for _, i := range tc.replicas(item) {
			o, ok := tc.nodes[i].Store().Shard(tc.nodes[i].Store().ShardFor(item)).FSM().LookupRequest(item, user, "r")
			if !ok || orders.FormatID(o.ID) != id {
				tc.t.Fatalf("n%d: request %s -> %v %v; want order %s", i, key, o.ID, ok, id)
			}
		}
	}
}

// checkNoPendingCalls checks that every purchase a node forwarded to an
// item's owner was answered or forgotten.
func (tc *testCluster) checkNoPendingCalls() {
	tc.t.Helper()
	for i, nd := range tc.nodes {
		if nd == nil {
			continue
		}
		if n := nd.Engine().PendingCalls(); n != 0 {
			tc.t.Errorf("n%d: %d purchase calls still waiting after the sale", i, n)
		}
	}
}

func TestClusterSaleSpreadOverNodes(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	const stock = 3000
	tc.mustDo(1, "POST", "/v1/items", "admin", map[string]any{"id": "spread", "stock": stock}, 201)
	// Every node sees the item (replicated or forwarded).
	for i := range tc.nodes {
		waitFor(t, 5*time.Second, "item visible", func() bool {
			r, err := tc.do(i, "GET", "/v1/items/spread", "", nil)
			return err == nil && r.status == 200
		})
	}
	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, "spread", 48)
	waitFor(t, 60*time.Second, "sold out", func() bool {
		r, err := tc.do(0, "GET", "/v1/items/spread", "", nil)
		return err == nil && r.body["remaining"].(float64) == 0
	})
	cancel()
	wg.Wait()
	tc.checkSale(s, "spread", stock)
	if len(s.confirmed) != stock {
		t.Fatalf("confirmed %d; want %d", len(s.confirmed), stock)
	}
	tc.checkNoPendingCalls()
	// Sold out answers come from every node's replica, no hop.
	for i := range tc.nodes {
		r, _ := tc.do(i, "POST", "/v1/items/spread/purchase", "late", nil)
		if r.status != 409 || r.code() != "sold_out" {
			t.Errorf("n%d late purchase = %d %s; want 409 sold_out", i, r.status, r.code())
		}
	}
}

// TestClusterReadYourOrderOnAnyNode buys on an idle cluster and reads the
// order back at once from every node. A follower learns that an entry is
// committed only with the leader's next AppendEntries (up to Raft's
// CommitTimeout later when writes are idle); it must wait for its replica
// rather than answer 404 for an order the shopper was just given.
func TestClusterReadYourOrderOnAnyNode(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "ryw", "stock": 100}, 201)
	for round := range 12 {
		user := fmt.Sprintf("ryw-%d", round)
		o := tc.mustBuy(round%3, "ryw", user)
		for i := range tc.nodes {
			got := tc.mustDo(i, "GET", "/v1/orders/"+o["order_id"].(string), user, nil, 200)
			if got["user_id"] != user {
				t.Fatalf("n%d: order %v; want user %s", i, got, user)
			}
		}
		time.Sleep(300 * time.Millisecond) // idle: no AppendEntries carries the commit index
	}
}

// TestClusterLeaderMovesMidSale moves the hot shard's leadership again and
// again while shoppers buy through every node. Each move stops the item
// actor on the old leader; purchases that reach it afterwards are dead
// letters, answered "not the leader" so that the caller tries the new
// owner. Nothing is oversold, lost or confirmed twice, and no forwarded
// call is left waiting.
func TestClusterLeaderMovesMidSale(t *testing.T) {
	// A short queue: while a leadership moves, retries meet full queues on
	// the new leader. Answering those "overloaded" after a first attempt
	// that may have committed told shoppers "not bought" for orders Raft
	// held; they must be told "unknown outcome".
	tc := newTestClusterWith(t, 3, nil, func(c *config.Config) { c.QueueMax = 8 })
	const stock = 1_000_000
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "moves", "stock": stock}, 201)
	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, "moves", 24)
	for moves := 0; moves < 5; {
		time.Sleep(400 * time.Millisecond)
		if l := tc.leaderOf("moves"); l >= 0 {
			st := tc.nodes[l].Store()
			if err := st.Shard(st.ShardFor("moves")).TransferLeadership("", ""); err == nil {
				moves++
			}
		}
	}
	time.Sleep(400 * time.Millisecond)
	cancel()
	wg.Wait()
	tc.checkSale(s, "moves", stock)
	if len(s.confirmed) == 0 {
		t.Fatal("nothing sold")
	}
	tc.checkNoPendingCalls()
	t.Logf("%d confirmed across 5 leadership moves; %d shed, %d unknown at first", len(s.confirmed), len(s.shed), len(s.uncertain))
}

// TestClusterBalanceSparesHotShard gathers every shard's leadership on n0
// while a sale runs. n0's reconciler then hands leaderships away to balance
// the cluster, one per balance interval, and moves idle shards first: the
// sale's shard keeps its leader, and its shoppers never wait for an
// election.
func TestClusterBalanceSparesHotShard(t *testing.T) {
	// Only the balancer may move the hot shard here: no slow-disk verdict
	// (fsyncs on a starved CI machine can pass 50 ms), and a leader lease
	// that a scheduling hiccup does not end.
	tc := newTestClusterWith(t, 3, nil, func(c *config.Config) {
		c.SlowDiskWrite = 0
		c.HeartbeatTimeout = time.Second
	})
	n0 := tc.nodes[0]
	// An item on shard 0: in shard order, the first a balancer would pick.
	item := "hotb"
	for i := 0; n0.Store().ShardFor(item) != 0; i++ {
		item = fmt.Sprint("hotb-", i)
	}
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": item, "stock": 1_000_000}, 201)
	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, item, 16)
	defer func() { cancel(); wg.Wait() }()
	id0, addr0 := tc.cfgs[0].Name, n0.Store().Addr()
	hot := 0
	for i := 0; i < n0.Store().Shards(); i++ {
		waitFor(t, 15*time.Second, fmt.Sprintf("n0 leads shard %d", i), func() bool {
			if n0.Store().Shard(i).Ready() {
				return true
			}
			for _, nd := range tc.nodes[1:] {
				if sh := nd.Store().Shard(i); sh.IsLeader() {
					_ = sh.TransferLeadership(id0, addr0)
				}
			}
			return false
		})
	}
	// n0 leads 4 of 4 shards, twice its share: two moves, 5 s apart.
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if !n0.Store().Shard(hot).IsLeader() {
			t.Fatalf("the hot shard %d was moved off n0 to balance leaders", hot)
		}
		time.Sleep(50 * time.Millisecond)
	}
	led := 0
	for i := 0; i < n0.Store().Shards(); i++ {
		if n0.Store().Shard(i).IsLeader() {
			led++
		}
	}
	if led > 3 {
		t.Fatalf("n0 still leads %d shards: the balancer moved nothing", led)
	}
	cancel()
	wg.Wait()
	tc.checkSale(s, item, 1_000_000)
}

func TestClusterLeaderKillMidSale(t *testing.T) {
	dsns := mysqlDSNs(t)
	if dsns != nil {
		dsns = freshMySQL(t, dsns)
	}
	tc := newTestCluster(t, 3, dsns)
	const stock = 1_000_000
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "hot", "stock": stock}, 201)
	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, "hot", 32)
	s.waitSales(t, "sales", 1000)

	victim := tc.waitLeader("hot")
	s.mu.Lock()
	before := len(s.confirmed)
	s.maxGap = 0
	s.last = time.Now()
	s.mu.Unlock()
	t.Logf("killing n%d, leader of hot's shard, after %d confirmed", victim, before)
	tc.nodes[victim].Kill()
	s.waitSales(t, "sales resume", before+2000)
	cancel()
	wg.Wait()
	s.mu.Lock()
	t.Logf("longest gap without a confirmed purchase across the kill: %v", s.maxGap)
	s.mu.Unlock()
	tc.checkSale(s, "hot", stock)

	tc.restart(victim)
	tc.waitReady()
	tc.checkSale(s, "hot", stock) // the restarted node caught up and remembers every order

	if dsns != nil {
		tc.checkMySQL(s, "hot", stock)
	}
}

func TestClusterMinorityCannotCommit(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "part", "stock": 100000}, 201)
	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, "part", 16)
	s.waitSales(t, "sales", 500)

	old := tc.waitLeader("part")
	shard := tc.nodes[old].Store().ShardFor("part")
	var others []string
	for i, nd := range tc.nodes {
		if i != old {
			others = append(others, nd.Store().Addr())
			nd.Store().Block([]string{tc.nodes[old].Store().Addr()})
		}
	}
	tc.nodes[old].Store().Block(others)
	t.Logf("partitioned n%d (leader of shard %d) from the others", old, shard)

	// The isolated old leader cannot commit: a purchase applied directly on
	// its replica never succeeds.
	sh := tc.nodes[old].Store().Shard(shard)
	res, err := sh.PurchaseBatch("part", []raftstore.Purchase{{UserID: "minority", RequestID: "m", Quantity: 1}})
	if err == nil {
		t.Fatalf("minority leader committed a purchase: %v", res)
	}
	// The majority elects a leader and goes on selling.
	if !eventually(20*time.Second, func() bool {
		l := tc.leaderOf("part")
		return l >= 0 && l != old
	}) {
		t.Fatalf("new leader in the majority: not within 20s\n%s", tc.describeShard(shard))
	}
	before := s.count()
	s.waitSales(t, "majority sells", before+500)

	for _, nd := range tc.nodes {
		nd.Store().Block(nil)
	}
	cancel()
	wg.Wait()
	tc.checkSale(s, "part", 100000)
	for _, i := range tc.live() {
		if _, ok := tc.nodes[i].Store().Shard(shard).FSM().LookupRequest("part", "minority", "m"); ok {
			t.Fatalf("n%d has the minority's purchase", i)
		}
	}
}

// freshMySQL creates two empty databases for one test and returns their
// DSNs; they are dropped afterwards.
func freshMySQL(t *testing.T, dsns []string) []string {
	t.Helper()
	base := dsns[0][:strings.LastIndex(dsns[0], "/")+1]
	var out []string
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("fs_cluster_%d_%d", time.Now().UnixNano()%1_000_000, i)
		mustExecMySQL(t, base, "CREATE DATABASE "+name)
		t.Cleanup(func() { mustExecMySQL(t, base, "DROP DATABASE IF EXISTS "+name) })
		out = append(out, base+name)
	}
	return out
}

func mustExecMySQL(t *testing.T, dsn, stmt string) {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

// checkMySQL checks that after the flush every confirmed order is in MySQL
// exactly once and the stored units match the units sold in Raft.
func (tc *testCluster) checkMySQL(s *sale, item string, stock int64) {
	tc.t.Helper()
	mc := mysql.DefaultConfig()
	mc.DSNs = tc.dsns
	sink, err := mysql.Open(context.Background(), mc)
	if err != nil {
		tc.t.Fatal(err)
	}
	defer sink.Close()
	sold := stock - tc.checkReplicas(item)
	waitFor(tc.t, 30*time.Second, "orders flushed to MySQL", func() bool {
		units, err := sink.SoldByItem(context.Background())
		return err == nil && units[item] == sold
	})
	ids := make([]uint64, 0, len(s.confirmed))
	for _, id := range s.confirmed {
		v, _ := orders.ParseID(id)
		ids = append(ids, v)
	}
	copies, err := sink.Copies(context.Background(), ids)
	if err != nil {
		tc.t.Fatal(err)
	}
	for _, id := range ids {
		if n := len(copies[id]); n != 1 {
			tc.t.Fatalf("order %d stored %d times in MySQL; want 1", id, n)
		}
	}
}

// startMariaDB starts a throwaway MariaDB of this test's own (so it can be
// stopped and started) and returns its two DSNs and a restart function.
func startMariaDB(t *testing.T) (dsns []string, stop, start func()) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil && os.Getenv("FLASHSTOCK_REQUIRE_MYSQL") != "1" {
		t.Skip("mariadbd not installed")
	}
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	script := "../scripts/mariadb.sh"
	start = func() {
		out, err := exec.Command(script, "start", dir, port).Output()
		if err != nil {
			t.Fatalf("mariadb.sh start: %v", err)
		}
		line := strings.TrimSpace(string(out))
		dsns = strings.Split(strings.TrimPrefix(line, "FLASHSTOCK_TEST_MYSQL_DSNS="), ",")
	}
	stop = func() {
		if out, err := exec.Command(script, "stop", dir).CombinedOutput(); err != nil {
			t.Fatalf("mariadb.sh stop: %v\n%s", err, out)
		}
	}
	start()
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	return dsns, stop, start
}

// TestMySQLOutageMidSale: MySQL stops mid-sale. Purchases go on (orders
// are durable in Raft), the backlog grows to --max-unflushed and then
// purchases get 503 unavailable (degrade, never drop); when MySQL returns
// the backlog drains and every confirmed order is in MySQL exactly once.
func TestMySQLOutageMidSale(t *testing.T) {
	dsns, stopDB, startDB := startMariaDB(t)
	tc := &testCluster{t: t, dsns: dsns}
	c := config.Default()
	c.Name, c.DataDir = "solo", t.TempDir()
	c.HTTPAddr, c.RaftAddr, c.GossipAddr, c.ActorAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	c.Shards, c.GossipProfile, c.AdminToken, c.TrustUserHeader = 2, "local", adminToken, true
	c.OrdersDSN, c.MaxUnflushed, c.LogLevel = dsns, 5000, "error"
	c.RateUser = 0
	tc.cfgs = []config.Config{c}
	nd, err := tc.start(0)
	if err != nil {
		t.Fatal(err)
	}
	tc.nodes = []*node.Node{nd}
	t.Cleanup(func() { nd.Kill() })
	tc.waitReady()
	const stock = 1_000_000
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "db", "stock": stock}, 201)

	s := newSale()
	ctx, cancel := context.WithCancel(context.Background())
	wg := tc.buy(ctx, s, "db", 16)
	s.waitSales(t, "sales", 500)
	before := s.count()
	stopDB()
	t.Log("MariaDB stopped")
	s.waitSales(t, "sales go on without MySQL", before+1000)
	// The backlog reaches the bound: honest 503s, nothing lost.
	waitFor(t, 30*time.Second, "503 at --max-unflushed", func() bool {
		// A probe that still buys is part of the sale: recorded, as the
		// workers' purchases are, or checkSale counts it as oversold.
		user := fmt.Sprintf("probe-%d", time.Now().UnixNano())
		r, err := tc.do(0, "POST", "/v1/items/db/purchase", user, map[string]any{"request_id": "r"})
		s.record(user+"/r", r, err)
		return err == nil && r.status == 503 && r.code() == "unavailable"
	})
	cancel()
	wg.Wait()
	startDB()
	t.Log("MariaDB restarted")
	tc.checkSale(s, "db", stock)
	tc.checkMySQL(s, "db", stock)
	rep := tc.mustDo(0, "GET", "/v1/admin/reconcile", "admin", nil, 200)
	if rep["differences"].(float64) != 0 {
		t.Fatalf("reconcile after the outage: %v", rep)
	}
}

// TestClusterRateUserAcrossNodes: --rate-user caps a shopper's purchases of
// an item cluster-wide. Each node's own limit alone let a shopper spread
// over three nodes buy about three times the rate; the item's owner sees
// every purchase and enforces it once.
func TestClusterRateUserAcrossNodes(t *testing.T) {
	const rate = 5
	tc := newTestClusterWith(t, 3, nil, func(c *config.Config) { c.RateUser = rate })
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "limited", "stock": 100000, "per_user_limit": 1000}, 201)
	start := time.Now()
	bought, limited := 0, 0
	for n := 0; time.Since(start) < 2*time.Second; n++ {
		r, err := tc.do(n%3, "POST", "/v1/items/limited/purchase", "greedy", map[string]any{"request_id": fmt.Sprint("g", n)})
		if err != nil {
			t.Fatal(err)
		}
		switch r.status {
		case 201:
			bought++
		case 429:
			limited++
		default:
			t.Fatalf("purchase %d: %d %v", n, r.status, r.body)
		}
	}
	elapsed := time.Since(start).Seconds()
	// The owner's bucket: a burst of 2*rate, then rate per second.
	if max := 2*rate + int(rate*elapsed) + 1; bought > max {
		t.Errorf("a shopper spread over 3 nodes bought %d in %.1fs; want at most %d at --rate-user %d", bought, elapsed, max, rate)
	}
	if bought < rate || limited == 0 {
		t.Errorf("bought %d, limited %d; want the shopper served up to the rate, then limited", bought, limited)
	}
	t.Logf("bought %d, rate limited %d in %.1fs", bought, limited, elapsed)
}

// TestClusterRollingUpgradeGatesNewEntries: a multi-item purchase entry is
// a command a node of the earlier version cannot apply (it would crash on
// it). While one voter announces no features, the shards write only
// single-item entries; once it is restarted as the new version, the
// shards start packing items together, and the sale never stops.
func TestClusterRollingUpgradeGatesNewEntries(t *testing.T) {
	var oldMu sync.Mutex
	old := map[string]bool{"n2": true}
	defer node.SetAnnouncedFeatures(func(name string) uint64 {
		oldMu.Lock()
		defer oldMu.Unlock()
		if old[name] {
			return 0
		}
		return uint64(raftstore.Features)
	})()
	tc := newTestCluster(t, 3, nil)
	items := make([]string, 12)
	for i := range items {
		items[i] = fmt.Sprint("up-", i)
		tc.mustDo(i%3, "POST", "/v1/items", "admin", map[string]any{"id": items[i], "stock": 1_000_000}, 201)
	}
	multi := func() (n uint64) {
		for _, nd := range tc.nodes {
			if nd == nil {
				continue
			}
			for s := 0; s < nd.Store().Shards(); s++ {
				n += nd.Store().Shard(s).PurchaseStats().MultiItemEntries
			}
		}
		return n
	}
	sales := make([]*sale, len(items))
	ctx, cancel := context.WithCancel(context.Background())
	var wgs []*sync.WaitGroup
	for i, it := range items {
		sales[i] = newSale()
		wgs = append(wgs, tc.buy(ctx, sales[i], it, 2))
	}
	time.Sleep(2 * time.Second)
	if n := multi(); n != 0 {
		t.Fatalf("%d multi-item entries written while n2 runs the earlier version; want none", n)
	}
	// Upgrade n2: stop it as a crash would, start it as the new version.
	tc.nodes[2].Kill()
	tc.nodes[2] = nil
	oldMu.Lock()
	old["n2"] = false
	oldMu.Unlock()
	tc.restart(2)
	waitFor(t, 20*time.Second, "multi-item entries once every voter reads them", func() bool { return multi() > 0 })
	cancel()
	for _, wg := range wgs {
		wg.Wait()
	}
	tc.waitReady()
	for i, it := range items {
		tc.checkSale(sales[i], it, 1_000_000)
	}
	t.Logf("%d multi-item entries after the upgrade", multi())
}

// TestClusterMoreNodesThanReplicas: six nodes, three voters per shard.
// Every node is ready and serves every shard, seat or not: it creates
// items, sells them and reads them by forwarding to the owner.
func TestClusterMoreNodesThanReplicas(t *testing.T) {
	tc := newTestClusterWith(t, 6, nil, func(c *config.Config) { c.Shards = 8 })
	for i, nd := range tc.nodes {
		seats := 0
		for s := 0; s < nd.Store().Shards(); s++ {
			if nd.Store().Shard(s).InGroup() {
				seats++
			}
		}
		if seats == nd.Store().Shards() {
			t.Errorf("n%d holds a seat in all %d shards; want 3 of 6 nodes per shard", i, seats)
		}
		if !eventually(10*time.Second, func() bool { return nd.Readiness().All }) {
			t.Errorf("n%d: readiness %+v; want every shard served", i, nd.Readiness())
		}
	}
	items := make([]string, 12)
	sales := make([]*sale, len(items))
	ctx, cancel := context.WithCancel(context.Background())
	var wgs []*sync.WaitGroup
	for i := range items {
		items[i] = fmt.Sprint("wide-", i)
		tc.mustDo(i%6, "POST", "/v1/items", "admin", map[string]any{"id": items[i], "stock": 300}, 201)
		sales[i] = newSale()
		wgs = append(wgs, tc.buy(ctx, sales[i], items[i], 3))
	}
	for _, s := range sales {
		s.waitSales(t, "sales on every item", 20)
	}
	cancel()
	for _, wg := range wgs {
		wg.Wait()
	}
	for i, it := range items {
		tc.checkSale(sales[i], it, 300)
		for n := range tc.nodes { // every node reads every item
			body := tc.mustDo(n, "GET", "/v1/items/"+it, "", nil, 200)
			if body["id"] != it {
				t.Errorf("n%d GET item %s = %v", n, it, body)
			}
		}
	}
}

// TestClusterZoneDownMidSale: six nodes in three zones, three voters per
// shard spread over the zones. A whole zone goes down mid-sale: every
// shard keeps a quorum, and the sale goes on on every item.
func TestClusterZoneDownMidSale(t *testing.T) {
	zones := []string{"hk-1a", "hk-1a", "hk-1b", "hk-1b", "hk-1c", "hk-1c"}
	tc := newTestClusterWith(t, 6, nil, func(c *config.Config) {
		var i int
		fmt.Sscanf(c.Name, "n%d", &i)
		c.Region = zones[i]
		c.Shards = 8
	})
	// Each shard's voters, as its leader has them (a node removed while
	// gossip thought it dead may still think it has a seat), are three in
	// three zones: placement spreads them, and moves a doubled zone's seat.
	for s := 0; s < 8; s++ {
		var seen map[string]int
		if !eventually(30*time.Second, func() bool {
			seen = map[string]int{}
			for _, nd := range tc.nodes {
				if !nd.Store().Shard(s).Ready() {
					continue
				}
				servers, err := nd.Store().Shard(s).Servers()
				if err != nil {
					return false
				}
				for _, sv := range servers {
					var i int
					fmt.Sscanf(sv.ID, "n%d", &i)
					if !sv.Voter {
						return false
					}
					seen[zones[i]]++
				}
			}
			return len(seen) == 3 && seen["hk-1a"] == 1 && seen["hk-1b"] == 1 && seen["hk-1c"] == 1
		}) {
			t.Fatalf("shard %d has voters in zones %v; want one in each of three", s, seen)
		}
	}
	items := make([]string, 16)
	sales := make([]*sale, len(items))
	ctx, cancel := context.WithCancel(context.Background())
	var wgs []*sync.WaitGroup
	for i := range items {
		items[i] = fmt.Sprint("zone-", i)
		tc.mustDo(i%6, "POST", "/v1/items", "admin", map[string]any{"id": items[i], "stock": 1_000_000}, 201)
		sales[i] = newSale()
		wgs = append(wgs, tc.buy(ctx, sales[i], items[i], 2))
	}
	for _, s := range sales {
		s.waitSales(t, "sales before the zone goes down", 5)
	}
	before := make([]int, len(sales))
	for i, s := range sales {
		before[i] = s.count()
	}
	for _, i := range []int{0, 1} { // zone hk-1a
		tc.nodes[i].Kill()
		tc.nodes[i] = nil
	}
	for i, s := range sales {
		s.waitSales(t, items[i]+" sells with zone hk-1a down", before[i]+20)
	}
	cancel()
	for _, wg := range wgs {
		wg.Wait()
	}
	for i, it := range items {
		tc.checkSale(sales[i], it, 1_000_000)
	}
}

// TestClusterRemovedReplicaReturns: a follower is down long enough that the
// leader removes it and seats the spare node; restarted, it never hears of
// its removal (the leader no longer sends to it), so its replica still
// holds the old configuration and hears no leader. It must serve the
// shard as a gateway does, through the leader gossip names, not stay
// unready for good.
func TestClusterRemovedReplicaReturns(t *testing.T) {
	tc := newTestClusterWith(t, 4, nil, func(c *config.Config) { c.Shards = 1 })
	tc.mustDo(0, "POST", "/v1/items", "admin", map[string]any{"id": "back", "stock": 1000}, 201)
	leader := tc.waitLeader("back")
	group := tc.replicas("back")
	victim := -1
	for _, i := range group {
		if i != leader && i != 0 { // n0 is the gossip seed: it has no one to join
			victim = i
			break
		}
	}
	if leader < 0 || len(group) != 3 || victim < 0 {
		t.Fatalf("leader n%d, group %v; want a leader and three seats", leader, group)
	}
	tc.nodes[victim].Kill()
	tc.nodes[victim] = nil
	waitFor(t, 30*time.Second, fmt.Sprintf("n%d removed and the spare seated as a voter", victim), func() bool {
		servers, err := tc.nodes[leader].Store().Shard(0).Servers()
		if err != nil || len(servers) != 3 {
			return false
		}
		for _, s := range servers {
			if s.ID == tc.cfgs[victim].Name || !s.Voter {
				return false
			}
		}
		return true
	})
	tc.restart(victim)
	nd := tc.nodes[victim]
	if !nd.Store().Shard(0).InGroup() {
		t.Skipf("n%d heard of its removal before it went down; nothing stale to test", victim)
	}
	waitFor(t, 15*time.Second, fmt.Sprintf("n%d, removed while away, ready for every shard", victim), func() bool {
		return nd.Readiness().All
	})
	if l := tc.waitLeader("back"); nd.Readiness().Shards[0].Leader != tc.cfgs[l].Name {
		t.Errorf("n%d routes shard 0 to %q; want the leader n%d", victim, nd.Readiness().Shards[0].Leader, l)
	}
	s := newSale()
	for u := 0; u < 20; u++ {
		key := fmt.Sprintf("u%d/r", u)
		r, err := doAt(nd.HTTPAddr(), "POST", "/v1/items/back/purchase", fmt.Sprint("u", u), map[string]any{"request_id": "r"})
		s.record(key, r, err)
		if err != nil || r.status != 201 {
			t.Fatalf("purchase through n%d: %v %+v", victim, err, r)
		}
	}
	tc.checkSale(s, "back", 1000)
}
