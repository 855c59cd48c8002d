package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
)

// These tests run the real node binary: real processes, real TCP, Raft on
// disk, the embedded order store. TestMain builds it once.

var nodeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flashstock-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nodeBin = filepath.Join(dir, "node")
	out, err := exec.Command("go", "build", "-o", nodeBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build node: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

type testNode struct {
	t       *testing.T
	dir     string
	url     string
	token   string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	errw    *lockedWriter // writes stderr; logText reads it under its lock
	done    chan struct{}
	exitErr error
	api     *client.Client // with the admin token once it is known
}

// Bounds of the tests' requests.
const (
	requestTimeout = 15 * time.Second
	requestConns   = 512
)

// connect (re)builds the node's API client with its admin token.
func (n *testNode) connect() {
	n.api = client.New(client.Config{Targets: []string{n.url}, AdminToken: n.token, Timeout: requestTimeout, Conns: requestConns})
}

// startNode starts the node binary on dir with fresh ports and waits until
// it is ready.
func startNode(t *testing.T, dir string, extra ...string) *testNode {
	t.Helper()
	n := launchNode(t, dir, nodeAddrs{http: freeAddr(t), raft: freeAddr(t), gossip: freeAddr(t), actor: freeAddr(t)}, "n1", extra...)
	n.waitReady()
	return n
}

type nodeAddrs struct{ http, raft, gossip, actor string }

// launchNode starts the node binary without waiting for it.
func launchNode(t *testing.T, dir string, a nodeAddrs, name string, extra ...string) *testNode {
	t.Helper()
	return launchNodeEnv(t, dir, a, name, nil, extra...)
}

// launchNodeEnv is launchNode with more environment variables (KEY=VALUE).
func launchNodeEnv(t *testing.T, dir string, a nodeAddrs, name string, env []string, extra ...string) *testNode {
	t.Helper()
	args := append([]string{
		"--name", name, "--data-dir", dir, "--http-addr", a.http, "--raft-addr", a.raft,
		"--gossip-addr", a.gossip, "--actor-addr", a.actor, "--shards", "4", "--log-level", "warn",
	}, extra...)
	n := &testNode{t: t, dir: dir, url: "http://" + a.http, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	n.connect()
	n.cmd = exec.Command(nodeBin, args...)
	if env != nil {
		n.cmd.Env = append(os.Environ(), env...)
	}
	n.errw = &lockedWriter{w: n.stderr}
	n.cmd.Stderr = n.errw
	n.cmd.Stdout = io.Discard
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.exitErr = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { n.kill() })
	return n
}

// lockedWriter lets the test read a child's stderr while it runs.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logText returns what the node wrote to standard error so far; safe while
// it runs.
func (n *testNode) logText() string {
	n.errw.mu.Lock()
	defer n.errw.mu.Unlock()
	return n.stderr.String()
}

func (n *testNode) waitReady() {
	n.t.Helper()
	waitFor(n.t, 30*time.Second, func() bool {
		select {
		case <-n.done:
			n.t.Fatalf("node exited: %v\n%s", n.exitErr, n.stderr)
		default:
		}
		return n.api.Ready(context.Background(), 0) == nil
	})
	if n.token == "" {
		tok, err := os.ReadFile(filepath.Join(n.dir, "admin-token"))
		if err != nil {
			n.t.Fatal(err)
		}
		n.token = strings.TrimSpace(string(tok))
		n.connect()
	}
}

func (n *testNode) kill() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for the drain.
func (n *testNode) stop() {
	n.t.Helper()
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if n.exitErr != nil {
			n.t.Fatalf("node exit after SIGTERM: %v\n%s", n.exitErr, n.stderr)
		}
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump into stderr
		<-n.done
		n.t.Fatalf("node did not drain within 30 s\n%s", n.stderr)
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// do sends a JSON request as user ("admin" for the admin token); it returns
// the status and the decoded body.
func (n *testNode) do(method, path, user string, body any) (int, map[string]any, error) {
	who := client.AsUser(user)
	if user == "admin" {
		who = client.AsAdmin
	}
	r := n.api.Do(context.Background(), 0, method, path, body, who)
	if r.Status == 0 {
		return 0, nil, r.Err
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return r.Status, nil, fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return r.Status, m, nil
}

func (n *testNode) mustDo(method, path, user string, body any, want int) map[string]any {
	n.t.Helper()
	code, m, err := n.do(method, path, user, body)
	if err != nil {
		n.t.Fatal(err)
	}
	if code != want {
		n.t.Fatalf("%s %s = %d %v; want %d", method, path, code, m, want)
	}
	return m
}

func (n *testNode) remaining(item string) int64 {
	n.t.Helper()
	m := n.mustDo("GET", "/v1/items/"+item, "", nil, 200)
	return int64(m["remaining"].(float64))
}

func errCode(m map[string]any) string {
	if e, ok := m["error"].(map[string]any); ok {
		return e["code"].(string)
	}
	return ""
}

// storedOrders opens the node's embedded order store (node stopped).
func storedOrders(t *testing.T, dir string) *sqlite.Sink {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "orders.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestNeverOversell: 5000 concurrent buyers, each trying twice, for 1000
// units with a limit of one per user.
func TestNeverOversell(t *testing.T) {
	const stock, buyers = 1000, 5000
	dir := t.TempDir()
	n := startNode(t, dir)
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "hot", "name": "Hot", "stock": stock, "per_user_limit": 1}, 201)

	type result struct {
		user, order, code string
		status            int
	}
	results := make(chan result, buyers*2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < buyers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", i)
			<-start
			for try := 0; try < 2; try++ {
				code, m, err := n.do("POST", "/v1/items/hot/purchase", user, map[string]any{"quantity": 1, "request_id": fmt.Sprintf("r%d", try)})
				if err != nil {
					results <- result{user: user, code: err.Error()}
					continue
				}
				r := result{user: user, status: code, code: errCode(m)}
				if code == 201 {
					r.order = m["order_id"].(string)
				}
				results <- r
			}
		}()
	}
	close(start)
	wg.Wait()
	close(results)

	confirmed := map[string]string{} // order -> user
	perUser := map[string]int{}
	outcomes := map[string]int{}
	for r := range results {
		switch {
		case r.status == 201:
			if u, dup := confirmed[r.order]; dup {
				t.Errorf("order %s confirmed twice (users %s, %s)", r.order, u, r.user)
			}
			confirmed[r.order] = r.user
			perUser[r.user]++
			outcomes["confirmed"]++
		case r.status == 409 && (r.code == "sold_out" || r.code == "limit_exceeded"):
			outcomes[r.code]++
		default:
			t.Errorf("purchase by %s = %d %q; want 201 or 409", r.user, r.status, r.code)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	if len(confirmed) != stock {
		t.Fatalf("confirmed = %d; want %d", len(confirmed), stock)
	}
	for u, k := range perUser {
		if k > 1 {
			t.Errorf("user %s has %d orders; limit 1", u, k)
		}
	}
	if got := n.remaining("hot"); got != 0 {
		t.Errorf("remaining = %d; want 0", got)
	}

	n.stop() // drains: every confirmed order flushed
	s := storedOrders(t, dir)
	sold, err := s.SoldByItem(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sold["hot"] != stock {
		t.Errorf("order store holds %d units of hot; want %d", sold["hot"], stock)
	}
	for id, user := range confirmed {
		oid, _ := orders.ParseID(id)
		o, err := s.Get(context.Background(), oid)
		if err != nil || o.UserID != user {
			t.Fatalf("order %s in store = %+v, %v; want user %s", id, o, err, user)
		}
	}
}

// TestIdempotentPurchase: retries with one request_id, sequential and
// concurrent, make one order and one decrement.
func TestIdempotentPurchase(t *testing.T) {
	n := startNode(t, t.TempDir(), "--rate-user", "0") // carol retries 20 times at once
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "i1", "stock": 10, "per_user_limit": 5}, 201)

	first := n.mustDo("POST", "/v1/items/i1/purchase", "alice", map[string]any{"quantity": 2, "request_id": "k1"}, 201)
	again := n.mustDo("POST", "/v1/items/i1/purchase", "alice", map[string]any{"quantity": 2, "request_id": "k1"}, 200)
	if first["order_id"] != again["order_id"] {
		t.Fatalf("retry order = %v; want %v", again["order_id"], first["order_id"])
	}
	if got := n.remaining("i1"); got != 8 {
		t.Fatalf("remaining = %d; want 8", got)
	}
	// The same request_id by another user is another purchase.
	n.mustDo("POST", "/v1/items/i1/purchase", "bob", map[string]any{"request_id": "k1"}, 201)

	var wg sync.WaitGroup
	ids := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, m, err := n.do("POST", "/v1/items/i1/purchase", "carol", map[string]any{"request_id": "k2"})
			if err != nil || (code != 201 && code != 200) {
				t.Errorf("concurrent retry = %d %v %v", code, m, err)
				return
			}
			ids <- m["order_id"].(string)
		}()
	}
	wg.Wait()
	close(ids)
	var seen string
	for id := range ids {
		if seen != "" && id != seen {
			t.Fatalf("concurrent retries got orders %s and %s", seen, id)
		}
		seen = id
	}
	if got := n.remaining("i1"); got != 6 {
		t.Fatalf("remaining = %d; want 6 (2 alice + 1 bob + 1 carol)", got)
	}
	o := n.mustDo("GET", "/v1/orders/"+seen, "carol", nil, 200)
	if o["user_id"] != "carol" || o["quantity"].(float64) != 1 {
		t.Fatalf("order = %v", o)
	}
	n.mustDo("GET", "/v1/orders/"+seen, "mallory", nil, 404)
}

