package mysql

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
)

// schemaState is what migrations leave in one database.
type schemaState struct {
	migrations []string // "version name applied_at"
	tables     []string
	layout     string
}

func readSchema(t *testing.T, s *Sink) []schemaState {
	t.Helper()
	ctx := testCtx(t)
	var out []schemaState
	for _, d := range s.dbs {
		var st schemaState
		rows, err := d.db.QueryContext(ctx, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
		if err != nil {
			t.Fatalf("db %d: read schema_migrations: %v", d.index, err)
		}
		for rows.Next() {
			var v int
			var name string
			var at time.Time
			if err := rows.Scan(&v, &name, &at); err != nil {
				t.Fatalf("db %d: read schema_migrations: %v", d.index, err)
			}
			st.migrations = append(st.migrations, fmt.Sprintf("%d %s %s", v, name, at.Format(time.RFC3339Nano)))
		}
		rows.Close()
		rows, err = d.db.QueryContext(ctx, "SHOW TABLES")
		if err != nil {
			t.Fatalf("db %d: show tables: %v", d.index, err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatalf("db %d: show tables: %v", d.index, err)
			}
			st.tables = append(st.tables, name)
		}
		rows.Close()
		slices.Sort(st.tables)
		var idx, dbs, tables int
		var at time.Time
		err = d.db.QueryRowContext(ctx, "SELECT db_index, db_count, table_count, recorded_at FROM shard_layout").
			Scan(&idx, &dbs, &tables, &at)
		if err != nil {
			t.Fatalf("db %d: read shard_layout: %v", d.index, err)
		}
		st.layout = fmt.Sprintf("%d/%d/%d %s", idx, dbs, tables, at.Format(time.RFC3339Nano))
		out = append(out, st)
	}
	return out
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	c := testConfig(t)
	s := openSink(t, c)
	before := readSchema(t, s)

	wantTables := []string{"items", "schema_migrations", "shard_layout"}
	for i := range c.Tables {
		wantTables = append(wantTables, orders.TableName(i))
	}
	slices.Sort(wantTables)
	for i, st := range before {
		if len(st.migrations) != len(migrations) {
			t.Errorf("db %d: schema_migrations = %q; want versions 1..%d", i, st.migrations, len(migrations))
		}
		if !slices.Equal(st.tables, wantTables) {
			t.Errorf("db %d: tables = %q; want %q", i, st.tables, wantTables)
		}
	}

	// Migrate again directly, then through a second Open.
	for _, d := range s.dbs {
		if err := migrate(testCtx(t), d.db, c.MigrateLockTimeout, layout{index: d.index, databases: 2, tables: c.Tables}); err != nil {
			t.Fatalf("second migrate of db %d: %v", d.index, err)
		}
	}
	openSink(t, c)

	after := readSchema(t, s)
	for i := range before {
		if !slices.Equal(before[i].migrations, after[i].migrations) ||
			!slices.Equal(before[i].tables, after[i].tables) ||
			before[i].layout != after[i].layout {
			t.Errorf("db %d: schema after migrating again = %+v; want unchanged %+v", i, after[i], before[i])
		}
	}
}

// TestMigrateConcurrent opens the same fresh databases from several
// goroutines at once, like nodes starting together.
func TestMigrateConcurrent(t *testing.T) {
	c := testConfig(t)
	const nodes = 4
	errs := make([]error, nodes)
	sinks := make([]*Sink, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sinks[i], errs[i] = Open(ctx, c)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open by node %d: %v", i, err)
			continue
		}
		defer sinks[i].Close()
	}
	if t.Failed() {
		return
	}
	for i, st := range readSchema(t, sinks[0]) {
		if len(st.migrations) != len(migrations) {
			t.Errorf("db %d: schema_migrations = %q; want each of versions 1..%d once", i, st.migrations, len(migrations))
		}
	}
}

