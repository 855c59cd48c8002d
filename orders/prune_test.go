package orders_test

import (
	"testing"

	"github.com/flashstock/flashstock/orders"
)

// TestIDsAfter: the range holds exactly the shard's IDs of later entries.
func TestIDsAfter(t *testing.T) {
	const shard, index = 3, 1000
	lo, hi := orders.IDsAfter(shard, index)
	in := func(id uint64) bool { return id > lo && id <= hi }
	tests := []struct {
		name string
		id   uint64
		want bool
	}{
		{"the entry itself, last position", orders.MakeID(shard, index, orders.PositionsMax-1), false},
		{"an earlier entry", orders.MakeID(shard, index-1, 0), false},
		{"the next entry", orders.MakeID(shard, index+1, 0), true},
		{"the last index", orders.MakeID(shard, 1<<40-1, orders.PositionsMax-1), true},
		{"the shard above", orders.MakeID(shard+1, 1, 0), false},
		{"the shard below, a later entry", orders.MakeID(shard-1, index+5, 0), false},
	}
	for _, tc := range tests {
		if got := in(tc.id); got != tc.want {
			t.Errorf("%s: IDsAfter(%d, %d) holds %d = %v; want %v", tc.name, shard, index, tc.id, got, tc.want)
		}
	}
	if lo, hi := orders.IDsAfter(orders.ShardsMax-1, 7); lo >= hi {
		t.Errorf("IDsAfter(last shard) = %d, %d; want lo < hi", lo, hi)
	}
}
