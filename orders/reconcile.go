package orders

import (
	"sort"
	"time"
)

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
	Differences   int                  `json:"differences"`    // in the whole report, not only this page
	SkippedShards []int                `json:"skipped_shards"` // no current replica on this node
	// Next, when set, is the cursor of the next page (pass it as after);
	// empty on the last page.
	Next string `json:"next,omitempty"`
}

// Page returns the part of the report after the item ID after (every item
// when after is empty), at most limit items, with Next set when more
// follow. Items must be sorted by ItemID, as Reconcile returns them.
func (r Reconciliation) Page(after string, limit int) Reconciliation {
	i := 0
	if after != "" {
		i = sort.Search(len(r.Items), func(i int) bool { return r.Items[i].ItemID > after })
	}
	items := r.Items[i:]
	r.Next = ""
	if limit > 0 && len(items) > limit {
		items = items[:limit]
		r.Next = items[limit-1].ItemID
	}
	r.Items = items
	return r
}