func TestOpenLayoutMismatch(t *testing.T) {
	c := testConfig(t)
	s := openSink(t, c)
	if err := s.Write(testCtx(t), genOrders(10, 5, 2, 0, 1)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
	}{
		{"fewer tables", func(c *Config) { c.Tables = 8 }},
		{"more tables", func(c *Config) { c.Tables = 32 }},
		{"databases swapped", func(c *Config) { c.DSNs = []string{c.DSNs[1], c.DSNs[0]} }},
		{"database dropped", func(c *Config) { c.DSNs = c.DSNs[:1] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := c
			bad.DSNs = slices.Clone(c.DSNs)
			tt.mutate(&bad)
			got, err := Open(testCtx(t), bad)
			if err == nil {
				got.Close()
				t.Fatalf("Open with %s = nil error; want ErrLayoutMismatch", tt.name)
			}
			if !errors.Is(err, ErrLayoutMismatch) {
				t.Fatalf("Open with %s = %v; want ErrLayoutMismatch", tt.name, err)
			}
		})
	}
}

// TestWriteExactlyOnce writes 10k orders over 2 databases x 16 tables in
// flusher-sized batches, then writes them all again, differently batched: the
// store must hold every order once, in its routed table, and the second pass
// must change nothing, not even the items rows' updated_at.
func TestWriteExactlyOnce(t *testing.T) {
	s := openSink(t, testConfig(t))
	all := genOrders(10_000, 3000, 20, 3, 42)
	writeBatches(t, s, all, 500)
	first := checkStored(t, s, all)

	perTable := make(map[[2]int]int)
	for _, p := range first.orders {
		perTable[[2]int{p.db, p.table}]++
	}
	if len(perTable) != 2*16 {
		t.Errorf("orders spread over %d tables; want all 32", len(perTable))
	}

	// Again: same batches, one big batch, shuffled small batches.
	writeBatches(t, s, all, 500)
	writeBatches(t, s, all, len(all))
	shuffled := slices.Clone(all)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	writeBatches(t, s, shuffled, 333)

	second := checkStored(t, s, all)
	if !maps.Equal(first.items, second.items) {
		t.Errorf("items rows changed by re-writes:\nbefore %v\nafter  %v", first.items, second.items)
	}
}

// TestWriteStatusUpdate re-writes orders with new statuses: the rows take the
// new status, expired and cancelled orders leave the items counters, and re-writing the
// updated batch is again a no-op.
func TestWriteStatusUpdate(t *testing.T) {
	s := openSink(t, testConfig(t))
	all := genOrders(2000, 500, 5, 1, 9)
	writeBatches(t, s, all, 500)
	checkStored(t, s, all)

	updated := slices.Clone(all)
	for i := range updated {
		switch i % 4 {
		case 1:
			updated[i].Status = orders.StatusPaid
		case 2:
			updated[i].Status = orders.StatusExpired
		case 3:
			updated[i].Status = orders.StatusCancelled
		}
	}
	writeBatches(t, s, updated, 500)
	before := checkStored(t, s, updated)
	// A stale re-flush of the confirmed batch undoes nothing.
	writeBatches(t, s, all, 500)
	checkStored(t, s, updated)
	writeBatches(t, s, updated, 500)
	after := checkStored(t, s, updated)
	if !maps.Equal(before.items, after.items) {
		t.Errorf("items rows changed by a re-write:\nbefore %v\nafter  %v", before.items, after.items)
	}
}

