package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flashstock/flashstock/orders"
)

// TestBackupAndPrune: a backup copies the store while it is open; pruning
// the copy after an index deletes that shard's later orders only, and a
// second prune deletes nothing.
func TestBackupAndPrune(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	other := batch(50, 4) // shard 1 too; then moved to shard 2 below
	for i := range other {
		other[i].Shard, other[i].ID = 2, orders.MakeID(2, 50, i)
	}
	for _, b := range [][]orders.Order{batch(10, 5), batch(11, 5), batch(12, 5), other} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := s.Backup(ctx, path); err != nil {
		t.Fatalf("Backup = %v; want nil", err)
	}
	if err := s.Backup(ctx, path); err == nil {
		t.Fatal("Backup over an existing file = nil; want an error")
	}
	c, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, err := c.PruneAfter(ctx, 1, 10); err != nil || n != 10 {
		t.Fatalf("PruneAfter(1, 10) = %d, %v; want 10, nil", n, err)
	}
	if n, err := c.PruneAfter(ctx, 1, 10); err != nil || n != 0 {
		t.Fatalf("PruneAfter again = %d, %v; want 0, nil", n, err)
	}
	for _, o := range append(batch(10, 5), other...) {
		if _, err := c.Get(ctx, o.ID); err != nil {
			t.Errorf("Get(%d) after the prune = %v; want it kept", o.ID, err)
		}
	}
	if _, err := c.Get(ctx, orders.MakeID(1, 11, 0)); err != orders.ErrNotFound {
		t.Errorf("Get of a pruned order = %v; want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, orders.MakeID(1, 11, 0)); err != nil {
		t.Errorf("the original lost an order to the copy's prune: %v", err)
	}
}
