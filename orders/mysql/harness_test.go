package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/orders"
)

// Environment of the tests that need a real MariaDB or MySQL server.
const (
	// envDSNs lists comma-separated DSNs of existing databases, normally the
	// line printed by scripts/mariadb.sh start. The tests create scratch
	// databases next to them (the user needs CREATE and DROP) and drop them
	// when done, so they can share a server with anything else.
	envDSNs = "FLASHSTOCK_TEST_MYSQL_DSNS"
	// envRequire set to "1" (as in CI) turns a missing envDSNs into a
	// failure instead of a skip.
	envRequire = "FLASHSTOCK_REQUIRE_MYSQL"
)

// serverDSNs returns the DSNs from the environment, or skips (fails under
// FLASHSTOCK_REQUIRE_MYSQL=1) when there are none.
func serverDSNs(tb testing.TB) []string {
	tb.Helper()
	var dsns []string
	for dsn := range strings.SplitSeq(os.Getenv(envDSNs), ",") {
		if dsn = strings.TrimSpace(dsn); dsn != "" {
			dsns = append(dsns, dsn)
		}
	}
	if len(dsns) == 0 {
		if os.Getenv(envRequire) == "1" {
			tb.Fatalf("%s is empty and %s=1; start a server with scripts/mariadb.sh", envDSNs, envRequire)
		}
		tb.Skipf("%s not set; start a server with scripts/mariadb.sh start DIR PORT", envDSNs)
	}
	return dsns
}

var scratchSeq atomic.Int64

// scratchDSNs creates n empty databases, database i on the server of
// environment DSN i mod len, drops them when the test ends, and returns
// their DSNs.
func scratchDSNs(tb testing.TB, n int) []string {
	tb.Helper()
	base := serverDSNs(tb)
	out := make([]string, n)
	for i := range n {
		cfg, err := gomysql.ParseDSN(base[i%len(base)])
		if err != nil {
			tb.Fatalf("%s[%d]: %v", envDSNs, i%len(base), err)
		}
		admin := openRaw(tb, cfg)
		name := fmt.Sprintf("fs_test_%d_%d_%d", os.Getpid(), scratchSeq.Add(1), i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4")
		cancel()
		if err != nil {
			tb.Fatalf("create scratch database on %s: %v", redact(cfg), err)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
				tb.Errorf("drop scratch database %s: %v", name, err)
			}
		})
		cfg.DBName = name
		out[i] = cfg.FormatDSN()
	}
	return out
}

// openRaw opens a plain connection pool, closed at test end.
func openRaw(tb testing.TB, cfg *gomysql.Config) *sql.DB {
	tb.Helper()
	cfg = cfg.Clone()
	cfg.Timeout = 5 * time.Second
	cfg.ParseTime = true
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		tb.Fatalf("connector for %s: %v", redact(cfg), err)
	}
	db := sql.OpenDB(connector)
	tb.Cleanup(func() { db.Close() })
	return db
}

// testConfig returns a Config over two fresh scratch databases.
func testConfig(tb testing.TB) Config {
	tb.Helper()
	c := DefaultConfig()
	c.DSNs = scratchDSNs(tb, 2)
	c.ConnectTimeout = 5 * time.Second
	return c
}

// openSink opens a Sink with c and closes it at test end.
func openSink(tb testing.TB, c Config) *Sink {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, c)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// testCtx returns a context that ends with the test or after a minute.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// baseTime is the CreatedAt of generated order 0. Its nanoseconds check that
// Write truncates to DATETIME(6) precision consistently.
var baseTime = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// genOrders returns n confirmed orders with IDs from Raft shard shard,
// spread over users users and items items; the same arguments give the same
// orders.
func genOrders(n, users, items, shard int, seed uint64) []orders.Order {
	r := rand.New(rand.NewPCG(seed, uint64(shard)))
	out := make([]orders.Order, n)
	for i := range out {
		out[i] = orders.Order{
			ID:        orders.MakeID(shard, uint64(i/8+1), i%8),
			ItemID:    fmt.Sprintf("item-%d", r.IntN(items)),
			UserID:    fmt.Sprintf("user-%d", r.IntN(users)),
			RequestID: fmt.Sprintf("req-%d-%d", shard, i),
			Quantity:  int32(1 + r.IntN(3)),
			Status:    orders.StatusConfirmed,
			CreatedAt: baseTime.Add(time.Duration(i) * time.Millisecond),
			Shard:     shard,
			LogIndex:  uint64(i/8 + 1),
		}
	}
	return out
}

// stored normalises o the way the database stores it.
func stored(o orders.Order) orders.Order {
	o.CreatedAt = o.CreatedAt.UTC().Truncate(time.Microsecond)
	return o
}

// wantTotals returns the sold quantity and order count per item that batch
// implies: the last occurrence of each order counts unless it is expired.
func wantTotals(batch []orders.Order) map[string]ItemTotals {
	last := make(map[uint64]orders.Order)
	for _, o := range batch {
		last[o.ID] = o
	}
	totals := make(map[string]ItemTotals)
	for _, o := range last {
		if o.Status.Returned() {
			continue
		}
		t := totals[o.ItemID]
		t.Sold += int64(o.Quantity)
		t.Orders++
		totals[o.ItemID] = t
	}
	return totals
}