// TestWriteStatusTransitions checks each status change of one order, and an
// order that appears twice in one batch: a confirmed order takes the new
// status; a settled one (paid, expired, cancelled) keeps its own.
func TestWriteStatusTransitions(t *testing.T) {
	s := openSink(t, testConfig(t))
	statuses := []orders.Status{orders.StatusConfirmed, orders.StatusPaid, orders.StatusExpired, orders.StatusCancelled}
	var n uint64
	for _, from := range statuses {
		for _, to := range statuses {
			for _, sameBatch := range []bool{false, true} {
				n++
				name := fmt.Sprintf("%s->%s/same-batch=%v", from, to, sameBatch)
				t.Run(name, func(t *testing.T) {
					ctx := testCtx(t)
					o := orders.Order{
						ID: orders.MakeID(9, n, 0), ItemID: "item-" + name, UserID: "user-" + name,
						RequestID: "req", Quantity: 2, Status: from, CreatedAt: baseTime, Shard: 9, LogIndex: n,
					}
					next := o
					next.Status = to
					var err error
					if sameBatch {
						err = s.Write(ctx, []orders.Order{o, next})
					} else if err = s.Write(ctx, []orders.Order{o}); err == nil {
						err = s.Write(ctx, []orders.Order{next})
					}
					if err != nil {
						t.Fatalf("Write: %v", err)
					}
					got, err := s.Get(ctx, o.ID)
					if err != nil {
						t.Fatalf("Get(%d): %v", o.ID, err)
					}
					final := to // in one batch, the last occurrence is the order's state
					if !sameBatch && from != orders.StatusConfirmed {
						final = from
					}
					if got.Status != final {
						t.Errorf("Get(%d).Status = %q; want %q", o.ID, got.Status, final)
					}
					items, err := s.Items(ctx)
					if err != nil {
						t.Fatalf("Items: %v", err)
					}
					want := ItemTotals{Sold: 2, Orders: 1}
					if final.Returned() {
						want = ItemTotals{}
					}
					if items[o.ItemID] != want {
						t.Errorf("Items()[%q] = %+v; want %+v", o.ItemID, items[o.ItemID], want)
					}
				})
			}
		}
	}
}

func TestGetAndListByUser(t *testing.T) {
	s := openSink(t, testConfig(t))
	ctx := testCtx(t)
	// "alice" and "Alice" route to the same table (see orders.TestRoute):
	// the byte-wise collation must keep them apart.
	mk := func(id uint64, user string, minutes int) orders.Order {
		return orders.Order{
			ID: orders.MakeID(2, id, 0), ItemID: "item-1", UserID: user, RequestID: fmt.Sprint("r", id),
			Quantity: 1, Status: orders.StatusConfirmed, Shard: 2, LogIndex: id,
			CreatedAt: baseTime.Add(time.Duration(minutes) * time.Minute),
		}
	}
	batch := []orders.Order{
		mk(1, "alice", 5), mk(2, "alice", 1), mk(3, "alice", 9), mk(4, "alice", 3), mk(5, "alice", 7),
		mk(6, "Alice", 2), mk(7, "Alice", 4), mk(8, "bob", 0),
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write: %v", err)
	}

	for _, o := range batch {
		got, err := s.Get(ctx, o.ID)
		if err != nil {
			t.Fatalf("Get(%d): %v", o.ID, err)
		}
		if got != stored(o) {
			t.Errorf("Get(%d) = %+v; want %+v", o.ID, got, stored(o))
		}
	}
	if _, err := s.Get(ctx, orders.MakeID(2, 999, 0)); !errors.Is(err, orders.ErrNotFound) {
		t.Errorf("Get(absent) = %v; want orders.ErrNotFound", err)
	}

	ids := func(list []orders.Order) []uint64 {
		out := make([]uint64, len(list))
		for i, o := range list {
			out[i] = o.ID
		}
		return out
	}
	id := func(n uint64) uint64 { return orders.MakeID(2, n, 0) }
	tests := []struct {
		user  string
		limit int
		want  []uint64
	}{
		{"alice", 10, []uint64{id(3), id(5), id(1), id(4), id(2)}},
		{"alice", 2, []uint64{id(3), id(5)}},
		{"Alice", 10, []uint64{id(7), id(6)}},
		{"bob", 1, []uint64{id(8)}},
		{"nobody", 10, []uint64{}},
		{"alice", ListLimitMax + 1, []uint64{id(3), id(5), id(1), id(4), id(2)}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.user, tt.limit), func(t *testing.T) {
			list, err := s.ListByUser(ctx, tt.user, tt.limit)
			if err != nil {
				t.Fatalf("ListByUser(%q, %d): %v", tt.user, tt.limit, err)
			}
			if list == nil || !slices.Equal(ids(list), tt.want) {
				t.Errorf("ListByUser(%q, %d) = %v; want %v", tt.user, tt.limit, ids(list), tt.want)
			}
		})
	}
	if _, err := s.ListByUser(ctx, "alice", 0); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("ListByUser(alice, 0) = %v; want ErrInvalidLimit", err)
	}
}

