package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/raftstore"
)

// TestClusterProcessesSurviveLeaderKill runs three real node processes,
// SIGKILLs the leader of the hot item's shard mid-sale, restarts it, and
// checks through the HTTP API that nothing was oversold and every
// confirmed order survived (its request ID still returns it, on every node).
func TestClusterProcessesSurviveLeaderKill(t *testing.T) {
	const (
		nodes = 3
		stock = 1_000_000
		token = "e2e-admin-token-0123456789"
	)
	addrs := make([]nodeAddrs, nodes)
	dirs := make([]string, nodes)
	for i := range addrs {
		addrs[i] = nodeAddrs{http: freeAddr(t), raft: freeAddr(t), gossip: freeAddr(t), actor: freeAddr(t)}
		dirs[i] = t.TempDir()
	}
	launch := func(i int) *testNode {
		n := launchNode(t, dirs[i], addrs[i], fmt.Sprintf("n%d", i),
			"--bootstrap-expect", "3", "--join", addrs[0].gossip+","+addrs[1].gossip,
			"--admin-token", token, "--gossip-profile", "local", "--raft-heartbeat-timeout", "400ms",
			"--dead-node-grace", "5s", "--request-timeout", "3s")
		n.token = token
		n.connect()
		return n
	}
	ns := make([]*testNode, nodes)
	for i := range ns {
		ns[i] = launch(i)
	}
	for _, n := range ns {
		n.waitReady()
	}
	ns[0].mustDo("POST", "/v1/items", "admin", map[string]any{"id": "hot", "stock": stock}, 201)
	urls := make([]string, nodes)
	for i, n := range ns {
		urls[i] = n.url
	}
	api := client.New(client.Config{Targets: urls, AdminToken: token, Timeout: requestTimeout, Conns: 64})
	defer api.Close()
	ctx := context.Background()

	var (
		mu        sync.Mutex
		confirmed = map[string]string{} // user -> order id
		unknown   = map[string]bool{}
		down      = map[int]bool{}
	)
	sale, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < 24; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; sale.Err() == nil; k++ {
				user := fmt.Sprintf("w%d-%d", w, k)
				mu.Lock()
				i := (w + k) % nodes
				for down[i] {
					i = (i + 1) % nodes
				}
				mu.Unlock()
				r, o := api.Purchase(ctx, i, "hot", user, "r", 1)
				mu.Lock()
				switch {
				case r.Outcome.OK():
					confirmed[user] = o.OrderID
				case r.Outcome == client.OutcomeSoldOut || r.Outcome == client.OutcomeLimitExceeded:
					t.Errorf("purchase %s: %v %s", user, r.Outcome, r.Code)
				case r.Outcome.Rejected(): // shed before the sale: certainly not bought
				default:
					unknown[user] = true
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(confirmed) }
	waitFor(t, 30*time.Second, func() bool { return count() > 2000 })

	// Find the leader of hot's shard from the status endpoint.
	shard := raftstore.ShardFor("hot", 4)
	st, _, err := api.ClusterStatus(ctx, 0)
	if err != nil || shard >= len(st.Shards) {
		t.Fatalf("cluster status: %+v, %v", st, err)
	}
	var victim int
	fmt.Sscanf(st.Shards[shard].Leader, "n%d", &victim)
	before := count()
	mu.Lock()
	down[victim] = true
	mu.Unlock()
	t.Logf("SIGKILL n%d (leader of shard %d) after %d confirmed", victim, shard, before)
	killed := time.Now()
	ns[victim].kill()
	waitFor(t, 30*time.Second, func() bool { return count() > before+100 })
	t.Logf("sales resumed %v after the kill", time.Since(killed).Round(time.Millisecond))

	ns[victim] = launch(victim)
	ns[victim].waitReady()
	mu.Lock()
	delete(down, victim)
	mu.Unlock()
	waitFor(t, 30*time.Second, func() bool { return count() > before+3000 })
	cancel()
	wg.Wait()

	ev := settleAndCheck(ctx, t, api, ns, stock, confirmed, unknown)
	t.Logf("%d confirmed, %d unknown at first, remaining %d on every node, %d replays", len(confirmed), len(unknown), stock-len(confirmed), len(ev.History.Replays))
}

// settleAndCheck ends a sale of "hot" bought through node 0: it settles
// every unknown outcome with its request ID (a shed answer does not settle
// it, as the first send may still commit; the sale's answer does), waits
// until every node agrees on the stock and it matches what was confirmed,
// and judges the books with client.Check. It returns the evidence.
func settleAndCheck(ctx context.Context, t *testing.T, api *client.Client, ns []*testNode, stock int64,
	confirmed map[string]string, unknown map[string]bool) client.Evidence {
	t.Helper()
	for user := range unknown {
		if _, ok := confirmed[user]; ok {
			continue
		}
		waitFor(t, 15*time.Second, func() bool {
			r, o := api.Purchase(ctx, 0, "hot", user, "r", 1)
			if r.Outcome.OK() {
				confirmed[user] = o.OrderID
			}
			return r.Outcome.Decided()
		})
	}
	waitFor(t, 15*time.Second, func() bool {
		for _, n := range ns {
			if stock-n.remaining("hot") != int64(len(confirmed)) {
				return false
			}
		}
		return true
	})
	ev := evidence(ctx, t, api, stock, confirmed)
	if v := client.Check(ev); !v.Pass {
		t.Fatalf("check: %q", v.Problems)
	}
	return ev
}

// evidence gathers what client.Check judges after the sale: every node's
// view of the item, every confirmation, and a tenth of the confirmed
// purchases replayed on every node, each of which must answer with the
// original order.
func evidence(ctx context.Context, t *testing.T, api *client.Client, stock int64, confirmed map[string]string) client.Evidence {
	t.Helper()
	ev := client.Evidence{
		Items:   []string{"hot"},
		Before:  map[string]client.ItemState{"hot": {ID: "hot", Stock: stock, Remaining: stock, PerUserLimit: 1}},
		History: client.History{ConfirmedQty: map[string]int64{"hot": int64(len(confirmed))}},
	}
	for i := range api.Targets() {
		it, err := api.Item(ctx, i, "hot")
		if err != nil {
			t.Fatalf("n%d: %v", i, err)
		}
		ev.After = append(ev.After, client.ItemReads{Target: fmt.Sprintf("n%d", i), Items: map[string]client.ItemState{"hot": it}})
	}
	k := 0
	for user, id := range confirmed {
		ev.History.Confirmed = append(ev.History.Confirmed, client.ConfirmedOrder{
			ItemID: "hot", UserID: user, RequestID: "r", Quantity: 1, Got: client.OrderView{OrderID: id}})
		if k++; k%10 != 0 {
			continue
		}
		for i := range api.Targets() {
			r, o := api.Purchase(ctx, i, "hot", user, "r", 1)
			if r.Outcome != client.OutcomeReplayed {
				t.Fatalf("n%d: replay of %s's purchase = %v %s %v; want 200 with order %s", i, user, r.Outcome, r.Code, r.Err, id)
			}
			ev.History.Replays = append(ev.History.Replays, client.Replay{ItemID: "hot", UserID: user, RequestID: "r",
				OrderID: id, Target: i, Outcome: r.Outcome, Status: r.Status, Got: o})
		}
	}
	return ev
}
