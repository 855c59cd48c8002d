package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flashstock/flashstock/config"
	httpapi "github.com/flashstock/flashstock/http"
	"github.com/flashstock/flashstock/node"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
)

// node snapshot save|restore|prune-store|info: a cluster's Raft state as
// one file, and that file put back (docs/backup.md).
//
// The file is a set of shard backups: setMagic, the shard count (uint32,
// big-endian), then one backup stream per shard in shard order, each with
// its own header and checksum (raftstore/backup.go).

// setMagic starts a backup file.
const setMagic = "flashstock-backup-set-1\n"

const snapshotUsage = `usage: node snapshot save --file F [flags]         back up every shard, from its leader, into F
       node snapshot restore --file F [flags]      prune the order store, then restore every shard from F
       node snapshot prune-store --file F [flags]  only delete the orders F never saw from an order store
       node snapshot info --file F                 print what F holds

The node is found as for node status (--addr, SECKILL_HTTP_ADDR, the admin token
from SECKILL_ADMIN_TOKEN_FILE or the data dir); each shard is fetched from and
restored to its leader. restore and prune-store take the order store as the node
does (--orders-dsn, SECKILL_ORDERS_DSN_FILE; --sqlite for an embedded store).
Run node snapshot CMD -h for the flags of each.
`

// runSnapshot dispatches the snapshot subcommands.
func runSnapshot(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, snapshotUsage)
		if len(args) == 0 {
			return usageError{errors.New("snapshot: save, restore, prune-store or info?")}
		}
		return nil
	}
	switch args[0] {
	case "save":
		return runSnapshotSave(ctx, args[1:], getenv, stdout)
	case "restore":
		return runSnapshotRestore(ctx, args[1:], getenv, stdout)
	case "prune-store":
		return runSnapshotPrune(ctx, args[1:], getenv, stdout)
	case "info":
		return runSnapshotInfo(args[1:], stdout)
	}
	return usageError{fmt.Errorf("snapshot: unknown command %q (save, restore, prune-store, info)", args[0])}
}

// snapshotTimeoutDefault bounds a whole save or restore.
const snapshotTimeoutDefault = 30 * time.Minute

