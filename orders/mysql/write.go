package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/internal/clock"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Column limits of the order tables.
const (
	idLenMax     = sale.IDLenMax // item_id, user_id, request_id: VARCHAR(64) characters
	statusLenMax = 16
)

// MySQL error numbers Write retries.
const (
	erDupEntry        = 1062 // another writer inserted the same order first
	erLockWaitTimeout = 1205
	erLockDeadlock    = 1213
)

// retryBackoff is the wait before the second attempt of a database's
// transaction; it doubles with each further attempt.
const retryBackoff = 5 * time.Millisecond

// Write stores batch. It returns nil only once every order is committed, and
// may be called again with the same or an overlapping batch: an order already
// stored keeps its row, except that a confirmed order takes the batch's
// status (paid, expired or cancelled); a settled order's status never
// changes again.
//
// Orders are grouped by database and table with orders.Route on UserID. Each
// database gets one transaction (databases are written in parallel), so a
// failed Write may have committed some databases and not others; writing
// the batch again completes it. An order that appears several times in batch
// is written once, with its last occurrence, as if the batch were applied in
// order.
//
// The items counters stay exact under re-writes because each transaction
// first reads, with a locking read (SELECT ... FOR UPDATE, one UNION ALL over
// the tables per ChunkRows orders), which of its orders are already stored
// and with which status. It then inserts only the missing orders with one
// plain multi-row INSERT per table and slab, updates only the statuses that
// changed, and adds to items, once per item, the difference between the new
// and the stored contribution of each order (quantity and 1 while it holds
// its units, 0 and 0 once expired or cancelled). Re-writing a batch therefore finds every
// order stored with the same status and changes nothing, not even the items
// rows. The locking read pins the status of stored orders until commit; an
// order another writer inserts after the read makes the plain INSERT fail with
// a duplicate key; the transaction is rolled back and retried, and the
// retry's read sees the order. Transactions run at READ COMMITTED so that the
// locking read takes no gap locks: writers of different orders never block
// each other on order rows. They do queue on the items row of an item they
// share, which is why items rows are locked last, just before the commit.
// Rows are locked in (table, order ID) order and items rows in item order,
// which keeps deadlocks rare; a deadlock or a lock wait timeout is retried
// too, up to Config.WriteAttempts attempts in all.
//
// A batch holding an order the tables cannot store faithfully (zero ID, empty
// or over-long identifiers, non-positive quantity, unknown status, zero
// CreatedAt) fails with ErrInvalidOrder before anything is written.
func (s *Sink) Write(ctx context.Context, batch []orders.Order) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(batch) == 0 {
		return nil
	}
	plan, err := s.plan(batch)
	if err != nil {
		return err
	}
	var dbs []database
	for i := range s.dbs {
		if len(plan[i]) > 0 {
			dbs = append(dbs, s.dbs[i])
		}
	}
	return s.eachDB(ctx, dbs, func(ctx context.Context, d *database) error {
		if err := s.writeDB(ctx, d, plan[d.index]); err != nil {
			return fmt.Errorf("mysql: write %d orders: db %d %s: %w", countRows(plan[d.index]), d.index, d.name, err)
		}
		return nil
	})
}

// tableRows are the orders bound for one table, sorted by ID.
type tableRows struct {
	table int
	rows  []orders.Order
}

func countRows(tables []tableRows) int {
	n := 0
	for _, t := range tables {
		n += len(t.rows)
	}
	return n
}

// plan validates batch, keeps the last occurrence of each order ID, and
// groups the orders by database and table, tables and rows sorted.
func (s *Sink) plan(batch []orders.Order) ([][]tableRows, error) {
	last := make(map[uint64]int, len(batch))
	for i := range batch {
		if err := validate(&batch[i]); err != nil {
			return nil, fmt.Errorf("%w: batch[%d] (order %d): %v", ErrInvalidOrder, i, batch[i].ID, err)
		}
		last[batch[i].ID] = i
	}
	type key struct{ db, table int }
	groups := make(map[key][]orders.Order)
	for i := range batch {
		if last[batch[i].ID] != i {
			continue
		}
		o := batch[i]
		o.CreatedAt = o.CreatedAt.UTC().Truncate(time.Microsecond) // DATETIME(6)
		db, table := orders.Route(o.UserID, len(s.dbs), s.cfg.Tables)
		groups[key{db, table}] = append(groups[key{db, table}], o)
	}
	plan := make([][]tableRows, len(s.dbs))
	for k, rows := range groups {
		slices.SortFunc(rows, func(a, b orders.Order) int { return cmp.Compare(a.ID, b.ID) })
		plan[k.db] = append(plan[k.db], tableRows{table: k.table, rows: rows})
	}
	for _, tables := range plan {
		slices.SortFunc(tables, func(a, b tableRows) int { return cmp.Compare(a.table, b.table) })
	}
	return plan, nil
}

