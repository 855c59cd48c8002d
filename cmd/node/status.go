package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
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
)

// adminGet fetches an admin JSON document from a node.
func adminGet(ctx context.Context, args []string, getenv func(string) string, path string, v any) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "http://127.0.0.1:8080", "node HTTP address")
	token := fs.String("admin-token", getenv(config.EnvName("admin-token")), "admin token")
	dataDir := fs.String("data-dir", "./data", "read the admin token from this data dir when --admin-token is not given")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *token == "" {
		b, err := os.ReadFile(filepath.Join(*dataDir, "admin-token"))
		if err != nil {
			return usageError{fmt.Errorf("no --admin-token and none in %s: %w", *dataDir, err)}
		}
		*token = strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*addr, "/")+path, nil)
	if err != nil {
		return usageError{err}
	}
	req.Header.Set("Authorization", "Bearer "+*token)
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

// runStatus prints a node's cluster status as tables.
func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s node.Status
	if err := adminGet(ctx, args, getenv, "/v1/cluster/status", &s); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fmt.Fprintf(stdout, "node %s (%s) ready=%v leads %d shards, %d item actors, at %s\n\n", s.Node.Name, s.Node.Version, s.Node.Ready, s.Node.ShardsLed, s.Node.Actors, s.Node.Time)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	// LEADS and HEARS are what each member last gossiped: the shards it
	// leads, and those with a leader it hears (itself included). A live
	// member that hears no leader is cut off from Raft while gossip still
	// reaches it.
	fmt.Fprintln(w, "MEMBER\tSTATE\tREGION\tHTTP\tRAFT\tGOSSIP\tLEADS\tHEARS")
	for _, m := range s.Members {
		hears := shardList(m.Leads, m.Follows)
		if m.Follows == "" {
			hears = "?" // a node of an earlier version
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.State, m.Region, m.HTTPAddr, m.RaftAddr, m.GossipAddr,
			shardList(m.Leads), hears)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SHARD\tSTATE\tLEADER\tVOTERS\tNON-VOTERS\tTERM\tCOMMIT\tAPPLIED\tITEMS\tUNFLUSHED")
	for _, sh := range s.Shards {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", sh.ID, sh.State, sh.Leader,
			strings.Join(sh.Voters, ","), strings.Join(sh.NonVoters, ","), sh.Term, sh.CommitIndex, sh.AppliedIndex, sh.Items, sh.Unflushed)
	}
	for addr, st := range s.Breakers {
		fmt.Fprintf(w, "\ncircuit to %s: %s", addr, st)
	}
	return w.Flush()
}

// shardList renders the union of gossiped shard sets as "0,3", or "-"
// when empty.
func shardList(sets ...string) string {
	var shards []int
	for _, set := range sets {
		shards = append(shards, cluster.ShardSet(set)...)
	}
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

// reconcilePagesMax bounds the pages `node reconcile` follows (1000 items
// each: well past sale.ItemsPerShardMax times the largest shard count).
const reconcilePagesMax = 10_000

// runReconcile prints the reconciliation report and fails when it finds a
// difference.
func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// The report comes in pages; the last one says no next.
	var rep orders.Reconciliation
	for after, pages := "", 0; ; pages++ {
		if pages > reconcilePagesMax {
			return fmt.Errorf("reconcile: more than %d pages", reconcilePagesMax)
		}
		var page orders.Reconciliation
		if err := adminGet(ctx, args, getenv, "/v1/admin/reconcile?after="+url.QueryEscape(after), &page); err != nil {
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