func TestWriteRejectsInvalidOrders(t *testing.T) {
	s := openSink(t, testConfig(t))
	good := genOrders(1, 1, 1, 0, 1)[0]
	long := string(make([]rune, idLenMax+1))
	tests := []struct {
		name   string
		mutate func(*orders.Order)
	}{
		{"zero id", func(o *orders.Order) { o.ID = 0 }},
		{"empty user", func(o *orders.Order) { o.UserID = "" }},
		{"empty item", func(o *orders.Order) { o.ItemID = "" }},
		{"long user", func(o *orders.Order) { o.UserID = long }},
		{"long request", func(o *orders.Order) { o.RequestID = long }},
		{"invalid utf-8", func(o *orders.Order) { o.ItemID = "\xff" }},
		{"zero quantity", func(o *orders.Order) { o.Quantity = 0 }},
		{"negative quantity", func(o *orders.Order) { o.Quantity = -1 }},
		{"unknown status", func(o *orders.Order) { o.Status = "refunded" }},
		{"empty status", func(o *orders.Order) { o.Status = "" }},
		{"zero created", func(o *orders.Order) { o.CreatedAt = time.Time{} }},
		{"negative shard", func(o *orders.Order) { o.Shard = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := good
			bad.ID++
			tt.mutate(&bad)
			err := s.Write(testCtx(t), []orders.Order{good, bad})
			if !errors.Is(err, ErrInvalidOrder) {
				t.Fatalf("Write(%s) = %v; want ErrInvalidOrder", tt.name, err)
			}
		})
	}
	if d := dumpSink(t, s); d.rows != 0 {
		t.Errorf("invalid batches stored %d rows; want 0", d.rows)
	}
}

// TestWriteConcurrentWriters has several writers flush the same orders at
// once, differently batched, as an old and a new leader might.
func TestWriteConcurrentWriters(t *testing.T) {
	c := testConfig(t)
	c.WriteAttempts = 20
	s := openSink(t, c)
	all := genOrders(3000, 200, 3, 5, 11)
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		mine := slices.Clone(all)
		rand.New(rand.NewPCG(uint64(w), 1)).Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i := 0; i < len(mine); i += 250 {
				if err := s.Write(ctx, mine[i:min(i+250, len(mine))]); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	checkStored(t, s, all)
}

// TestWriteBoundedByContext holds a row lock in another transaction: a Write
// that needs the row must give up when its context ends, long before the
// server's lock wait timeout.
func TestWriteBoundedByContext(t *testing.T) {
	s := openSink(t, testConfig(t))
	o := genOrders(1, 1, 1, 0, 3)[0]
	if err := s.Write(testCtx(t), []orders.Order{o}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	db, table := orders.Route(o.UserID, len(s.dbs), s.cfg.Tables)
	blocker, err := s.dbs[db].db.BeginTx(testCtx(t), nil)
	if err != nil {
		t.Fatalf("begin blocker: %v", err)
	}
	defer blocker.Rollback()
	if _, err := blocker.ExecContext(testCtx(t),
		"UPDATE "+orders.TableName(table)+" SET status = status WHERE order_id = ?", o.ID); err != nil {
		t.Fatalf("lock row: %v", err)
	}

	next := o
	next.Status = orders.StatusPaid
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Write(ctx, []orders.Order{next})
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("Write past a locked row = nil; want a context error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write past a locked row = %v; want context.DeadlineExceeded", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Write took %v with a 500ms deadline", elapsed)
	}
	if err := blocker.Rollback(); err != nil {
		t.Fatalf("rollback blocker: %v", err)
	}
	checkStored(t, s, []orders.Order{o})

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if err := s.Write(cctx, []orders.Order{next}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write(cancelled ctx) = %v; want context.Canceled", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(testCtx(t), testConfig(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v; want nil", err)
	}
	ctx := testCtx(t)
	calls := map[string]error{}
	calls["Write"] = s.Write(ctx, genOrders(1, 1, 1, 0, 1))
	_, calls["Get"] = s.Get(ctx, 1)
	_, calls["ListByUser"] = s.ListByUser(ctx, "u", 1)
	_, calls["SoldByItem"] = s.SoldByItem(ctx)
	_, calls["Items"] = s.Items(ctx)
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v; want ErrClosed", name, err)
		}
	}
}
