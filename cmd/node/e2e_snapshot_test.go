package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
)

// snapshotServer returns the DSN of a MariaDB server for the backup test:
// FLASHSTOCK_TEST_MYSQL_DSNS (CI), else one the test starts with
// scripts/mariadb.sh when mariadbd is installed; "" means the embedded
// SQLite store (a MariaDB is required under FLASHSTOCK_REQUIRE_MYSQL=1).
func snapshotServer(t *testing.T) string {
	if v := os.Getenv("FLASHSTOCK_TEST_MYSQL_DSNS"); v != "" {
		return strings.Split(v, ",")[0]
	}
	if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil {
		if os.Getenv("FLASHSTOCK_REQUIRE_MYSQL") == "1" {
			t.Fatal("FLASHSTOCK_REQUIRE_MYSQL=1 but no FLASHSTOCK_TEST_MYSQL_DSNS and no mariadbd")
		}
		return ""
	}
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	script := "../../scripts/mariadb.sh"
	out, err := exec.Command(script, "start", dir, port).Output()
	if err != nil {
		t.Fatalf("mariadb.sh start: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	line := strings.TrimPrefix(strings.TrimSpace(string(out)), "FLASHSTOCK_TEST_MYSQL_DSNS=")
	return strings.Split(line, ",")[0]
}

// mysqlDatabases creates empty databases named prefix_0..prefix_{n-1} on
// the server of dsn, dropped at the end, and returns their DSNs.
func mysqlDatabases(t *testing.T, dsn, prefix string, n int) []string {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := cfg.Clone()
	admin.DBName = ""
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var out []string
	for i := range n {
		name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := db.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name)
		})
		c := cfg.Clone()
		c.DBName = name
		out = append(out, c.FormatDSN())
	}
	return out
}

// mysqlClient runs the MariaDB client program name (mariadb-dump, mariadb)
// against the database of dsn, with stdin and stdout as given.
func mysqlClient(t *testing.T, name, dsn string, stdin io.Reader, stdout io.Writer, extra ...string) {
	t.Helper()
	cfg, err := gomysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(cfg.Addr)
	args := append([]string{"--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", cfg.User}, extra...)
	if cfg.Passwd != "" {
		args = append(args, "-p"+cfg.Passwd)
	}
	args = append(args, cfg.DBName)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, cfg.DBName, err, errOut.String())
	}
}

// soldOrder is a purchase the test saw confirmed.
type soldOrder struct{ id, item, user string }

