// Package mysql is the sharded MySQL/MariaDB order store: an orders.Sink that
// spreads confirmed orders over several databases with several order tables
// each, routed by user (orders.Route) so that one user's orders share a table.
//
// Each database holds t_order_0..t_order_{T-1}, an items reporting table with
// per-item counters, a shard_layout row recording which database of how many
// it is, and schema_migrations. Open applies the versioned migrations under a
// named lock and refuses to run against a database whose recorded layout
// differs from the configuration, since a different number or order of
// databases or tables would route users to tables that do not hold their
// orders.
//
// Write is idempotent (see Sink.Write), Get searches every table because an
// order ID does not name its user, and ListByUser reads the user's one table.
//
// Tested against MariaDB 10.11; it uses only syntax MySQL 8 shares. Write
// runs its transactions at READ COMMITTED, so a server with binary logging on
// needs binlog_format ROW or MIXED (the defaults of MySQL 8 and MariaDB).
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/orders"
)

// Errors returned by the Sink, matched with errors.Is. Driver and database
// errors are wrapped with the database they came from.
var (
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("mysql: invalid config")
	// ErrUnreachable is returned by Open when a database cannot be dialled,
	// authenticated against or pinged within the connect timeout.
	ErrUnreachable = errors.New("mysql: database unreachable")
	// ErrLayoutMismatch is returned by Open when a database records a
	// different position, number of databases or number of tables than the
	// configuration.
	ErrLayoutMismatch = errors.New("mysql: shard layout mismatch")
	// ErrMigrationLock is returned by Open when another node holds the
	// migration lock for longer than MigrateLockTimeout.
	ErrMigrationLock = errors.New("mysql: migration lock not acquired")
	// ErrInvalidOrder is returned by Write, before anything is written, for
	// a batch holding an order the schema cannot store faithfully.
	ErrInvalidOrder = errors.New("mysql: invalid order")
	// ErrInvalidLimit is returned by ListByUser for a limit below 1.
	ErrInvalidLimit = errors.New("mysql: invalid limit")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("mysql: sink closed")
)

// orderColumns are the columns of an order table in the order scanOrder
// reads and Write inserts them.
const orderColumns = "order_id, item_id, user_id, request_id, quantity, status, created_at, shard, log_index"

// Sink is the sharded order store. It is safe for concurrent use; every method
// blocks until the databases answer or ctx is done, and each network read or
// write is also bounded by Config.ReadTimeout and WriteTimeout.
type Sink struct {
	cfg    Config
	dbs    []database
	getSQL string // order lookup by ID across all tables of one database
	closed atomic.Bool
}

// database is one shard database.
type database struct {
	index int
	name  string // redacted DSN, for errors
	db    *sql.DB
}

// Compile-time check that Sink is an orders.Sink.
var _ orders.Sink = (*Sink)(nil)

// Open connects to every database in cfg.DSNs, pings each within
// cfg.ConnectTimeout (or ctx's earlier deadline), applies the schema
// migrations and checks the shard layout. An unreachable database fails Open
// with a one-line error wrapping ErrUnreachable that names the database
// without its password.
func Open(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, getSQL: getSQL(cfg.Tables)}
	for i, dsn := range cfg.DSNs {
		dcfg, err := cfg.driverConfig(dsn)
		if err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("%w: DSN %d: %v", ErrInvalidConfig, i, err)
		}
		connector, err := gomysql.NewConnector(dcfg)
		if err != nil {
			s.closeDBs()
			return nil, fmt.Errorf("%w: DSN %d (%s): %v", ErrInvalidConfig, i, redact(dcfg), err)
		}
		db := sql.OpenDB(connector)
		db.SetMaxOpenConns(cfg.MaxOpenConns)
		db.SetMaxIdleConns(cfg.MaxIdleConns)
		db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
		s.dbs = append(s.dbs, database{index: i, name: redact(dcfg), db: db})
	}

	pingCtx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	err := s.eachDB(pingCtx, s.dbs, func(ctx context.Context, d *database) error {
		if err := d.db.PingContext(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %v: %w", cfg.ConnectTimeout, err)
			}
			return fmt.Errorf("%w: db %d %s: %w", ErrUnreachable, d.index, d.name, oneLine(err))
		}
		return nil
	})
	if err != nil {
		s.closeDBs()
		return nil, err
	}

	l := layout{databases: len(s.dbs), tables: cfg.Tables}
	err = s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
		if err := migrate(ctx, d.db, cfg.MigrateLockTimeout, l.at(d.index)); err != nil {
			return fmt.Errorf("db %d %s: %w", d.index, d.name, err)
		}
		return nil
	})
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pools. Calls in flight finish or fail; later
// calls return ErrClosed. Close is idempotent.
func (s *Sink) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.closeDBs()
}

