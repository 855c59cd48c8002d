package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	"github.com/flashstock/flashstock/orders"
)

// Compile-time check that Sink is an orders.Pruner.
var _ orders.Pruner = (*Sink)(nil)

// PruneAfter deletes every order of shard confirmed at a log index above
// index (orders.Pruner), in every table of every database. An order ID
// names its shard and index, so the orders to delete are one range of the
// primary key (orders.IDsAfter). Each database and table is pruned in
// transactions of at most ChunkRows orders: lock the rows, delete them and
// take their contribution out of the items counters, so the counters match
// the rows after every commit. Running it again deletes nothing more.
func (s *Sink) PruneAfter(ctx context.Context, shard int, index uint64) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if shard < 0 || shard >= orders.ShardsMax {
		return 0, fmt.Errorf("mysql: prune: shard %d out of range", shard)
	}
	lo, hi := orders.IDsAfter(shard, index)
	var total atomic.Int64
	err := s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
		for t := range s.cfg.Tables {
			table := orders.TableName(t)
			for {
				n, err := s.pruneChunk(ctx, d, table, lo, hi)
				if err != nil {
					return fmt.Errorf("mysql: prune shard %d after index %d: db %d %s: %s: %w", shard, index, d.index, d.name, table, err)
				}
				total.Add(n)
				if n < int64(s.cfg.ChunkRows) {
					break
				}
			}
		}
		return nil
	})
	return total.Load(), err
}

// pruneChunk deletes up to ChunkRows orders of table with lo < ID <= hi in
// one transaction and returns how many it deleted.
func (s *Sink) pruneChunk(ctx context.Context, d *database, table string, lo, hi uint64) (int64, error) {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	rows, err := tx.QueryContext(ctx, "SELECT order_id, item_id, quantity, status FROM "+table+
		" WHERE order_id > ? AND order_id <= ? ORDER BY order_id LIMIT ? FOR UPDATE", lo, hi, s.cfg.ChunkRows)
	if err != nil {
		return 0, fmt.Errorf("lock orders: %w", err)
	}
	var ids []any
	deltas := make(map[string]itemDelta)
	for rows.Next() {
		var id uint64
		var item, status string
		var quantity int64
		if err := rows.Scan(&id, &item, &quantity, &status); err != nil {
			rows.Close()
			return 0, fmt.Errorf("lock orders: %w", err)
		}
		ids = append(ids, id)
		addDelta(deltas, item, itemDelta{}, contribution(orders.Status(status), quantity))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("lock orders: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE order_id IN ("+placeholders(len(ids))+")", ids...)
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(ids)) {
		return 0, fmt.Errorf("delete: %d rows affected; want %d", n, len(ids))
	}
	if err := s.applyItemDeltas(ctx, tx, deltas); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return int64(len(ids)), nil
}
