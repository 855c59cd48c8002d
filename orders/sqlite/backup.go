package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/flashstock/flashstock/orders"
)

// Compile-time check that Sink is an orders.Pruner.
var _ orders.Pruner = (*Sink)(nil)

// Backup writes a consistent copy of the database to path (SQLite's VACUUM
// INTO), while the store goes on serving: the embedded store's dump, taken
// after the Raft snapshot (docs/backup.md). It refuses a path that exists.
func (s *Sink) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("sqlite: backup: %s exists", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("sqlite: backup to %s: %w", path, err)
	}
	return nil
}

// PruneAfter deletes the orders of shard confirmed at a log index above
// index (orders.Pruner). The embedded store keeps no counters beside the
// rows.
func (s *Sink) PruneAfter(ctx context.Context, shard int, index uint64) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM orders WHERE shard = ? AND log_index > ?", shard, int64(index))
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune shard %d after index %d: %w", shard, index, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune shard %d after index %d: %w", shard, index, err)
	}
	return n, nil
}