// TestRestartAfterKill: SIGKILL mid-sale, restart on the same data dir:
// the same remaining stock, every confirmed order readable, and after a
// drain every order in the store exactly once.
func TestRestartAfterKill(t *testing.T) {
	const stock = 100000
	dir := t.TempDir()
	n := startNode(t, dir)
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "k", "stock": stock}, 201)

	var (
		mu        sync.Mutex
		confirmed []string
		unknown   int
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				code, m, err := n.do("POST", "/v1/items/k/purchase", fmt.Sprintf("w%d-%d", w, i), nil)
				mu.Lock()
				switch {
				case err != nil:
					unknown++ // the kill: outcome unknown
				case code == 201:
					confirmed = append(confirmed, m["order_id"].(string))
				default:
					unknown++
				}
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(confirmed) > 2000 })
	n.kill()
	cancel()
	wg.Wait()
	t.Logf("confirmed %d before SIGKILL, %d outcomes unknown", len(confirmed), unknown)

	n2 := startNode(t, dir)
	rem := n2.remaining("k")
	sold := stock - rem
	if sold < int64(len(confirmed)) || sold > int64(len(confirmed)+unknown) {
		t.Fatalf("after restart sold = %d; want between %d confirmed and %d (+unknown)", sold, len(confirmed), len(confirmed)+unknown)
	}
	for _, id := range confirmed {
		o := n2.mustDo("GET", "/v1/orders/"+id, "admin", nil, 200)
		if o["item_id"] != "k" {
			t.Fatalf("order %s = %v", id, o)
		}
	}
	n2.stop()
	n3 := startNode(t, dir) // a second restart changes nothing
	if got := n3.remaining("k"); got != rem {
		t.Fatalf("remaining after second restart = %d; want %d", got, rem)
	}
	n3.stop()
	s := storedOrders(t, dir)
	units, err := s.SoldByItem(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if units["k"] != sold {
		t.Fatalf("order store holds %d units; want %d (sold in Raft)", units["k"], sold)
	}
}

