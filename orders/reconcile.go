package orders

import "time"

// ItemReconciliation compares one item's sales in Raft with the order store.
type ItemReconciliation struct {
	ItemID    string `json:"item_id"`
	Shard     int    `json:"shard"`
	RaftSold  int64  `json:"raft_sold"`  // units sold in the Raft state machine
	Unflushed int64  `json:"unflushed"`  // of those, not yet in the order store
	StoreSold int64  `json:"store_sold"` // units in the order store
	Diff      int64  `json:"diff"`       // raft_sold - unflushed - store_sold; 0 when consistent
}

// Reconciliation is the report of Reconcile.
type Reconciliation struct {
	CheckedAt     time.Time            `json:"checked_at"`
	Items         []ItemReconciliation `json:"items"`
	Differences   int                  `json:"differences"`
	SkippedShards []int                `json:"skipped_shards"` // no current replica on this node
}
