package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/node"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
)

// adminOpts are the flags of the subcommands that ask a node's admin API
// (status, reconcile). They default to what the node itself reads from
// the environment, so that on a node's host (or in its container) the
// subcommand needs no flag: SECKILL_HTTP_ADDR, SECKILL_ADMIN_TOKEN_FILE or
// SECKILL_ADMIN_TOKEN, SECKILL_DATA_DIR.
type adminOpts struct {
	addr, token, tokenFile, dataDir string
}

// adminFlags adds the admin API flags to fs.
func adminFlags(fs *flag.FlagSet, getenv func(string) string) *adminOpts {
	o := &adminOpts{}
	addr := "http://127.0.0.1:8080"
	if a := getenv(config.EnvName("http-addr")); a != "" {
		addr = "http://" + strings.Replace(a, "0.0.0.0:", "127.0.0.1:", 1)
	}
	dataDir := getenv(config.EnvName("data-dir"))
	if dataDir == "" {
		dataDir = "./data"
	}
	fs.StringVar(&o.addr, "addr", addr, "the node's HTTP address (default from SECKILL_HTTP_ADDR)")
	fs.StringVar(&o.tokenFile, "admin-token-file", getenv(config.EnvName("admin-token")+"_FILE"), "file holding the admin token (default SECKILL_ADMIN_TOKEN_FILE)")
	fs.StringVar(&o.token, "admin-token", getenv(config.EnvName("admin-token")), "the admin token (visible on the command line: prefer the file)")
	fs.StringVar(&o.dataDir, "data-dir", dataDir, "read the admin token from this data dir when no other is given (default SECKILL_DATA_DIR)")
	return o
}

// adminToken returns the token: --admin-token-file, else --admin-token,
// else the one the node stored in its data dir.
func (o *adminOpts) adminToken() (string, error) {
	path := o.tokenFile
	if path == "" && o.token != "" {
		return o.token, nil
	}
	if path == "" {
		path = filepath.Join(o.dataDir, "admin-token")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageError{fmt.Errorf("no admin token: give --admin-token-file or SECKILL_ADMIN_TOKEN_FILE (%w)", err)}
	}
	return strings.TrimSpace(string(b)), nil
}

