package storecheck

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
)

// freshDatabases creates two empty databases on the server named by
// FLASHSTOCK_TEST_MYSQL_DSNS (scripts/mariadb.sh prints it), drops them when
// the test ends and returns their DSNs. Without a server it skips, or fails
// under FLASHSTOCK_REQUIRE_MYSQL=1 (as in CI).
func freshDatabases(t *testing.T) []string {
	t.Helper()
	env, _, _ := strings.Cut(os.Getenv("FLASHSTOCK_TEST_MYSQL_DSNS"), ",")
	if env == "" {
		if os.Getenv("FLASHSTOCK_REQUIRE_MYSQL") == "1" {
			t.Fatal("FLASHSTOCK_TEST_MYSQL_DSNS is empty and FLASHSTOCK_REQUIRE_MYSQL=1")
		}
		t.Skip("FLASHSTOCK_TEST_MYSQL_DSNS not set; start a server with scripts/mariadb.sh start DIR PORT")
	}
	cfg, err := gomysql.ParseDSN(env)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = ""
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var dsns []string
	for i := range 2 {
		name := fmt.Sprintf("fs_storecheck_%d_%d", os.Getpid(), i)
		exec(t, db, "DROP DATABASE IF EXISTS "+name)
		exec(t, db, "CREATE DATABASE "+name)
		t.Cleanup(func() { exec(t, db, "DROP DATABASE IF EXISTS "+name) })
		c := cfg.Clone()
		c.DBName = name
		dsns = append(dsns, c.FormatDSN())
	}
	return dsns
}

func exec(t *testing.T, db *sql.DB, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// TestStore writes orders through the node's MySQL sink and reads them back
// as the checks do: every copy of each order, with its request_id, and the
// units per item (expired orders returned theirs).
func TestStore(t *testing.T) {
	dsns := freshDatabases(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := mysql.DefaultConfig()
	cfg.DSNs, cfg.Tables = dsns, 4
	sink, err := mysql.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	now := time.Now().UTC()
	batch := []orders.Order{
		{ID: orders.MakeID(0, 1, 0), ItemID: "hot", UserID: "u1", RequestID: "r1", Quantity: 2, Status: orders.StatusConfirmed, CreatedAt: now},
		{ID: orders.MakeID(1, 1, 0), ItemID: "hot", UserID: "u2", RequestID: "r2", Quantity: 1, Status: orders.StatusPaid, CreatedAt: now},
		{ID: orders.MakeID(1, 1, 1), ItemID: "lim", UserID: "u3", RequestID: "r3", Quantity: 1, Status: orders.StatusExpired, CreatedAt: now},
	}
	if err := sink.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}

	st, err := Open(ctx, dsns, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, missing := orders.FormatID(batch[0].ID), orders.FormatID(orders.MakeID(2, 9, 0))
	got, err := st.Orders(ctx, []string{first, missing})
	if err != nil {
		t.Fatal(err)
	}
	want := client.StoredOrder{OrderID: first, ItemID: "hot", UserID: "u1", RequestID: "r1", Quantity: 2, Status: "confirmed"}
	if len(got) != 1 || len(got[first]) != 1 || got[first][0] != want {
		t.Errorf("Orders() = %+v; want %s once as %+v, %s absent", got, first, want, missing)
	}
	units, err := st.SoldUnits(ctx, []string{"hot", "lim", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if units["hot"] != 3 || units["lim"] != 0 || len(units) != 3 {
		t.Errorf("SoldUnits() = %v; want hot 3, lim 0 (expired), none 0", units)
	}
	if _, err := st.Orders(ctx, []string{"not-an-id"}); err == nil {
		t.Error("Orders(bad id) succeeded")
	}
}