func runSnapshotSave(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("node snapshot save", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := adminFlags(fs, getenv)
	file := fs.String("file", "", "the backup file to write (replaced atomically, mode 0600)")
	timeout := fs.Duration("timeout", snapshotTimeoutDefault, "bound on the whole save")
	if err := parseSub(fs, "node snapshot save --file F [flags]: back up every shard from its leader into one file", args, stdout); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("snapshot save: --file is required")}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := clusterStatus(ctx, o)
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	shards := len(st.Shards)
	if shards == 0 {
		return errors.New("snapshot save: the node lists no shards")
	}
	dir := filepath.Dir(*file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(*file)+".*.tmp")
	if err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // after the rename: no such file
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	w.WriteString(setMagic)
	_ = binary.Write(w, binary.BigEndian, uint32(shards))
	for shard := range shards {
		var h raftstore.BackupHeader
		err := withLeader(ctx, o, shard, stdout, func(base string) (bool, error) {
			resp, err := o.do(ctx, http.MethodGet, fmt.Sprintf("%s/v1/admin/shards/%d/snapshot", base, shard), nil, 0)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			if retry, err := answerError(resp); err != nil {
				return retry, err
			}
			// Verified as it is copied: a cut or a flipped byte fails here.
			h, err = raftstore.ReadBackup(io.Discard, io.TeeReader(resp.Body, w), raftstore.BackupSizeMax)
			return false, err
		})
		if err != nil {
			return fmt.Errorf("snapshot save: shard %d: %w", shard, err)
		}
		if h.Shard != shard || h.Shards != shards {
			return fmt.Errorf("snapshot save: shard %d: got a backup of shard %d of %d", shard, h.Shard, h.Shards)
		}
		fmt.Fprintf(stdout, "shard %d: index %d, term %d, %d bytes, taken %s\n", shard, h.Index, h.Term, h.Size, h.Created.Format(time.RFC3339Nano))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if err := os.Rename(tmp.Name(), *file); err != nil {
		return fmt.Errorf("snapshot save: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself is durable
		d.Close()
	}
	fmt.Fprintf(stdout, "saved %d shards to %s\n", shards, *file)
	return nil
}

// setPart is one shard's backup in a backup file.
type setPart struct {
	h           raftstore.BackupHeader
	offset, len int64
}

// readSet reads and checks a whole backup file: the set header, every
// shard once and in order, every checksum. It returns where each shard's
// backup lies.
func readSet(path string) ([]setPart, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(setMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != setMagic {
		return nil, fmt.Errorf("%s: not a Flashstock backup file", path)
	}
	var n uint32
	if err := binary.Read(br, binary.BigEndian, &n); err != nil || n < 1 || n > orders.ShardsMax {
		return nil, fmt.Errorf("%s: bad shard count", path)
	}
	off := int64(len(setMagic) + 4)
	parts := make([]setPart, 0, n)
	for i := range int(n) {
		h, err := raftstore.ReadBackup(io.Discard, br, raftstore.BackupSizeMax)
		if err != nil {
			return nil, fmt.Errorf("%s: shard %d: %w", path, i, err)
		}
		if h.Shard != i || h.Shards != int(n) {
			return nil, fmt.Errorf("%s: part %d is a backup of shard %d of %d", path, i, h.Shard, h.Shards)
		}
		parts = append(parts, setPart{h: h, offset: off, len: h.Len()})
		off += h.Len()
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%s: data after the last shard", path)
	}
	return parts, nil
}

func runSnapshotInfo(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("node snapshot info", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "the backup file")
	if err := parseSub(fs, "node snapshot info --file F: check a backup file and print what it holds", args, stdout); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("snapshot info: --file is required")}
	}
	parts, err := readSet(*file)
	if err != nil {
		return fmt.Errorf("snapshot info: %w", err)
	}
	for _, p := range parts {
		fmt.Fprintf(stdout, "shard %d of %d: index %d, term %d, %d bytes, taken %s\n", p.h.Shard, p.h.Shards, p.h.Index, p.h.Term, p.h.Size, p.h.Created.Format(time.RFC3339Nano))
	}
	return nil
}

// storeOpts are the order store flags of restore and prune-store, read as
// the node reads them.
type storeOpts struct {
	dsn    string
	tables int
	sqlite string
	none   bool
}

func storeFlags(fs *flag.FlagSet, getenv func(string) string, noneFlag string) *storeOpts {
	s := &storeOpts{tables: config.Default().OrderTables}
	fs.StringVar(&s.dsn, "orders-dsn", "", "the order store's MySQL DSNs, comma-separated, as the node's (default SECKILL_ORDERS_DSN, SECKILL_ORDERS_DSN_FILE)")
	fs.IntVar(&s.tables, "order-tables", s.tables, "order tables per MySQL database, as the node's")
	fs.StringVar(&s.sqlite, "sqlite", "", "an embedded order store (a node's <data-dir>/orders.db, node stopped) instead of MySQL")
	if noneFlag != "" {
		fs.BoolVar(&s.none, noneFlag, false, "restore without pruning an order store (only when none holds orders after the backup)")
	}
	if v := getenv(config.EnvName("order-tables")); v != "" {
		fmt.Sscan(v, &s.tables)
	}
	return s
}

// open opens the order store named by the flags or the environment; nil
// when none is named.
func (s *storeOpts) open(ctx context.Context, getenv func(string) string) (orders.Pruner, func() error, error) {
	dsn := s.dsn
	if dsn == "" {
		dsn = getenv(config.EnvName("orders-dsn"))
	}
	if path := getenv(config.EnvName("orders-dsn") + "_FILE"); dsn == "" && path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s_FILE: %w", config.EnvName("orders-dsn"), err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch {
	case dsn != "" && s.sqlite != "":
		return nil, nil, usageError{errors.New("give --orders-dsn or --sqlite, not both")}
	case dsn != "":
		mc := mysql.DefaultConfig()
		mc.DSNs, mc.Tables = splitList(dsn), s.tables
		sink, err := mysql.Open(octx, mc)
		if err != nil {
			return nil, nil, err
		}
		return sink, sink.Close, nil
	case s.sqlite != "":
		if _, err := os.Stat(s.sqlite); err != nil {
			return nil, nil, err
		}
		sink, err := sqlite.Open(octx, s.sqlite)
		if err != nil {
			return nil, nil, err
		}
		return sink, sink.Close, nil
	}
	return nil, nil, nil
}

