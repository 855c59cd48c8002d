package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/internal/node"
)

// runStatus prints a node's cluster status as tables.
func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*addr, "/")+"/v1/cluster/status", nil)
	if err != nil {
		return usageError{err}
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("status: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var s node.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return fmt.Errorf("status: %w", err)
	}
	fmt.Fprintf(stdout, "node %s (%s) ready=%v leads %d shards, %d item actors, at %s\n\n", s.Node.Name, s.Node.Version, s.Node.Ready, s.Node.ShardsLed, s.Node.Actors, s.Node.Time)
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tSTATE\tREGION\tHTTP\tRAFT\tGOSSIP")
	for _, m := range s.Members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.State, m.Region, m.HTTPAddr, m.RaftAddr, m.GossipAddr)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SHARD\tSTATE\tLEADER\tVOTERS\tTERM\tCOMMIT\tAPPLIED\tITEMS\tUNFLUSHED")
	for _, sh := range s.Shards {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", sh.ID, sh.State, sh.Leader,
			strings.Join(sh.Voters, ","), sh.Term, sh.CommitIndex, sh.AppliedIndex, sh.Items, sh.Unflushed)
	}
	return w.Flush()
}