func (s *Sink) closeDBs() error {
	var errs []error
	for _, d := range s.dbs {
		if err := d.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("db %d %s: %w", d.index, d.name, err))
		}
	}
	return errors.Join(errs...)
}

// Get returns the order with this ID. Orders are routed by user, so the ID
// does not say which table holds it: Get asks every database at once, each
// with one UNION ALL of primary-key lookups over its tables, and returns
// orders.ErrNotFound only if every database answered without it.
func (s *Sink) Get(ctx context.Context, id uint64) (orders.Order, error) {
	if s.closed.Load() {
		return orders.Order{}, ErrClosed
	}
	found := make([][]orders.Order, len(s.dbs))
	args := make([]any, s.cfg.Tables)
	for i := range args {
		args[i] = id
	}
	err := s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
		rows, err := d.db.QueryContext(ctx, s.getSQL, args...)
		if err != nil {
			return fmt.Errorf("mysql: get order %d: db %d %s: %w", id, d.index, d.name, err)
		}
		found[d.index], err = scanOrders(rows)
		if err != nil {
			return fmt.Errorf("mysql: get order %d: db %d %s: %w", id, d.index, d.name, err)
		}
		return nil
	})
	if err != nil {
		return orders.Order{}, err
	}
	for _, list := range found {
		if len(list) > 0 {
			return list[0], nil
		}
	}
	return orders.Order{}, orders.ErrNotFound
}

// getSQL builds the lookup of one order ID across tables tables.
func getSQL(tables int) string {
	var b strings.Builder
	for t := range tables {
		if t > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT %s FROM %s WHERE order_id = ?", orderColumns, orders.TableName(t))
	}
	return b.String()
}

// ListByUser returns up to limit orders of userID, newest first (by
// created_at, then by order ID), reading only the user's table. A limit above
// ListLimitMax is lowered to it; a limit below 1 is ErrInvalidLimit. A user
// without orders gets an empty slice and no error.
func (s *Sink) ListByUser(ctx context.Context, userID string, limit int) ([]orders.Order, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if limit < 1 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidLimit, limit)
	}
	limit = min(limit, ListLimitMax)
	dbIndex, table := orders.Route(userID, len(s.dbs), s.cfg.Tables)
	d := &s.dbs[dbIndex]
	query := "SELECT " + orderColumns + " FROM " + orders.TableName(table) +
		" WHERE user_id = ? ORDER BY created_at DESC, order_id DESC LIMIT ?"
	rows, err := d.db.QueryContext(ctx, query, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("mysql: list orders of user: db %d %s: %w", d.index, d.name, err)
	}
	list, err := scanOrders(rows)
	if err != nil {
		return nil, fmt.Errorf("mysql: list orders of user: db %d %s: %w", d.index, d.name, err)
	}
	if list == nil {
		list = []orders.Order{}
	}
	return list, nil
}

// SoldByItem returns, per item, the quantity of all orders that are neither
// expired nor cancelled, summed over every table of every database. It scans the order
// tables rather than trusting the items counters, so reconciliation can
// compare it with the Raft state; it reads every row and is meant for
// occasional use, not for the request path.
func (s *Sink) SoldByItem(ctx context.Context) (map[string]int64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	perDB := make([]map[string]int64, len(s.dbs))
	err := s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
		sold := make(map[string]int64)
		for t := range s.cfg.Tables {
			query := "SELECT item_id, SUM(quantity) FROM " + orders.TableName(t) +
				" WHERE status NOT IN (?, ?) GROUP BY item_id"
			if err := sumInto(ctx, d.db, sold, query, string(orders.StatusExpired), string(orders.StatusCancelled)); err != nil {
				return fmt.Errorf("mysql: sold by item: db %d %s: %s: %w", d.index, d.name, orders.TableName(t), err)
			}
		}
		perDB[d.index] = sold
		return nil
	})
	if err != nil {
		return nil, err
	}
	return mergeSums(perDB), nil
}

// ItemTotals are the items-table counters of one item summed over all
// databases: the quantity sold and the number of orders, counting orders that
// are neither expired nor cancelled.
type ItemTotals struct {
	Sold   int64
	Orders int64
}