// prune deletes from the store the orders each shard confirmed after its
// backup's index.
func prune(ctx context.Context, p orders.Pruner, parts []setPart, stdout io.Writer) error {
	for _, part := range parts {
		n, err := p.PruneAfter(ctx, part.h.Shard, part.h.Index)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "order store: shard %d: deleted %d orders confirmed after index %d\n", part.h.Shard, n, part.h.Index)
	}
	return nil
}

func runSnapshotPrune(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("node snapshot prune-store", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "the backup file whose indexes bound the orders kept")
	so := storeFlags(fs, getenv, "")
	if err := parseSub(fs, "node snapshot prune-store --file F [flags]: delete from an order store the orders each shard confirmed after F's snapshot of it", args, stdout); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("snapshot prune-store: --file is required")}
	}
	parts, err := readSet(*file)
	if err != nil {
		return fmt.Errorf("snapshot prune-store: %w", err)
	}
	p, closeStore, err := so.open(ctx, getenv)
	if err != nil {
		return fmt.Errorf("snapshot prune-store: %w", err)
	}
	if p == nil {
		return usageError{errors.New("snapshot prune-store: no order store: give --orders-dsn, SECKILL_ORDERS_DSN_FILE or --sqlite")}
	}
	defer closeStore()
	if err := prune(ctx, p, parts, stdout); err != nil {
		return fmt.Errorf("snapshot prune-store: %w", err)
	}
	return nil
}