// TestBadFlags: one line and exit code 2.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--shards", "0"},
		{"--http-addr", "0.0.0.0:0"},
		{"--no-such-flag"},
		{"--log-level", "loud"},
	} {
		cmd := exec.Command(nodeBin, append(args, "--data-dir", t.TempDir())...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("node %v: err %v; want exit code 2", args, err)
		}
		if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines != 0 {
			t.Errorf("node %v printed %d lines; want one: %s", args, lines+1, out)
		}
	}
}

// TestRateLimitsAndReconcile: a shopper over --rate-user gets 429 with
// Retry-After and buys nothing more; the reconcile report of a drained sale
// shows no difference.
func TestRateLimitsAndReconcile(t *testing.T) {
	n := startNode(t, t.TempDir(), "--rate-user", "1")
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "rl", "stock": 100, "per_user_limit": 100}, 201)
	var ok, limited int
	start := time.Now()
	for i := 0; i < 10; i++ {
		r, _ := n.api.Purchase(context.Background(), 0, "rl", "greedy", fmt.Sprintf("q%d", i), 1)
		switch r.Outcome {
		case client.OutcomeConfirmed:
			ok++
		case client.OutcomeRateLimited:
			limited++
			if r.Code != "rate_limited" || r.RetryAfter <= 0 {
				t.Fatalf("429 code %q, Retry-After %v", r.Code, r.RetryAfter)
			}
		default:
			t.Fatalf("purchase = %v %d %s %v", r.Outcome, r.Status, r.Code, r.Err)
		}
	}
	// A burst of 2 at 1/s: 2 confirmed and 8 limited when the ten take
	// under a second, as they do; a starved machine refills a token a second.
	if refill := int(time.Since(start) / time.Second); ok < 2 || ok > 2+refill || limited != 10-ok || limited == 0 {
		t.Fatalf("10 rapid purchases in %v: %d ok, %d limited; want 2 (+1 a second) and the rest", time.Since(start), ok, limited)
	}
	if got := n.remaining("rl"); got != int64(100-ok) {
		t.Fatalf("remaining = %d; want %d: rejected purchases must change nothing", got, 100-ok)
	}
	n.mustDo("POST", "/v1/items/rl/purchase", "other", nil, 201) // others are unaffected
	waitFor(t, 10*time.Second, func() bool {
		code, m, err := n.do("GET", "/v1/admin/reconcile", "admin", nil)
		return err == nil && code == 200 && m["differences"].(float64) == 0 && len(m["items"].([]any)) == 1 &&
			m["items"].([]any)[0].(map[string]any)["store_sold"].(float64) == float64(ok+1)
	})
	list := n.mustDo("GET", "/v1/users/me/orders", "greedy", nil, 200)
	if got := len(list["orders"].([]any)); got != ok {
		t.Fatalf("greedy's orders = %d; want %d", got, ok)
	}
}