// get fetches an admin JSON document from the node.
func (o *adminOpts) get(ctx context.Context, path string, v any) error {
	token, err := o.adminToken()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(o.addr, "/")+path, nil)
	if err != nil {
		return usageError{err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// runStatus prints a node's cluster status: a summary line and tables, or
// the document itself with --json.
func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("node status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := adminFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print the status document as JSON")
	if err := parseSub(fs, "node status [flags]: the cluster as one node sees it", args, stdout); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := o.get(ctx, "/v1/cluster/status", &raw); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if *asJSON {
		var b bytes.Buffer
		if err := json.Indent(&b, raw, "", "  "); err != nil {
			return fmt.Errorf("status: %w", err)
		}
		b.WriteByte('\n')
		_, err := stdout.Write(b.Bytes())
		return err
	}
	var s node.Status
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	return printStatus(stdout, &s)
}

// printStatus renders a status document: who answered, a one-line summary
// of the cluster, the members, the shards, the open circuits. Rows come in
// a stable order (members and circuits by name, shards by ID). A member's
// LEADS are the shards the shard table names it the leader of, so the two
// tables agree; a voter that gossip does not see alive is marked.
func printStatus(w io.Writer, s *node.Status) error {
	role := s.Node.Role
	if role == "" {
		role = config.RoleCore
	}
	members := slices.Clone(s.Members)
	slices.SortFunc(members, func(a, b cluster.Member) int { return strings.Compare(a.ID, b.ID) })
	state := map[string]string{}
	var core, gateways, down int
	for _, m := range members {
		state[m.ID] = m.State
		switch {
		case m.State != cluster.StateAlive:
			down++
		case m.IsGateway():
			gateways++
		default:
			core++
		}
	}
	leads := map[string][]int{}
	led := 0
	for _, sh := range s.Shards {
		if sh.Leader != "" {
			leads[sh.Leader] = append(leads[sh.Leader], sh.ID)
			led++
		}
	}
	breakers := slices.Sorted(maps.Keys(s.Breakers))
	open := 0
	for _, addr := range breakers {
		if s.Breakers[addr] != "closed" {
			open++
		}
	}
	fmt.Fprintf(w, "node %s (%s, %s) ready=%v leads %d shards, %d item actors, at %s\n", s.Node.Name, role, s.Node.Version,
		s.Node.Ready, s.Node.ShardsLed, s.Node.Actors, s.Node.Time)
	fmt.Fprintf(w, "cluster: %d core alive, %d gateways alive, %d not alive; %d of %d shards with a leader; %d circuits open\n\n",
		core, gateways, down, led, len(s.Shards), open)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// LEADS: from the shard table. HEARS: what each member last gossiped,
	// the shards with a leader it hears (itself included); a live member
	// that hears no leader is cut off from Raft while gossip still reaches
	// it. A gateway holds no seat: "-".
	fmt.Fprintln(tw, "MEMBER\tROLE\tSTATE\tREGION\tHTTP\tRAFT\tGOSSIP\tLEADS\tHEARS")
	for _, m := range members {
		hears := shardList(m.Leads, m.Follows)
		if m.Follows == "" {
			hears = "?" // a node of an earlier version
		}
		role, raft := config.RoleCore, m.RaftAddr
		if m.IsGateway() {
			role, raft, hears = config.RoleGateway, "-", "-"
		}
		l := intList(leads[m.ID])
		if len(s.Shards) == 0 {
			l = shardList(m.Leads) // no shard table: what it gossiped
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, m.State, m.Region, m.HTTPAddr, raft, m.GossipAddr, l, hears)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "SHARD\tSTATE\tLEADER\tVOTERS\tNON-VOTERS\tTERM\tCOMMIT\tAPPLIED\tITEMS\tUNFLUSHED")
	mark := func(ids []string) string {
		out := make([]string, len(ids))
		for i, id := range ids {
			out[i] = id
			if st, ok := state[id]; !ok || st != cluster.StateAlive {
				out[i] += "(" + cmp.Or(st, "unknown") + ")"
			}
		}
		return cmp.Or(strings.Join(out, ","), "-")
	}
	shards := slices.Clone(s.Shards)
	slices.SortFunc(shards, func(a, b raftstore.ShardStatus) int { return a.ID - b.ID })
	for _, sh := range shards {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", sh.ID, sh.State, cmp.Or(sh.Leader, "-"),
			mark(sh.Voters), mark(sh.NonVoters), sh.Term, sh.CommitIndex, sh.AppliedIndex, sh.Items, sh.Unflushed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(breakers) > 0 {
		fmt.Fprintln(w)
		for _, addr := range breakers {
			fmt.Fprintf(w, "circuit to %s: %s\n", addr, s.Breakers[addr])
		}
	}
	return nil
}

// intList renders shards as "0,3", or "-" when there are none.
func intList(shards []int) string {
	if len(shards) == 0 {
		return "-"
	}
	slices.Sort(shards)
	parts := make([]string, len(shards))
	for i, sh := range shards {
		parts[i] = strconv.Itoa(sh)
	}
	return strings.Join(parts, ",")
}

// shardList renders the union of gossiped shard sets as "0,3", or "-"
// when empty.
func shardList(sets ...string) string {
	var shards []int
	for _, set := range sets {
		shards = append(shards, cluster.ShardSet(set)...)
	}
	return intList(slices.Compact(slices.Sorted(slices.Values(shards))))
}

// reconcilePagesMax bounds the pages `node reconcile` follows (1000 items
// each: well past sale.ItemsPerShardMax times the largest shard count).
const reconcilePagesMax = 10_000

// runReconcile prints the reconciliation report and fails when it finds a
// difference.
func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("node reconcile", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := adminFlags(fs, getenv)
	if err := parseSub(fs, "node reconcile [flags]: compare units sold in Raft with the order store; exit 1 on a difference", args, stdout); err != nil {
		return err
	}
	// The report comes in pages; the last one says no next.
	var rep orders.Reconciliation
	for after, pages := "", 0; ; pages++ {
		if pages > reconcilePagesMax {
			return fmt.Errorf("reconcile: more than %d pages", reconcilePagesMax)
		}
		var page orders.Reconciliation
		if err := o.get(ctx, "/v1/admin/reconcile?after="+url.QueryEscape(after), &page); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		items := append(rep.Items, page.Items...)
		rep, rep.Items = page, items
		if page.Next == "" || page.Next == after {
			break
		}
		after = page.Next
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ITEM\tSHARD\tRAFT_SOLD\tUNFLUSHED\tSTORE_SOLD\tDIFF")
	for _, it := range rep.Items {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\n", it.ItemID, it.Shard, it.RaftSold, it.Unflushed, it.StoreSold, it.Diff)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(rep.SkippedShards) > 0 {
		fmt.Fprintf(stdout, "skipped shards %v: no current replica on this node\n", rep.SkippedShards)
	}
	if rep.Differences > 0 {
		return fmt.Errorf("reconcile: %d item(s) differ between Raft and the order store", rep.Differences)
	}
	fmt.Fprintf(stdout, "%d items reconciled, no differences\n", len(rep.Items))
	return nil
}