// dump is every order row and items row of a Sink, for before/after
// comparisons.
type dump struct {
	orders map[uint64]placedOrder
	items  map[string]string // item -> "db:sold:orders:updated_at" joined over databases
	rows   int               // order rows, counting duplicates
}

type placedOrder struct {
	db, table int
	order     orders.Order
}

// dumpSink reads every table of every database of s. It fails the test if an
// order ID is stored twice.
func dumpSink(tb testing.TB, s *Sink) dump {
	tb.Helper()
	ctx := testCtx(tb)
	d := dump{orders: make(map[uint64]placedOrder), items: make(map[string]string)}
	for _, db := range s.dbs {
		for t := range s.cfg.Tables {
			rows, err := db.db.QueryContext(ctx, "SELECT "+orderColumns+" FROM "+orders.TableName(t))
			if err != nil {
				tb.Fatalf("dump db %d %s: %v", db.index, orders.TableName(t), err)
			}
			list, err := scanOrders(rows)
			if err != nil {
				tb.Fatalf("dump db %d %s: %v", db.index, orders.TableName(t), err)
			}
			for _, o := range list {
				d.rows++
				if prev, dup := d.orders[o.ID]; dup {
					tb.Fatalf("order %d stored twice: db %d table %d and db %d table %d",
						o.ID, prev.db, prev.table, db.index, t)
				}
				d.orders[o.ID] = placedOrder{db: db.index, table: t, order: o}
			}
		}
		rows, err := db.db.QueryContext(ctx, "SELECT item_id, sold, orders, updated_at FROM items")
		if err != nil {
			tb.Fatalf("dump db %d items: %v", db.index, err)
		}
		for rows.Next() {
			var item string
			var sold, count int64
			var updated time.Time
			if err := rows.Scan(&item, &sold, &count, &updated); err != nil {
				tb.Fatalf("dump db %d items: %v", db.index, err)
			}
			d.items[item] += fmt.Sprintf("%d:%d:%d:%s;", db.index, sold, count, updated.Format(time.RFC3339Nano))
		}
		if err := rows.Err(); err != nil {
			tb.Fatalf("dump db %d items: %v", db.index, err)
		}
		rows.Close()
	}
	return d
}

// checkStored fails the test unless s holds exactly the last occurrence of
// every order in batch, each in the table Route names, and the items
// counters and SoldByItem agree with batch.
func checkStored(tb testing.TB, s *Sink, batch []orders.Order) dump {
	tb.Helper()
	d := dumpSink(tb, s)
	last := make(map[uint64]orders.Order)
	for _, o := range batch {
		last[o.ID] = stored(o)
	}
	if d.rows != len(last) {
		tb.Errorf("stored %d order rows; want %d", d.rows, len(last))
	}
	for id, want := range last {
		got, ok := d.orders[id]
		if !ok {
			tb.Errorf("order %d missing", id)
			continue
		}
		if !got.order.CreatedAt.Equal(want.CreatedAt) {
			tb.Errorf("order %d CreatedAt = %v; want %v", id, got.order.CreatedAt, want.CreatedAt)
		}
		got.order.CreatedAt = want.CreatedAt
		if got.order != want {
			tb.Errorf("order %d = %+v; want %+v", id, got.order, want)
		}
		wantDB, wantTable := orders.Route(want.UserID, len(s.dbs), s.cfg.Tables)
		if got.db != wantDB || got.table != wantTable {
			tb.Errorf("order %d of %q in db %d table %d; want db %d table %d",
				id, want.UserID, got.db, got.table, wantDB, wantTable)
		}
	}
	ctx := testCtx(tb)
	wantItems := wantTotals(batch)
	items, err := s.Items(ctx)
	if err != nil {
		tb.Fatalf("Items: %v", err)
	}
	for item := range items {
		if items[item] == (ItemTotals{}) {
			delete(items, item) // an item whose orders all expired
		}
	}
	if !maps.Equal(items, wantItems) {
		tb.Errorf("Items() = %v; want %v", items, wantItems)
	}
	sold, err := s.SoldByItem(ctx)
	if err != nil {
		tb.Fatalf("SoldByItem: %v", err)
	}
	wantSold := make(map[string]int64)
	for item, t := range wantItems {
		wantSold[item] = t.Sold
	}
	if !maps.Equal(sold, wantSold) {
		tb.Errorf("SoldByItem() = %v; want %v", sold, wantSold)
	}
	return d
}

// writeBatches writes all in batches of size, failing the test on error.
func writeBatches(tb testing.TB, s *Sink, all []orders.Order, size int) {
	tb.Helper()
	ctx := testCtx(tb)
	for i := 0; i < len(all); i += size {
		batch := all[i:min(i+size, len(all))]
		if err := s.Write(ctx, batch); err != nil {
			tb.Fatalf("Write(batch at %d, %d orders): %v", i, len(batch), err)
		}
	}
}