// TestSnapshotRestoreToFreshCluster is the backup runbook (docs/backup.md)
// end to end on real node processes: a three-node cluster with a MariaDB
// order store sells while `node snapshot save` runs; the order store is
// dumped after it (mariadb-dump) and the sale goes on; the cluster stops.
// A fresh cluster, with the dump loaded into fresh databases, is restored
// by `node snapshot restore` (which prunes the store to the snapshot):
// reconciliation is clean, every order confirmed before the save began
// reads back with its item and buyer, sold plus remaining is the stock of
// every item, and the restored cluster sells on, its new orders' IDs past
// every restored one. Without MariaDB it runs one node on the embedded
// SQLite store (its dump: the store's own backup).
func TestSnapshotRestoreToFreshCluster(t *testing.T) {
	const (
		token = "e2e-admin-token-0123456789"
		stock = 1_000_000
	)
	server := snapshotServer(t)
	nodes := 3
	if server == "" {
		nodes = 1
		t.Log("no MariaDB: one node on the embedded SQLite store")
	}
	items := []string{"phone", "tv", "watch"}
	type clusterRun struct {
		ns   []*testNode
		dirs []string
		dsns []string
	}
	start := func(dsns []string, before func(dirs []string)) *clusterRun {
		c := &clusterRun{dsns: dsns}
		addrs := make([]nodeAddrs, nodes)
		for i := range addrs {
			addrs[i] = nodeAddrs{http: freeAddr(t), raft: freeAddr(t), gossip: freeAddr(t), actor: freeAddr(t)}
			c.dirs = append(c.dirs, t.TempDir())
		}
		if before != nil {
			before(c.dirs)
		}
		for i := range nodes {
			args := []string{"--admin-token", token, "--gossip-profile", "local", "--raft-heartbeat-timeout", "400ms",
				"--dead-node-grace", "5s", "--request-timeout", "3s", "--rate-user", "0", "--log-level", cmp.Or(os.Getenv("FLASHSTOCK_TEST_LOG_LEVEL"), "warn")}
			if nodes > 1 {
				args = append(args, "--bootstrap-expect", fmt.Sprint(nodes), "--join", addrs[0].gossip)
			}
			if len(dsns) > 0 {
				args = append(args, "--orders-dsn", strings.Join(dsns, ","))
			}
			n := launchNode(t, c.dirs[i], addrs[i], fmt.Sprintf("n%d", i), args...)
			n.token = token
			n.connect()
			c.ns = append(c.ns, n)
		}
		for _, n := range c.ns {
			n.waitReady()
		}
		return c
	}
	var dst *clusterRun
	cli := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := run(ctx, args, func(string) string { return "" }, &out, &errOut); err != nil {
			if dst != nil {
				for i, n := range dst.ns {
					t.Logf("n%d log:\n%s", i, n.logText())
				}
			}
			t.Fatalf("node %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
		}
		t.Logf("node %s:\n%s", strings.Join(args, " "), out.String())
		return out.String()
	}

	var srcDSNs, dstDSNs []string
	if server != "" {
		srcDSNs = mysqlDatabases(t, server, "fs_bk_src", 2)
		dstDSNs = mysqlDatabases(t, server, "fs_bk_dst", 2)
	}
	src := start(srcDSNs, nil)
	for _, it := range items {
		src.ns[0].mustDo("POST", "/v1/items", "admin", map[string]any{"id": it, "stock": stock, "per_user_limit": 1}, 201)
	}

	// The sale: shoppers over every node, each purchase a new shopper.
	var (
		mu     sync.Mutex
		sold   []soldOrder
		saleWG sync.WaitGroup
	)
	sale, stopSale := context.WithCancel(context.Background())
	defer stopSale()
	for w := range 8 {
		saleWG.Add(1)
		go func() {
			defer saleWG.Done()
			for k := 0; sale.Err() == nil; k++ {
				user := fmt.Sprintf("w%d-%d", w, k)
				item := items[(w+k)%len(items)]
				code, m, err := src.ns[(w+k)%nodes].do("POST", "/v1/items/"+item+"/purchase", user, map[string]any{"request_id": "r"})
				if err == nil && (code == 201 || code == 200) {
					mu.Lock()
					sold = append(sold, soldOrder{id: m["order_id"].(string), item: item, user: user})
					mu.Unlock()
				}
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sold) }
	waitFor(t, 60*time.Second, func() bool { return count() > 300 })

	// Snapshot first, while the sale runs; then the order store.
	mu.Lock()
	before := append([]soldOrder(nil), sold...) // confirmed before the save began
	mu.Unlock()
	backup := filepath.Join(t.TempDir(), "backup.fsnap")
	cli("snapshot", "save", "--file", backup, "--addr", src.ns[0].url, "--admin-token", token)
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v; want mode 0600", fi, err)
	}
	parts, err := readSet(backup)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return count() > len(before)+200 }) // the dump holds orders the snapshot lacks
	dumps := make([][]byte, len(srcDSNs))
	for i, dsn := range srcDSNs {
		var b bytes.Buffer
		mysqlClient(t, "mariadb-dump", dsn, nil, &b, "--single-transaction")
		dumps[i] = b.Bytes()
	}
	var sqliteDump string
	if server == "" {
		sqliteDump = filepath.Join(t.TempDir(), "orders.db")
		s, err := sqlite.Open(context.Background(), filepath.Join(src.dirs[0], "orders.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Backup(context.Background(), sqliteDump); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	waitFor(t, 30*time.Second, func() bool { return count() > len(before)+400 })
	stopSale()
	saleWG.Wait()
	for _, n := range src.ns {
		n.stop()
	}
	t.Logf("%d orders confirmed in all, %d before the save", count(), len(before))

	// A fresh cluster on the dump.
	for i, dsn := range dstDSNs {
		mysqlClient(t, "mariadb", dsn, bytes.NewReader(dumps[i]), io.Discard)
	}
	dst = start(dstDSNs, func(dirs []string) {
		if sqliteDump == "" {
			return
		}
		b, err := os.ReadFile(sqliteDump)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dirs[0], "orders.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// The embedded store is pruned before its node starts.
		cli("snapshot", "prune-store", "--file", backup, "--sqlite", path)
	})
	restore := []string{"snapshot", "restore", "--file", backup, "--addr", dst.ns[0].url, "--admin-token", token}
	if len(dstDSNs) > 0 {
		restore = append(restore, "--orders-dsn", strings.Join(dstDSNs, ","))
	} else {
		restore = append(restore, "--no-prune")
	}
	cli(restore...)
	// Restoring again needs --force: the cluster has items now.
	var out bytes.Buffer
	if err := run(context.Background(), restore, func(string) string { return "" }, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second restore without --force = %v; want a refusal naming --force", err)
	}

	api := dst.ns[0]
	var last map[string]any
	if !eventuallyTrue(60*time.Second, func() bool {
		code, m, err := api.do("GET", "/v1/admin/reconcile", "admin", nil)
		last = m
		// Every item is in the report: a follower skips only shards no
		// command ever reached (items[] names each item checked).
		checked, _ := m["items"].([]any)
		return err == nil && code == 200 && m["differences"].(float64) == 0 && len(checked) == len(items)
	}) {
		t.Fatalf("reconcile after the restore: %v", last)
	}
	for _, it := range items {
		m := api.mustDo("GET", "/v1/items/"+it, "", nil, 200)
		s, r := int64(m["sold"].(float64)), int64(m["remaining"].(float64))
		if s+r != stock || s < 0 || r < 0 {
			t.Fatalf("%s: sold %d + remaining %d; want %d", it, s, r, stock)
		}
	}
	restoredMax := make(map[int]uint64) // shard -> the backup's index
	for _, p := range parts {
		restoredMax[p.h.Shard] = p.h.Index
	}
	perItem := map[string]int64{}
	for _, o := range before {
		code, m, err := api.do("GET", "/v1/orders/"+o.id, "admin", nil)
		if err != nil || code != 200 || m["item_id"] != o.item || m["user_id"] != o.user {
			t.Fatalf("order %s (%s bought %s) after the restore: %d %v %v", o.id, o.user, o.item, code, m, err)
		}
		perItem[o.item]++
	}
	for _, it := range items {
		m := api.mustDo("GET", "/v1/items/"+it, "", nil, 200)
		if s := int64(m["sold"].(float64)); s < perItem[it] {
			t.Fatalf("%s: %d sold after the restore; %d were confirmed before the save", it, s, perItem[it])
		}
	}
	// The restored cluster sells on, with IDs past the restored orders'.
	for _, it := range items {
		m := dst.ns[nodes-1].mustDo("POST", "/v1/items/"+it+"/purchase", "after-restore", map[string]any{"request_id": "r"}, 201)
		id, err := orders.ParseID(m["order_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		shard := raftstore.ShardFor(it, len(parts))
		if orders.ShardOfID(id) != shard || orders.IndexOfID(id) <= restoredMax[shard] {
			t.Fatalf("order %d after the restore: shard %d index %d; the backup of shard %d covers up to %d",
				id, orders.ShardOfID(id), orders.IndexOfID(id), shard, restoredMax[shard])
		}
		waitFor(t, 30*time.Second, func() bool {
			code, m, err := api.do("GET", "/v1/orders/"+orders.FormatID(id), "admin", nil)
			return err == nil && code == 200 && m["user_id"] == "after-restore" && m["item_id"] == it && m["persisted"] == true
		})
	}
	waitFor(t, 60*time.Second, func() bool {
		code, m, err := api.do("GET", "/v1/admin/reconcile", "admin", nil)
		return err == nil && code == 200 && m["differences"].(float64) == 0
	})
}

// eventuallyTrue polls cond every 50 ms and reports whether it held within
// timeout.
func eventuallyTrue(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
