package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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

	var (
		mu        sync.Mutex
		confirmed = map[string]string{} // user -> order id
		unknown   = map[string]bool{}
		down      = map[int]bool{}
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 24; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				user := fmt.Sprintf("w%d-%d", w, k)
				mu.Lock()
				i := (w + k) % nodes
				for down[i] {
					i = (i + 1) % nodes
				}
				mu.Unlock()
				code, m, err := ns[i].do("POST", "/v1/items/hot/purchase", user, map[string]any{"request_id": "r"})
				mu.Lock()
				switch {
				case err == nil && code == 201:
					confirmed[user] = m["order_id"].(string)
				case err == nil && code == 409:
					t.Errorf("purchase %s: 409 %v", user, m)
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
	st := ns[0].mustDo("GET", "/v1/cluster/status", "admin", nil, 200)
	leaderName := st["shards"].([]any)[shard].(map[string]any)["leader"].(string)
	var victim int
	fmt.Sscanf(leaderName, "n%d", &victim)
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

	// Settle every unknown outcome with its request ID.
	for user := range unknown {
		if _, ok := confirmed[user]; ok {
			continue
		}
		waitFor(t, 15*time.Second, func() bool {
			code, m, err := ns[0].do("POST", "/v1/items/hot/purchase", user, map[string]any{"request_id": "r"})
			if err != nil || code == 503 {
				return false
			}
			if code == 201 || code == 200 {
				confirmed[user] = m["order_id"].(string)
			}
			return true
		})
	}
	// Every node agrees on the stock, and it matches what was confirmed.
	waitFor(t, 15*time.Second, func() bool {
		for _, n := range ns {
			if stock-n.remaining("hot") != int64(len(confirmed)) {
				return false
			}
		}
		return true
	})
	// Every confirmed order is still there: its request ID returns it.
	seen := map[string]bool{}
	for _, id := range confirmed {
		if seen[id] {
			t.Fatalf("order %s confirmed twice", id)
		}
		seen[id] = true
	}
	k := 0
	for user, id := range confirmed {
		if k++; k%10 != 0 { // a tenth of them, on every node
			continue
		}
		for i, n := range ns {
			m := n.mustDo("POST", "/v1/items/hot/purchase", user, map[string]any{"request_id": "r"}, 200)
			if m["order_id"] != id {
				t.Fatalf("n%d: %s's order = %v; want %s", i, user, m["order_id"], id)
			}
		}
	}
	t.Logf("%d confirmed, %d unknown at first, remaining %d on every node", len(confirmed), len(unknown), stock-len(confirmed))
}
