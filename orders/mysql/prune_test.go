package mysql

import (
	"maps"
	"testing"

	"github.com/flashstock/flashstock/orders"
)

// TestPruneAfter: pruning a shard after an index deletes exactly that
// shard's orders of later entries, in every database and table, keeps
// the items counters equal to the remaining rows (expired orders counted
// for nothing before and after), and is idempotent.
func TestPruneAfter(t *testing.T) {
	c := testConfig(t)
	c.ChunkRows = 7 // several chunks per table
	s := openSink(t, c)
	ctx := testCtx(t)
	all := append(genOrders(400, 50, 4, 1, 1), genOrders(100, 50, 4, 2, 2)...)
	for i := range all {
		if i%9 == 0 {
			all[i].Status = orders.StatusExpired
		}
	}
	writeBatches(t, s, all, 100)
	const index = 20 // genOrders puts 8 orders in each entry: 160 of shard 1 kept
	var kept []orders.Order
	for _, o := range all {
		if o.Shard != 1 || o.LogIndex <= index {
			kept = append(kept, o)
		}
	}
	n, err := s.PruneAfter(ctx, 1, index)
	if err != nil || n != int64(len(all)-len(kept)) {
		t.Fatalf("PruneAfter(1, %d) = %d, %v; want %d, nil", index, n, err, len(all)-len(kept))
	}
	d := dumpSink(t, s)
	if len(d.orders) != len(kept) {
		t.Fatalf("%d orders left; want %d", len(d.orders), len(kept))
	}
	for _, o := range kept {
		if _, ok := d.orders[o.ID]; !ok {
			t.Fatalf("order %d (shard %d, index %d) pruned; want it kept", o.ID, o.Shard, o.LogIndex)
		}
	}
	totals, err := s.Items(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := wantTotals(kept)
	for item, tot := range totals { // an item whose orders all went keeps a zero row
		if tot == (ItemTotals{}) {
			delete(totals, item)
		}
	}
	if !maps.Equal(totals, want) {
		t.Fatalf("items counters after the prune = %v; want %v", totals, want)
	}
	if n, err := s.PruneAfter(ctx, 1, index); err != nil || n != 0 {
		t.Fatalf("PruneAfter again = %d, %v; want 0, nil", n, err)
	}
}
