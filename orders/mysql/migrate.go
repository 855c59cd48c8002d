package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/flashstock/flashstock/orders"
)

// A migration is one versioned schema change. Versions are explicit,
// append-only numbers starting at 1; a released migration never changes.
// MySQL commits DDL implicitly, so a migration cannot be rolled back: each up
// function must be idempotent (CREATE TABLE IF NOT EXISTS, INSERT IGNORE) so
// that a node that crashed half-way through can run it again. Migrations must
// also be additive, so that a node still running the previous release keeps
// working against the migrated schema (Open accepts versions it does not
// know).
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, c *sql.Conn, l layout) error
}

var migrations = []migration{
	{version: 1, name: "order tables and items", up: createOrderTables},
	{version: 2, name: "shard layout", up: createShardLayout},
}

// layout is the position of one database in the sharded store.
type layout struct {
	index     int // this database's position in Config.DSNs
	databases int
	tables    int
}

func (l layout) at(index int) layout {
	l.index = index
	return l
}

func (l layout) String() string {
	return fmt.Sprintf("database %d of %d with %d order tables", l.index, l.databases, l.tables)
}

// releaseTimeout bounds releasing the migration lock after ctx is done.
const releaseTimeout = 5 * time.Second

// migrate applies the migrations db has not recorded in schema_migrations,
// then checks that the database's recorded layout is l. It holds a named lock
// (GET_LOCK, scoped to the server and the database name) for the whole run, so
// nodes starting together migrate one after the other; the second finds
// nothing to do. Running migrate again is a no-op apart from the check.
func migrate(ctx context.Context, db *sql.DB, lockTimeout time.Duration, l layout) error {
	// GET_LOCK belongs to a session: every statement must use one connection.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("mysql: migrate: connect: %w", err)
	}
	defer conn.Close()

	if deadline, ok := ctx.Deadline(); ok {
		lockTimeout = min(lockTimeout, time.Until(deadline))
	}
	// Lock names are at most 64 characters and server-wide: hash the
	// database name so that two stores on one server migrate independently.
	const lockName = "CONCAT('flashstock.migrate.', MD5(DATABASE()))"
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockName+", ?)",
		max(0, int64(lockTimeout.Round(time.Second)/time.Second))).Scan(&got)
	if err != nil {
		return fmt.Errorf("mysql: migrate: lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return fmt.Errorf("%w within %v", ErrMigrationLock, lockTimeout.Round(time.Second))
	}
	defer func() {
		// Release even when ctx is done; closing the connection would also
		// release the lock, but a pooled connection may outlive this call.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_, _ = conn.ExecContext(rctx, "DO RELEASE_LOCK("+lockName+")")
	}()

	_, err = conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL,
  name VARCHAR(128) NOT NULL,
  applied_at DATETIME(6) NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
	if err != nil {
		return fmt.Errorf("mysql: migrate: create schema_migrations: %w", err)
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if slices.Contains(applied, m.version) {
			continue
		}
		if err := m.up(ctx, conn, l); err != nil {
			return fmt.Errorf("mysql: migration %d (%s): %w", m.version, m.name, err)
		}
		_, err := conn.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, NOW(6))",
			m.version, m.name)
		if err != nil {
			return fmt.Errorf("mysql: migration %d (%s): record: %w", m.version, m.name, err)
		}
	}
	return checkLayout(ctx, conn, l)
}

func appliedVersions(ctx context.Context, conn *sql.Conn) ([]int, error) {
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("mysql: migrate: read versions: %w", err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("mysql: migrate: read versions: %w", err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mysql: migrate: read versions: %w", err)
	}
	return versions, nil
}

// createOrderTables is migration 1: the order tables and the items table.
//
// Identifiers are compared byte for byte (utf8mb4_bin): user "alice" and user
// "Alice" are different users. The (user_id, order_id) key serves ListByUser.
// items holds, per item, the quantity and the number of orders that are
// neither expired nor cancelled in this database; Write keeps it in step with the order rows.
func createOrderTables(ctx context.Context, c *sql.Conn, l layout) error {
	for t := range l.tables {
		_, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+orders.TableName(t)+` (
  order_id BIGINT UNSIGNED NOT NULL,
  item_id VARCHAR(64) NOT NULL,
  user_id VARCHAR(64) NOT NULL,
  request_id VARCHAR(64) NOT NULL,
  quantity INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  shard INT NOT NULL,
  log_index BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (order_id),
  KEY by_user (user_id, order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
		if err != nil {
			return fmt.Errorf("create %s: %w", orders.TableName(t), err)
		}
	}
	_, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS items (
  item_id VARCHAR(64) NOT NULL,
  sold BIGINT NOT NULL DEFAULT 0,
  orders BIGINT NOT NULL DEFAULT 0,
  updated_at DATETIME(6) NOT NULL,
  PRIMARY KEY (item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
	if err != nil {
		return fmt.Errorf("create items: %w", err)
	}
	return nil
}

// createShardLayout is migration 2: a one-row table recording the database's
// position in the store, checked by every later Open.
func createShardLayout(ctx context.Context, c *sql.Conn, l layout) error {
	_, err := c.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS shard_layout (
  id TINYINT UNSIGNED NOT NULL,
  db_index INT NOT NULL,
  db_count INT NOT NULL,
  table_count INT NOT NULL,
  recorded_at DATETIME(6) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`)
	if err != nil {
		return fmt.Errorf("create shard_layout: %w", err)
	}
	_, err = c.ExecContext(ctx,
		"INSERT IGNORE INTO shard_layout (id, db_index, db_count, table_count, recorded_at) VALUES (1, ?, ?, ?, NOW(6))",
		l.index, l.databases, l.tables)
	if err != nil {
		return fmt.Errorf("record shard layout: %w", err)
	}
	return nil
}

// checkLayout returns ErrLayoutMismatch unless the database records layout
// l and holds exactly the order tables l names.
func checkLayout(ctx context.Context, c *sql.Conn, l layout) error {
	var got layout
	err := c.QueryRowContext(ctx, "SELECT db_index, db_count, table_count FROM shard_layout WHERE id = 1").
		Scan(&got.index, &got.databases, &got.tables)
	if err != nil {
		return fmt.Errorf("mysql: read shard layout: %w", err)
	}
	if got != l {
		return fmt.Errorf("%w: the database is %v, the configuration makes it %v", ErrLayoutMismatch, got, l)
	}
	rows, err := c.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name LIKE 't\_order\_%'`)
	if err != nil {
		return fmt.Errorf("mysql: list order tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("mysql: list order tables: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: list order tables: %w", err)
	}
	want := make([]string, l.tables)
	for t := range want {
		want[t] = orders.TableName(t)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		return fmt.Errorf("%w: the database holds %d order tables, the configuration expects %d (t_order_0..t_order_%d)",
			ErrLayoutMismatch, len(names), l.tables, l.tables-1)
	}
	return nil
}
