package mysql

import (
	"fmt"
	"slices"
	"testing"

	"github.com/flashstock/flashstock/orders"
)

func TestSlabs(t *testing.T) {
	rows := func(table, n int) tableRows {
		tr := tableRows{table: table, rows: make([]orders.Order, n)}
		for i := range tr.rows {
			tr.rows[i].ID = uint64(table*1000 + i)
		}
		return tr
	}
	// shape renders slabs as "table:rows table:rows | ...".
	shape := func(tables []tableRows, rowsMax int) string {
		var out []string
		for slab := range slabs(tables, rowsMax) {
			var parts []string
			for _, t := range slab {
				parts = append(parts, fmt.Sprintf("%d:%d", t.table, len(t.rows)))
			}
			out = append(out, fmt.Sprint(parts))
		}
		return fmt.Sprint(out)
	}
	tests := []struct {
		name    string
		tables  []tableRows
		rowsMax int
		want    string
	}{
		{"empty", nil, 10, "[]"},
		{"one small table", []tableRows{rows(0, 3)}, 10, "[[0:3]]"},
		{"exact fit", []tableRows{rows(0, 4), rows(1, 6)}, 10, "[[0:4 1:6]]"},
		{"split table", []tableRows{rows(0, 4), rows(1, 9)}, 10, "[[0:4 1:6] [1:3]]"},
		{"table larger than two slabs", []tableRows{rows(2, 25), rows(5, 1)}, 10, "[[2:10] [2:10] [2:5 5:1]]"},
		{"one row per slab", []tableRows{rows(0, 2), rows(1, 1)}, 1, "[[0:1] [0:1] [1:1]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shape(tt.tables, tt.rowsMax); got != tt.want {
				t.Errorf("slabs(%s, %d) = %s; want %s", tt.name, tt.rowsMax, got, tt.want)
			}
			// Every row comes out once, in order.
			var want, got []uint64
			for _, tr := range tt.tables {
				for _, o := range tr.rows {
					want = append(want, o.ID)
				}
			}
			for slab := range slabs(tt.tables, tt.rowsMax) {
				for _, tr := range slab {
					for _, o := range tr.rows {
						got = append(got, o.ID)
					}
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("slabs(%s) yields IDs %v; want %v", tt.name, got, want)
			}
		})
	}
}

// TestPlan checks grouping by route, sorting, and that the last occurrence
// of a repeated order wins.
func TestPlan(t *testing.T) {
	s := &Sink{cfg: Config{Tables: 16}, dbs: make([]database, 2)}
	batch := genOrders(200, 40, 3, 0, 5)
	// Repeat order 7 at the end with a new status.
	again := batch[7]
	again.Status = orders.StatusPaid
	batch = append(batch, again)

	plan, err := s.plan(batch)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	seen := make(map[uint64]orders.Order)
	for db, tables := range plan {
		for i, tr := range tables {
			if i > 0 && tables[i-1].table >= tr.table {
				t.Errorf("db %d: table %d after table %d; want ascending", db, tr.table, tables[i-1].table)
			}
			for j, o := range tr.rows {
				if j > 0 && tr.rows[j-1].ID >= o.ID {
					t.Errorf("db %d table %d: order %d after %d; want ascending IDs", db, tr.table, o.ID, tr.rows[j-1].ID)
				}
				if wdb, wt := orders.Route(o.UserID, 2, 16); wdb != db || wt != tr.table {
					t.Errorf("order %d of %q planned for (%d, %d); Route says (%d, %d)", o.ID, o.UserID, db, tr.table, wdb, wt)
				}
				if _, dup := seen[o.ID]; dup {
					t.Errorf("order %d planned twice", o.ID)
				}
				seen[o.ID] = o
			}
		}
	}
	if len(seen) != 200 {
		t.Errorf("planned %d orders; want 200", len(seen))
	}
	if got := seen[again.ID].Status; got != orders.StatusPaid {
		t.Errorf("repeated order %d planned with status %q; want the last occurrence's %q", again.ID, got, orders.StatusPaid)
	}
	if got := seen[again.ID].CreatedAt; got.Nanosecond()%1000 != 0 {
		t.Errorf("planned CreatedAt %v; want truncated to microseconds", got)
	}
}
