// Package sqlite is the embedded order store: a SQLite database in the
// node's data dir, through a pure-Go driver (no cgo). It is the default when
// no MySQL is configured, so a single node runs with nothing else installed.
//
// Writes are idempotent upserts keyed by order ID in one transaction per
// batch, with synchronous=FULL: the flushed watermark advances in Raft only
// after Write returns, so a row Write reported must survive a power loss.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/flashstock/flashstock/orders"
)

// insertRows are the sizes of the prepared multi-row inserts, largest
// first: a batch goes through the largest that fits, then the next.
// Parsing a multi-row statement for every batch cost as much as inserting
// its rows.
var insertRows = [...]int{100, 10, 1}

const schema = `
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
	order_id   INTEGER PRIMARY KEY,
	item_id    TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	request_id TEXT NOT NULL,
	quantity   INTEGER NOT NULL,
	status     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	shard      INTEGER NOT NULL,
	log_index  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user ON orders (user_id, order_id);
INSERT OR IGNORE INTO schema_migrations VALUES (1, datetime('now'));
`

// Sink is the embedded order store.
type Sink struct {
	db      *sql.DB
	inserts [len(insertRows)]*sql.Stmt // prepared once, by insertRows
}

// Open opens or creates the database at path and applies the schema.
func Open(ctx context.Context, path string) (*Sink, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One writer at a time is all SQLite allows; readers share the pool.
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: schema %s: %w", path, err)
	}
	sink := &Sink{db: db}
	for i, n := range insertRows {
		if sink.inserts[i], err = db.PrepareContext(ctx, insertSQL(n)); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlite: prepare %s: %w", path, err)
		}
	}
	return sink, nil
}

// Write upserts a batch in one transaction.
func (s *Sink) Write(ctx context.Context, batch []orders.Order) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	args := make([]any, 0, insertRows[0]*9)
	for i, n := range insertRows {
		if len(batch) < n {
			continue
		}
		stmt := tx.StmtContext(ctx, s.inserts[i])
		for ; len(batch) >= n; batch = batch[n:] {
			args = args[:0]
			for _, o := range batch[:n] {
				args = append(args, int64(o.ID), o.ItemID, o.UserID, o.RequestID, o.Quantity, string(o.Status), o.CreatedAt.UnixNano(), o.Shard, int64(o.LogIndex))
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("sqlite: insert: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// insertSQL is an upsert of rows orders. Statuses only move forward
// (confirmed -> paid | expired | cancelled), so a stale re-flush never undoes a
// settlement.
func insertSQL(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO orders (" + columns + ") VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
	}
	b.WriteString(" ON CONFLICT(order_id) DO UPDATE SET status=excluded.status WHERE orders.status = 'confirmed'")
	return b.String()
}

const columns = "order_id,item_id,user_id,request_id,quantity,status,created_at,shard,log_index"

type scanner interface{ Scan(dest ...any) error }

func scanOrder(r scanner) (orders.Order, error) {
	var (
		o              orders.Order
		id, idx, nanos int64
		status         string
	)
	if err := r.Scan(&id, &o.ItemID, &o.UserID, &o.RequestID, &o.Quantity, &status, &nanos, &o.Shard, &idx); err != nil {
		return orders.Order{}, err
	}
	o.ID, o.LogIndex, o.Status = uint64(id), uint64(idx), orders.Status(status)
	o.CreatedAt = time.Unix(0, nanos).UTC()
	return o, nil
}

// Get returns one order, or orders.ErrNotFound.
func (s *Sink) Get(ctx context.Context, id uint64) (orders.Order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, "SELECT "+columns+" FROM orders WHERE order_id = ?", int64(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return orders.Order{}, orders.ErrNotFound
	}
	if err != nil {
		return orders.Order{}, fmt.Errorf("sqlite: get: %w", err)
	}
	return o, nil
}

// ListByUser returns a user's newest orders first.
func (s *Sink) ListByUser(ctx context.Context, userID string, limit int) ([]orders.Order, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+columns+" FROM orders WHERE user_id = ? ORDER BY order_id DESC LIMIT ?", userID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []orders.Order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// SoldByItem returns the units held by orders neither expired nor
// cancelled, per item: the
// order store's side of reconciliation.
func (s *Sink) SoldByItem(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT item_id, SUM(quantity) FROM orders WHERE status NOT IN ('expired', 'cancelled') GROUP BY item_id")
	if err != nil {
		return nil, fmt.Errorf("sqlite: sold by item: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64)
	for rows.Next() {
		var item string
		var n int64
		if err := rows.Scan(&item, &n); err != nil {
			return nil, fmt.Errorf("sqlite: sold by item: %w", err)
		}
		out[item] = n
	}
	return out, rows.Err()
}

// Close closes the database.
func (s *Sink) Close() error {
	for _, st := range s.inserts {
		st.Close()
	}
	return s.db.Close()
}