// validate reports why o cannot be stored as it is, or nil.
func validate(o *orders.Order) error {
	switch {
	case o.ID == 0:
		return errors.New("zero ID")
	case o.Quantity < 1:
		return fmt.Errorf("quantity %d", o.Quantity)
	case o.Shard < 0 || o.Shard >= orders.ShardsMax:
		return fmt.Errorf("shard %d", o.Shard)
	case o.CreatedAt.IsZero():
		return errors.New("zero CreatedAt")
	case o.CreatedAt.UTC().Year() < 1000 || o.CreatedAt.UTC().Year() > 9999:
		return fmt.Errorf("CreatedAt %v outside DATETIME range", o.CreatedAt)
	}
	switch o.Status {
	case orders.StatusConfirmed, orders.StatusPaid, orders.StatusExpired, orders.StatusCancelled:
	default:
		return fmt.Errorf("status %q", o.Status)
	}
	for _, f := range []struct{ name, value string }{
		{"ItemID", o.ItemID}, {"UserID", o.UserID}, {"RequestID", o.RequestID},
	} {
		switch {
		case f.value == "" && f.name != "RequestID":
			return fmt.Errorf("empty %s", f.name)
		case !utf8.ValidString(f.value):
			return fmt.Errorf("%s is not valid UTF-8", f.name)
		case utf8.RuneCountInString(f.value) > idLenMax:
			return fmt.Errorf("%s longer than %d characters", f.name, idLenMax)
		}
	}
	return nil
}

// writeDB writes one database's share of a batch, retrying the transaction
// when it loses a race with another writer.
//
// The first attempt is optimistic: a flush almost always carries only new
// orders, so it inserts them all without the locking read. If any order is
// already stored (a re-flush, a status change), the insert fails with a
// duplicate key, the transaction rolls back, and the careful path runs. So it
// does when the optimistic insert loses a race with another writer (a
// deadlock, a lock wait timeout): its transaction is rolled back whole.
func (s *Sink) writeDB(ctx context.Context, d *database, tables []tableRows) error {
	err := s.writeTx(ctx, d, tables, true)
	if err == nil || !retryable(err) {
		return err
	}
	wait := retryBackoff
	for attempt := 1; ; attempt++ {
		err := s.writeTx(ctx, d, tables, false)
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt >= s.cfg.WriteAttempts {
			if attempt > 1 {
				return fmt.Errorf("attempt %d: %w", attempt, err)
			}
			return err
		}
		if berr := clock.Sleep(ctx, wait); berr != nil {
			return fmt.Errorf("attempt %d: %w (then %w)", attempt, err, berr)
		}
		wait *= 2
	}
}

// retryable reports whether err means the transaction lost a race that a
// fresh attempt resolves.
func retryable(err error) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case erDupEntry, erLockWaitTimeout, erLockDeadlock:
		return true
	}
	return false
}

// storedOrder is what writeTx needs of an order already in a table.
type storedOrder struct {
	itemID   string
	quantity int64
	status   orders.Status
}

// itemDelta is the change one transaction makes to an items row.
type itemDelta struct{ sold, orders int64 }

// contribution is what an order counts for in its item's counters.
func contribution(status orders.Status, quantity int64) itemDelta {
	if status.Returned() {
		return itemDelta{}
	}
	return itemDelta{sold: quantity, orders: 1}
}

