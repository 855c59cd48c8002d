package mysql

import (
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// Limits on the configuration.
const (
	// TablesMax is the largest number of order tables per database.
	TablesMax = 1024
	// DatabasesMax is the largest number of databases (DSNs).
	DatabasesMax = 256
	// ChunkRowsMax is the largest number of rows in one INSERT statement.
	// 5000 rows of at most ~1 KiB each stay far below the 16 MiB default
	// max_allowed_packet of MariaDB (64 MiB on MySQL 8).
	ChunkRowsMax = 5000
	// ListLimitMax is the largest number of orders ListByUser returns.
	ListLimitMax = 1000
)

// Config configures a Sink.
type Config struct {
	// DSNs lists the databases, one go-sql-driver/mysql DSN each, for
	// example "flashstock:secret@tcp(db0:3306)/flashstock". Position i is
	// database i of orders.Route: changing the number or the order of the
	// DSNs moves orders between databases, and Open refuses a list that does
	// not match the layout recorded in the databases (ErrLayoutMismatch).
	// Open forces parseTime=true, loc=UTC, interpolateParams=true, a UTC
	// session time zone and the timeouts below; other DSN parameters are
	// kept.
	DSNs []string

	// Tables is the number of order tables t_order_0..t_order_{Tables-1}
	// in each database. Like DSNs, it is part of the recorded layout.
	Tables int

	// MaxOpenConns bounds the connections per database. Write uses one per
	// database per call; Get, SoldByItem and Items one per database.
	MaxOpenConns int
	// MaxIdleConns is the number of idle connections kept per database.
	MaxIdleConns int
	// ConnMaxLifetime recycles connections (so a database failover or a
	// proxy's idle timeout does not leave dead connections in the pool).
	ConnMaxLifetime time.Duration

	// ConnectTimeout bounds dialling a database, and the ping of every
	// database in Open when the caller's context has no earlier deadline.
	ConnectTimeout time.Duration
	// ReadTimeout and WriteTimeout bound every network read and write on
	// a connection, so a database that stops answering mid-statement fails
	// the call even if the caller's context has no deadline.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// LockWaitTimeout is the session's innodb_lock_wait_timeout, rounded
	// up to whole seconds: how long a statement waits for a row lock held
	// by another writer before the transaction is retried.
	LockWaitTimeout time.Duration
	// MigrateLockTimeout bounds the wait for the migration lock that
	// serialises nodes migrating the same database.
	MigrateLockTimeout time.Duration

	// ChunkRows is the largest number of rows per INSERT statement.
	ChunkRows int
	// WriteAttempts is how many times Write tries one database's
	// transaction when it loses a race with another writer (deadlock, lock
	// wait timeout, or another writer inserting the same order first).
	WriteAttempts int
}

// DefaultConfig returns a Config with production defaults and no DSNs.
func DefaultConfig() Config {
	return Config{
		Tables:             16,
		MaxOpenConns:       16,
		MaxIdleConns:       16,
		ConnMaxLifetime:    5 * time.Minute,
		ConnectTimeout:     3 * time.Second,
		ReadTimeout:        30 * time.Second,
		WriteTimeout:       30 * time.Second,
		LockWaitTimeout:    10 * time.Second,
		MigrateLockTimeout: 30 * time.Second,
		ChunkRows:          500,
		WriteAttempts:      5,
	}
}

// Validate reports the first invalid field, wrapped in ErrInvalidConfig. It
// parses every DSN but contacts no database. Error messages never contain a
// DSN's password.
func (c Config) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if len(c.DSNs) == 0 {
		return invalid("no DSNs")
	}
	if len(c.DSNs) > DatabasesMax {
		return invalid("%d DSNs; at most %d", len(c.DSNs), DatabasesMax)
	}
	for i, dsn := range c.DSNs {
		if _, err := parseDSN(dsn); err != nil {
			return invalid("DSN %d: %v", i, err)
		}
	}
	switch {
	case c.Tables < 1 || c.Tables > TablesMax:
		return invalid("Tables = %d; want 1..%d", c.Tables, TablesMax)
	case c.MaxOpenConns < 1:
		return invalid("MaxOpenConns = %d; want at least 1", c.MaxOpenConns)
	case c.MaxIdleConns < 0 || c.MaxIdleConns > c.MaxOpenConns:
		return invalid("MaxIdleConns = %d; want 0..MaxOpenConns (%d)", c.MaxIdleConns, c.MaxOpenConns)
	case c.ConnMaxLifetime < 0:
		return invalid("ConnMaxLifetime = %v; want 0 (forever) or more", c.ConnMaxLifetime)
	case c.ConnectTimeout <= 0:
		return invalid("ConnectTimeout = %v; want more than 0", c.ConnectTimeout)
	case c.ReadTimeout <= 0:
		return invalid("ReadTimeout = %v; want more than 0", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return invalid("WriteTimeout = %v; want more than 0", c.WriteTimeout)
	case c.LockWaitTimeout < time.Second:
		return invalid("LockWaitTimeout = %v; want at least 1s", c.LockWaitTimeout)
	case c.MigrateLockTimeout < time.Second:
		return invalid("MigrateLockTimeout = %v; want at least 1s", c.MigrateLockTimeout)
	case c.ChunkRows < 1 || c.ChunkRows > ChunkRowsMax:
		return invalid("ChunkRows = %d; want 1..%d", c.ChunkRows, ChunkRowsMax)
	case c.WriteAttempts < 1:
		return invalid("WriteAttempts = %d; want at least 1", c.WriteAttempts)
	}
	return nil
}

// parseDSN parses dsn. Its errors never quote the DSN: the driver's parse
// errors name at most the database name or a parameter.
func parseDSN(dsn string) (*gomysql.Config, error) {
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if cfg.DBName == "" {
		return nil, fmt.Errorf("no database name in DSN for %s", redact(cfg))
	}
	return cfg, nil
}

// driverConfig returns the driver configuration for one database: dsn with
// the settings the Sink relies on forced.
func (c Config) driverConfig(dsn string) (*gomysql.Config, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Client-side interpolation saves the prepare and close round trips of
	// every multi-row statement; the driver escapes according to the
	// server's NO_BACKSLASH_ESCAPES mode and refuses unsafe collations.
	cfg.InterpolateParams = true
	cfg.Timeout = c.ConnectTimeout
	cfg.ReadTimeout = c.ReadTimeout
	cfg.WriteTimeout = c.WriteTimeout
	params := make(map[string]string, len(cfg.Params)+2)
	for k, v := range cfg.Params {
		params[k] = v
	}
	// Session settings, sent as SET on every new connection. NOW(6) in the
	// items and schema_migrations tables is then UTC, like created_at.
	params["time_zone"] = "'+00:00'"
	params["innodb_lock_wait_timeout"] = fmt.Sprint(int64((c.LockWaitTimeout + time.Second - 1) / time.Second))
	cfg.Params = params
	return cfg, nil
}

// redact describes the database of cfg for messages and logs: user, network,
// address and database name, with the password replaced by "***".
func redact(cfg *gomysql.Config) string {
	user := cfg.User
	if cfg.Passwd != "" {
		user += ":***"
	}
	return fmt.Sprintf("%s@%s(%s)/%s", user, cfg.Net, cfg.Addr, cfg.DBName)
}
