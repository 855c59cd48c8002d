package orders

import (
	"math"
	"strconv"
	"testing"
)

// TestRoute pins Route's output. The expected values were computed with an
// independent FNV-1a 64 implementation; if this test fails, the routing
// changed and every stored order would be looked up in the wrong table.
func TestRoute(t *testing.T) {
	tests := []struct {
		user              string
		databases         int
		tables            int
		wantDB, wantTable int
	}{
		{"", 2, 16, 1, 2},
		{"", 3, 8, 2, 1},
		{"u1", 2, 16, 1, 9},
		{"u1", 3, 8, 2, 3},
		{"user-42", 2, 16, 1, 5},
		{"user-42", 3, 8, 0, 1},
		{"alice", 2, 16, 1, 3},
		{"Alice", 2, 16, 1, 3},
		{"bob@example.com", 2, 16, 1, 12},
		{"bob@example.com", 3, 8, 2, 5},
		{"用户7", 2, 16, 0, 5},
		{"用户7", 3, 8, 2, 0},
		{"u1", 1, 1, 0, 0},
		{"bob@example.com", 1, 16, 0, 9},
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+strconv.Itoa(tt.databases)+"x"+strconv.Itoa(tt.tables), func(t *testing.T) {
			db, table := Route(tt.user, tt.databases, tt.tables)
			if db != tt.wantDB || table != tt.wantTable {
				t.Errorf("Route(%q, %d, %d) = (%d, %d); want (%d, %d)",
					tt.user, tt.databases, tt.tables, db, table, tt.wantDB, tt.wantTable)
			}
		})
	}
}

// TestRouteDeterministic checks that Route depends only on its arguments.
func TestRouteDeterministic(t *testing.T) {
	for i := range 1000 {
		user := "user-" + strconv.Itoa(i)
		db1, t1 := Route(user, 2, 16)
		db2, t2 := Route(user, 2, 16)
		if db1 != db2 || t1 != t2 {
			t.Fatalf("Route(%q, 2, 16) = (%d, %d) then (%d, %d); want equal", user, db1, t1, db2, t2)
		}
		if db1 < 0 || db1 >= 2 || t1 < 0 || t1 >= 16 {
			t.Fatalf("Route(%q, 2, 16) = (%d, %d); out of range", user, db1, t1)
		}
	}
}

// TestRouteDistribution checks that 10k sequential user IDs spread evenly
// over 2 databases x 16 tables: each of the 32 cells gets 312.5 users on
// average; a cell outside ±25% of that (about ±4.5 standard deviations of
// a uniform spread) means the hash is clustering.
func TestRouteDistribution(t *testing.T) {
	const (
		users     = 10_000
		databases = 2
		tables    = 16
	)
	var cells [databases][tables]int
	var perDB [databases]int
	for i := range users {
		db, table := Route("user-"+strconv.Itoa(i), databases, tables)
		cells[db][table]++
		perDB[db]++
	}
	mean := float64(users) / (databases * tables)
	for db := range databases {
		for table := range tables {
			n := cells[db][table]
			if math.Abs(float64(n)-mean) > 0.25*mean {
				t.Errorf("cell (%d, %d) holds %d users; want %.1f ± 25%%", db, table, n, mean)
			}
		}
		if d := math.Abs(float64(perDB[db]) - users/databases); d > 0.05*users/databases {
			t.Errorf("database %d holds %d users; want %d ± 5%%", db, perDB[db], users/databases)
		}
	}
}

func TestRoutePanicsOnEmptyLayout(t *testing.T) {
	tests := []struct{ databases, tables int }{{0, 16}, {2, 0}, {-1, 1}}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.databases)+"x"+strconv.Itoa(tt.tables), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Route(%q, %d, %d) did not panic", "u", tt.databases, tt.tables)
				}
			}()
			Route("u", tt.databases, tt.tables)
		})
	}
}

func TestTableName(t *testing.T) {
	tests := []struct {
		table int
		want  string
	}{{0, "t_order_0"}, {7, "t_order_7"}, {15, "t_order_15"}, {127, "t_order_127"}}
	for _, tt := range tests {
		if got := TableName(tt.table); got != tt.want {
			t.Errorf("TableName(%d) = %q; want %q", tt.table, got, tt.want)
		}
	}
}