// writeTx is one attempt at writing tables in one transaction; see Write.
func (s *Sink) writeTx(ctx context.Context, d *database, tables []tableRows, optimistic bool) error {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit

	deltas := make(map[string]itemDelta)
	for slab := range slabs(tables, s.cfg.ChunkRows) {
		stored := map[uint64]storedOrder{}
		if !optimistic {
			if stored, err = lockStored(ctx, tx, slab); err != nil {
				return err
			}
		}
		for _, t := range slab {
			if err := writeRows(ctx, tx, orders.TableName(t.table), t.rows, stored, deltas); err != nil {
				return fmt.Errorf("%s: %w", orders.TableName(t.table), err)
			}
		}
	}
	if err := s.applyItemDeltas(ctx, tx, deltas); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// slabs cuts tables, in order, into slabs of at most rowsMax rows, splitting
// a table's rows across slabs where needed. One slab costs one locking read
// and one INSERT per table in it, each statement holding at most rowsMax rows.
func slabs(tables []tableRows, rowsMax int) iter.Seq[[]tableRows] {
	return func(yield func([]tableRows) bool) {
		var slab []tableRows
		room := rowsMax
		for _, t := range tables {
			rows := t.rows
			for len(rows) > 0 {
				n := min(room, len(rows))
				slab = append(slab, tableRows{table: t.table, rows: rows[:n]})
				rows, room = rows[n:], room-n
				if room == 0 {
					if !yield(slab) {
						return
					}
					slab, room = nil, rowsMax
				}
			}
		}
		if len(slab) > 0 {
			yield(slab)
		}
	}
}

// writeRows writes rows (sorted by ID) to table, given which of them are
// stored, and adds their effect on the items counters to deltas.
func writeRows(ctx context.Context, tx *sql.Tx, table string, rows []orders.Order,
	stored map[uint64]storedOrder, deltas map[string]itemDelta,
) error {
	fresh := make([]orders.Order, 0, len(rows))
	changed := make(map[orders.Status][]any)
	for i := range rows {
		o := &rows[i]
		old, ok := stored[o.ID]
		if !ok {
			fresh = append(fresh, *o)
			addDelta(deltas, o.ItemID, contribution(o.Status, int64(o.Quantity)), itemDelta{})
			continue
		}
		if old.status == o.Status || old.status != orders.StatusConfirmed {
			// Statuses only move forward (confirmed -> paid | expired | cancelled): a
			// stale re-flush of an older batch never undoes a settlement.
			continue
		}
		changed[o.Status] = append(changed[o.Status], o.ID)
		// The stored row keeps its item and quantity; only the status moves.
		addDelta(deltas, old.itemID, contribution(o.Status, old.quantity), contribution(old.status, old.quantity))
	}
	if len(fresh) > 0 {
		if err := insertRows(ctx, tx, table, fresh); err != nil {
			return err
		}
	}
	// Deterministic order: cancelled, confirmed, expired, paid.
	statuses := make([]orders.Status, 0, len(changed))
	for st := range changed {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		ids := changed[st]
		query := "UPDATE " + table + " SET status = ? WHERE order_id IN (" + placeholders(len(ids)) + ")"
		if _, err := tx.ExecContext(ctx, query, append([]any{string(st)}, ids...)...); err != nil {
			return fmt.Errorf("update status: %w", err)
		}
	}
	return nil
}

func addDelta(deltas map[string]itemDelta, item string, now, before itemDelta) {
	if now == before {
		return
	}
	d := deltas[item]
	d.sold += now.sold - before.sold
	d.orders += now.orders - before.orders
	deltas[item] = d
}

// lockStored returns the stored orders among those of slab, each looked up
// in its own table, locked until the transaction ends. It reads all tables
// of the slab with one UNION ALL of locking primary-key lookups, in slab
// order, so rows are locked in (table, order ID) order.
func lockStored(ctx context.Context, tx *sql.Tx, slab []tableRows) (map[uint64]storedOrder, error) {
	var b strings.Builder
	var args []any
	for i, t := range slab {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("(SELECT order_id, item_id, quantity, status FROM ")
		b.WriteString(orders.TableName(t.table))
		b.WriteString(" WHERE order_id IN (")
		b.WriteString(placeholders(len(t.rows)))
		b.WriteString(") FOR UPDATE)")
		for j := range t.rows {
			args = append(args, t.rows[j].ID)
		}
	}
	res, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("lock stored orders: %w", err)
	}
	defer res.Close()
	var stored map[uint64]storedOrder
	for res.Next() {
		var id uint64
		var so storedOrder
		var status string
		if err := res.Scan(&id, &so.itemID, &so.quantity, &status); err != nil {
			return nil, fmt.Errorf("lock stored orders: %w", err)
		}
		so.status = orders.Status(status)
		if stored == nil {
			stored = make(map[uint64]storedOrder)
		}
		stored[id] = so
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("lock stored orders: %w", err)
	}
	return stored, nil
}

// insertRows inserts rows, none of which is stored, with one statement.
func insertRows(ctx context.Context, tx *sql.Tx, table string, rows []orders.Order) error {
	const columns = 9
	var b strings.Builder
	b.Grow(len(table) + 150 + len(rows)*(2*columns+3))
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (" + orderColumns + ") VALUES ")
	args := make([]any, 0, len(rows)*columns)
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?)")
		o := &rows[i]
		args = append(args, o.ID, o.ItemID, o.UserID, o.RequestID, o.Quantity,
			string(o.Status), o.CreatedAt, o.Shard, o.LogIndex)
	}
	res, err := tx.ExecContext(ctx, b.String(), args...)
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n != int64(len(rows)) {
		return fmt.Errorf("insert: %d rows affected; want %d", n, len(rows))
	}
	return nil
}

// applyItemDeltas adds deltas to the items table with one statement per
// ChunkRows items, in item order. Items whose delta is zero are not touched.
func (s *Sink) applyItemDeltas(ctx context.Context, tx *sql.Tx, deltas map[string]itemDelta) error {
	items := make([]string, 0, len(deltas))
	for item, d := range deltas {
		if d != (itemDelta{}) {
			items = append(items, item)
		}
	}
	if len(items) == 0 {
		return nil
	}
	slices.Sort(items)
	for chunk := range slices.Chunk(items, s.cfg.ChunkRows) {
		var b strings.Builder
		b.WriteString("INSERT INTO items (item_id, sold, orders, updated_at) VALUES ")
		args := make([]any, 0, 3*len(chunk))
		for i, item := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?,?,NOW(6))")
			args = append(args, item, deltas[item].sold, deltas[item].orders)
		}
		b.WriteString(" ON DUPLICATE KEY UPDATE sold = sold + VALUES(sold), orders = orders + VALUES(orders), updated_at = VALUES(updated_at)")
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("items: %w", err)
		}
	}
	return nil
}

// placeholders returns "?,?,...,?" with n placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}
