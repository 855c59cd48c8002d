package orders

import "context"

// Pruner is an order store that can forget the orders a shard confirmed
// after a log index: what a store restored from a dump must do before the
// cluster restored from an older Raft snapshot sells again (docs/backup.md).
// The dump may hold orders confirmed after the snapshot; the restored
// cluster never heard of them, and would confirm new orders under the same
// IDs (an ID is shard, log index and position), which the store, idempotent
// by ID, would then take for rows it already holds.
type Pruner interface {
	// PruneAfter deletes every order of shard confirmed at a log index
	// above index, keeps any per-item counters the store maintains in step,
	// and returns how many orders it deleted. It is idempotent, blocks until
	// the deletions are durable or ctx ends, and must not run while a
	// flusher writes the same shard's orders.
	PruneAfter(ctx context.Context, shard int, index uint64) (int64, error)
}

// IDsAfter returns the range of order IDs, lo < id <= hi, that shard
// confirms at log indexes above index.
func IDsAfter(shard int, index uint64) (lo, hi uint64) {
	return MakeID(shard, index, PositionsMax-1), MakeID(shard, 1<<idIndexBits-1, PositionsMax-1)
}