// Items returns the items-table counters that Write maintains, summed over
// all databases. They equal what SoldByItem computes from the order rows
// (Sold) as long as only Write changes the tables; reading them costs one
// small query per database.
func (s *Sink) Items(ctx context.Context) (map[string]ItemTotals, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var mu sync.Mutex
	totals := make(map[string]ItemTotals)
	err := s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
		rows, err := d.db.QueryContext(ctx, "SELECT item_id, sold, orders FROM items")
		if err != nil {
			return fmt.Errorf("mysql: items: db %d %s: %w", d.index, d.name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var item string
			var it ItemTotals
			if err := rows.Scan(&item, &it.Sold, &it.Orders); err != nil {
				return fmt.Errorf("mysql: items: db %d %s: %w", d.index, d.name, err)
			}
			mu.Lock()
			sum := totals[item]
			sum.Sold += it.Sold
			sum.Orders += it.Orders
			totals[item] = sum
			mu.Unlock()
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("mysql: items: db %d %s: %w", d.index, d.name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return totals, nil
}

// sumInto adds the (key, sum) rows of query to m.
func sumInto(ctx context.Context, db *sql.DB, m map[string]int64, query string, args ...any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var sum int64
		if err := rows.Scan(&key, &sum); err != nil {
			return err
		}
		m[key] += sum
	}
	return rows.Err()
}

func mergeSums(parts []map[string]int64) map[string]int64 {
	out := make(map[string]int64)
	for _, p := range parts {
		for k, v := range p {
			out[k] += v
		}
	}
	return out
}

// scanOrders reads every row of rows, in orderColumns order, and closes rows.
func scanOrders(rows *sql.Rows) ([]orders.Order, error) {
	defer rows.Close()
	var list []orders.Order
	for rows.Next() {
		var o orders.Order
		var status string
		if err := rows.Scan(&o.ID, &o.ItemID, &o.UserID, &o.RequestID, &o.Quantity,
			&status, &o.CreatedAt, &o.Shard, &o.LogIndex); err != nil {
			return nil, err
		}
		o.Status = orders.Status(status)
		o.CreatedAt = o.CreatedAt.UTC()
		list = append(list, o)
	}
	return list, rows.Err()
}

// eachDB runs fn for every database in dbs concurrently and waits for all of
// them. It returns the error of the lowest-indexed database that failed; ctx
// bounds every call.
func (s *Sink) eachDB(ctx context.Context, dbs []database, fn func(ctx context.Context, d *database) error) error {
	if len(dbs) == 1 {
		return fn(ctx, &dbs[0])
	}
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i := range dbs {
		wg.Go(func() { errs[i] = fn(ctx, &dbs[i]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// oneLine flattens a multi-line error message (errors.Join, some server
// messages) so Open's errors fit one log line. It keeps the error chain.
func oneLine(err error) error {
	if !strings.ContainsAny(err.Error(), "\r\n") {
		return err
	}
	return &flatError{err: err}
}

type flatError struct{ err error }

func (e *flatError) Error() string {
	return strings.Join(strings.Fields(e.err.Error()), " ")
}

func (e *flatError) Unwrap() error { return e.err }

// copiesChunk bounds the IN list of one Copies query.
const copiesChunk = 1000

// Copies returns every stored row of the given order IDs, across all
// databases and tables, keyed by ID: an order stored exactly once has one
// entry, a missing one none. Reconciliation and load-test verification use
// it to prove "exactly once".
func (s *Sink) Copies(ctx context.Context, ids []uint64) (map[uint64][]orders.Order, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	out := make(map[uint64][]orders.Order, len(ids))
	var mu sync.Mutex
	for start := 0; start < len(ids); start += copiesChunk {
		chunk := ids[start:min(start+copiesChunk, len(ids))]
		in := strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")
		var q strings.Builder
		args := make([]any, 0, len(chunk)*s.cfg.Tables)
		for t := range s.cfg.Tables {
			if t > 0 {
				q.WriteString(" UNION ALL ")
			}
			fmt.Fprintf(&q, "SELECT %s FROM %s WHERE order_id IN (%s)", orderColumns, orders.TableName(t), in)
			for _, id := range chunk {
				args = append(args, id)
			}
		}
		err := s.eachDB(ctx, s.dbs, func(ctx context.Context, d *database) error {
			rows, err := d.db.QueryContext(ctx, q.String(), args...)
			if err != nil {
				return fmt.Errorf("mysql: copies: db %d %s: %w", d.index, d.name, err)
			}
			found, err := scanOrders(rows)
			if err != nil {
				return fmt.Errorf("mysql: copies: db %d %s: %w", d.index, d.name, err)
			}
			mu.Lock()
			for _, o := range found {
				out[o.ID] = append(out[o.ID], o)
			}
			mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