// TestPaymentWindow: with --payment-window an unpaid order expires and its
// stock goes back on sale; paying in time keeps it; paying late is 409
// order_expired; a pay racing the expiry gets one definite answer that
// matches the order's final state. A restock reopens a sold-out item.
func TestPaymentWindow(t *testing.T) {
	n := startNode(t, t.TempDir(), "--payment-window", "3s", "--rate-user", "0")
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "pw", "stock": 2}, 201)
	paid := n.mustDo("POST", "/v1/items/pw/purchase", "alice", nil, 201)
	late := n.mustDo("POST", "/v1/items/pw/purchase", "bob", nil, 201)
	if paid["pay_by"] == nil {
		t.Fatalf("order has no pay_by: %v", paid)
	}
	n.mustDo("POST", "/v1/items/pw/purchase", "carol", nil, 409) // sold out
	got := n.mustDo("POST", "/v1/orders/"+paid["order_id"].(string)+"/pay", "alice", nil, 200)
	if got["status"] != "paid" {
		t.Fatalf("pay = %v; want paid", got)
	}
	n.mustDo("POST", "/v1/orders/"+paid["order_id"].(string)+"/pay", "alice", nil, 200) // idempotent
	n.mustDo("POST", "/v1/orders/"+late["order_id"].(string)+"/pay", "mallory", nil, 404)

	// bob never pays: his unit returns and carol gets it.
	waitFor(t, 10*time.Second, func() bool { return n.remaining("pw") == 1 })
	code, m, _ := n.do("POST", "/v1/orders/"+late["order_id"].(string)+"/pay", "bob", nil)
	if code != 409 || errCode(m) != "order_expired" {
		t.Fatalf("late pay = %d %v; want 409 order_expired", code, m)
	}
	o := n.mustDo("GET", "/v1/orders/"+late["order_id"].(string), "bob", nil, 200)
	if o["status"] != "expired" {
		t.Fatalf("bob's order = %v; want expired", o)
	}
	racer := n.mustDo("POST", "/v1/items/pw/purchase", "carol", nil, 201)

	// Pay racing the expiry: keep paying around the deadline; the first
	// definite answer must match the final state.
	deadline, _ := time.Parse(time.RFC3339Nano, racer["pay_by"].(string))
	time.Sleep(time.Until(deadline.Add(-30 * time.Millisecond)))
	var answer string
	for answer == "" {
		code, m, err := n.do("POST", "/v1/orders/"+racer["order_id"].(string)+"/pay", "carol", nil)
		switch {
		case err == nil && code == 200:
			answer = "paid"
		case err == nil && code == 409 && errCode(m) == "order_expired":
			answer = "expired"
		case err == nil && code == 503:
		default:
			t.Fatalf("racing pay = %d %v %v", code, m, err)
		}
	}
	time.Sleep(1200 * time.Millisecond) // past any expiry tick
	final := n.mustDo("GET", "/v1/orders/"+racer["order_id"].(string), "carol", nil, 200)
	if final["status"] != answer {
		t.Fatalf("racing pay answered %s; the order is %v", answer, final["status"])
	}
	wantRemaining := int64(0)
	if answer == "expired" {
		wantRemaining = 1
	}
	if got := n.remaining("pw"); got != wantRemaining {
		t.Fatalf("remaining = %d after the race (%s); want %d", got, answer, wantRemaining)
	}

	// Restock after sold out reopens the sale.
	n.mustDo("POST", "/v1/items/pw/stock", "admin", map[string]any{"delta": 5}, 200)
	n.mustDo("POST", "/v1/items/pw/purchase", "dave", nil, 201)

	n.stop()
	s := storedOrders(t, n.dir)
	for id, want := range map[string]string{paid["order_id"].(string): "paid", late["order_id"].(string): "expired", racer["order_id"].(string): answer} {
		oid, _ := orders.ParseID(id)
		o, err := s.Get(context.Background(), oid)
		if err != nil || string(o.Status) != want {
			t.Errorf("stored order %s = %v, %v; want status %s", id, o.Status, err, want)
		}
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kib)
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestOverload: far more concurrent shoppers than the node admits, against
// one hot item. The node must not fall over: every answer is a real one
// (201, 409, or 429/503 at once), never a timeout; memory stays bounded;
// every confirmed order is real.
func TestOverload(t *testing.T) {
	n := startNode(t, t.TempDir(), "--admission-max", "64", "--queue-max", "32", "--rate-user", "0", "--request-timeout", "5s")
	const stock = 1_000_000
	n.mustDo("POST", "/v1/items", "admin", map[string]any{"id": "crowd", "stock": stock}, 201)
	base := rssKiB(t, n.cmd.Process.Pid)

	api := client.New(client.Config{Targets: []string{n.url}, Timeout: 10 * time.Second, Conns: 1024})
	defer api.Close()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		outcomes = map[string]int{}
		timeouts int
		orderIDs = map[string]bool{}
		peak     int64
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < 768; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				// Not bound by ctx: a request cut short would read as a timeout.
				r, o := api.Purchase(context.Background(), 0, "crowd", fmt.Sprintf("o%d-%d", w, k), "", 1)
				mu.Lock()
				if r.Status == 0 {
					timeouts++
					mu.Unlock()
					continue
				}
				statuses[r.Status]++
				outcomes[r.Outcome.String()]++
				if r.Outcome.OK() {
					orderIDs[o.OrderID] = true
				}
				mu.Unlock()
			}
		}()
	}
	go func() { // sample memory while the crowd pushes
		for ctx.Err() == nil {
			if r := rssKiB(t, n.cmd.Process.Pid); r > peak {
				mu.Lock()
				peak = r
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	t.Logf("answers %v (%v), transport errors %d, RSS %d MiB at rest, peak %d MiB", statuses, outcomes, timeouts, base/1024, peak/1024)
	for code := range statuses {
		if code != 201 && code != 503 && code != 429 {
			t.Errorf("status %d under overload; want 201, 429 or 503", code)
		}
	}
	if statuses[503] == 0 {
		t.Errorf("no 503 overloaded: the crowd did not exceed the admission bound")
	}
	if timeouts > 0 {
		t.Errorf("%d requests timed out or failed; want honest answers only", timeouts)
	}
	if peak > base+512*1024 {
		t.Errorf("RSS grew from %d MiB to %d MiB under overload", base/1024, peak/1024)
	}
	if sold := stock - n.remaining("crowd"); sold != int64(len(orderIDs)) {
		t.Errorf("sold %d; %d confirmed", sold, len(orderIDs))
	}
}