func runSnapshotRestore(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("node snapshot restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := adminFlags(fs, getenv)
	file := fs.String("file", "", "the backup file to restore")
	force := fs.Bool("force", false, "restore into a cluster that has items (their state is replaced)")
	timeout := fs.Duration("timeout", snapshotTimeoutDefault, "bound on the whole restore")
	so := storeFlags(fs, getenv, "no-prune")
	if err := parseSub(fs, "node snapshot restore --file F [flags]: prune the order store to F, then replace every shard's state with F's", args, stdout); err != nil {
		return err
	}
	if *file == "" {
		return usageError{errors.New("snapshot restore: --file is required")}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	parts, err := readSet(*file)
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	st, err := clusterStatus(ctx, o)
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	if len(st.Shards) != len(parts) {
		return fmt.Errorf("snapshot restore: the cluster has %d shards, the backup %d: the shard count is fixed", len(st.Shards), len(parts))
	}
	items := 0
	for _, sh := range st.Shards {
		items += sh.Items
	}
	if items > 0 && !*force {
		return fmt.Errorf("snapshot restore: the cluster holds %d items; a restore replaces them (and every order since the backup): give --force", items)
	}
	// The order store first: the restored shards' next orders take the
	// IDs of orders the store may hold from after the backup.
	p, closeStore, err := so.open(ctx, getenv)
	if err != nil {
		return fmt.Errorf("snapshot restore: order store: %w", err)
	}
	switch {
	case p != nil:
		err := prune(ctx, p, parts, stdout)
		closeStore()
		if err != nil {
			return fmt.Errorf("snapshot restore: %w", err)
		}
	case !so.none:
		return usageError{errors.New("snapshot restore: no order store to prune: give --orders-dsn, SECKILL_ORDERS_DSN_FILE or --sqlite (or --no-prune)")}
	}
	f, err := os.Open(*file)
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	defer f.Close()
	for _, part := range parts {
		shard := part.h.Shard
		var info httpapi.BackupInfo
		err := withLeader(ctx, o, shard, stdout, func(base string) (bool, error) {
			body := io.NewSectionReader(f, part.offset, part.len)
			resp, err := o.do(ctx, http.MethodPost, fmt.Sprintf("%s/v1/admin/shards/%d/restore", base, shard), body, part.len)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			if retry, err := answerError(resp); err != nil {
				return retry, err
			}
			var doc struct{ Restored httpapi.BackupInfo }
			if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&doc); err != nil {
				return false, err
			}
			info = doc.Restored
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("snapshot restore: shard %d: %w (shards before it are restored)", shard, err)
		}
		fmt.Fprintf(stdout, "shard %d: restored to index %d (taken %s)\n", shard, info.Index, info.Created.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(stdout, "restored %d shards from %s\n", len(parts), *file)
	return nil
}

// clusterStatus reads the status document of the node at --addr.
func clusterStatus(ctx context.Context, o *adminOpts) (*node.Status, error) {
	var st node.Status
	if err := o.get(ctx, "/v1/cluster/status", &st); err != nil {
		return nil, fmt.Errorf("cluster status: %w", err)
	}
	return &st, nil
}

// leaderBase returns the base URL of shard's leader, as the status says.
func leaderBase(o *adminOpts, st *node.Status, shard int) (string, error) {
	if shard >= len(st.Shards) || st.Shards[shard].Leader == "" {
		return "", fmt.Errorf("shard %d has no leader", shard)
	}
	leader := st.Shards[shard].Leader
	scheme := "http"
	if u, err := url.Parse(o.addr); err == nil && u.Scheme != "" {
		scheme = u.Scheme
	}
	for _, m := range st.Members {
		if m.ID == leader && m.HTTPAddr != "" {
			return scheme + "://" + node.ReachableHTTP(m.HTTPAddr, m.GossipAddr), nil
		}
	}
	return "", fmt.Errorf("shard %d: its leader %s is not among the members", shard, leader)
}

// leaderAttempts bounds how often one shard's transfer is tried again when
// its leader moved or was not known.
const leaderAttempts = 10

// withLeader calls try with the base URL of shard's leader, read afresh
// from the status before each attempt, until try succeeds, fails for good
// (retry false) or leaderAttempts are spent.
// Each retry is reported to progress.
func withLeader(ctx context.Context, o *adminOpts, shard int, progress io.Writer, try func(base string) (retry bool, err error)) error {
	var err error
	for attempt := 1; attempt <= leaderAttempts; attempt++ {
		if attempt > 1 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(time.Second):
			}
		}
		var st *node.Status
		if st, err = clusterStatus(ctx, o); err != nil {
			continue
		}
		var base string
		if base, err = leaderBase(o, st, shard); err != nil {
			continue
		}
		var retry bool
		if retry, err = try(base); err == nil || !retry {
			return err
		}
		fmt.Fprintf(progress, "shard %d: %v; asking its leader again\n", shard, err)
	}
	return err
}

// answerError returns nil for a 200, else the error the body names and
// whether asking the leader again may help (421, 503).
func answerError(resp *http.Response) (retry bool, err error) {
	if resp.StatusCode == http.StatusOK {
		return false, nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	retry = resp.StatusCode == http.StatusMisdirectedRequest || resp.StatusCode == http.StatusServiceUnavailable
	return retry, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
}

// do sends an admin request with a body of n bytes (nil: none). The
// context bounds it: a backup transfer takes as long as it takes.
func (o *adminOpts) do(ctx context.Context, method, u string, body io.Reader, n int64) (*http.Response, error) {
	token, err := o.adminToken()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, usageError{err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return backupClient.Do(req)
}

// backupClient sends backups: no overall timeout (the context bounds each
// transfer), bounded connection set-up.
var backupClient = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	TLSHandshakeTimeout: 10 * time.Second,
}}
