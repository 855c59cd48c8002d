package actors

import (
	"context"
	"fmt"
	"sort"

	"github.com/flashstock/flashstock/orders"
)

// UserOrders returns a user's orders, newest first: the ones still in Raft
// (on this node's current replicas) and the ones in the order store.
func (e *Engine) UserOrders(ctx context.Context, user string, limit int) ([]orders.Order, error) {
	if e.store == nil {
		return e.remoteUserOrders(ctx, user, limit)
	}
	// The outbox first, then the store: an order flushed between the two
	// reads is then in both (the outbox's copy wins, its state is as new),
	// never in neither.
	seen := make(map[uint64]bool)
	out := []orders.Order{}
	for i := 0; i < e.shards; i++ {
		sh := e.replica(i)
		if sh == nil {
			continue
		}
		for _, o := range sh.FSM().PendingByUser(user) {
			seen[o.ID] = true
			out = append(out, o)
		}
	}
	stored, err := e.sink.ListByUser(ctx, user, limit)
	if err != nil {
		return nil, fmt.Errorf("actors: list orders: %w", err)
	}
	for _, o := range stored {
		if !seen[o.ID] {
			out = append(out, o)
		}
	}
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Reconcile compares, per item, the units sold in Raft with the orders in
// the order store, and reports every difference. Orders still waiting to
// be flushed are accounted for; mid-sale, an order confirmed or flushed
// between the reads can show as a transient difference, and after the sale
// drains there must be none. A lasting difference means an order is
// missing from, or extra in, the store. Shards this node holds no current
// replica of are skipped (ask a node that does); a gateway skips them all.
func (e *Engine) Reconcile(ctx context.Context) (orders.Reconciliation, error) {
	rep := orders.Reconciliation{CheckedAt: e.now().UTC(), Items: []orders.ItemReconciliation{}, SkippedShards: []int{}}
	if e.store == nil {
		for i := 0; i < e.shards; i++ {
			rep.SkippedShards = append(rep.SkippedShards, i)
		}
		return rep, nil
	}
	type shardView struct {
		shard   int
		sold    map[string]int64
		pending map[string]int64
	}
	var views []shardView
	for i := 0; i < e.store.Shards(); i++ {
		sh := e.store.Shard(i)
		if !sh.Replica() {
			rep.SkippedShards = append(rep.SkippedShards, i)
			continue
		}
		// Pending first: an order flushed between the two reads is then
		// counted in the store, never in neither.
		v := shardView{shard: i, pending: sh.FSM().PendingUnits(), sold: map[string]int64{}}
		for _, it := range sh.FSM().Items() {
			v.sold[it.ID] = it.Sold()
		}
		views = append(views, v)
	}
	stored, err := e.sink.SoldByItem(ctx)
	if err != nil {
		return rep, fmt.Errorf("actors: reconcile: %w", err)
	}
	for _, v := range views {
		for id, sold := range v.sold {
			r := orders.ItemReconciliation{ItemID: id, Shard: v.shard, RaftSold: sold, Unflushed: v.pending[id], StoreSold: stored[id]}
			r.Diff = r.RaftSold - r.Unflushed - r.StoreSold
			if r.Diff != 0 {
				rep.Differences++
			}
			rep.Items = append(rep.Items, r)
		}
	}
	// Items the store has and Raft does not: extra orders.
	known := map[string]bool{}
	skipped := map[int]bool{}
	for _, v := range views {
		for id := range v.sold {
			known[id] = true
		}
	}
	for _, s := range rep.SkippedShards {
		skipped[s] = true
	}
	for id, units := range stored {
		if shard := e.shardFor(id); !known[id] && !skipped[shard] && units != 0 {
			rep.Items = append(rep.Items, orders.ItemReconciliation{ItemID: id, Shard: shard, StoreSold: units, Diff: -units})
			rep.Differences++
		}
	}
	sort.Slice(rep.Items, func(i, j int) bool { return rep.Items[i].ItemID < rep.Items[j].ItemID })
	return rep, nil
}
