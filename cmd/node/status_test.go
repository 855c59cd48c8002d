package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/node"
	"github.com/flashstock/flashstock/raftstore"
)

// TestStatusTableShowsWhatMembersHear: `node status` lists, per member, the
// shards it leads and those with a leader it hears (its own included), so
// that a node alive in gossip but cut off from Raft stands out ("-" under
// HEARS).
func TestStatusTableShowsWhatMembersHear(t *testing.T) {
	st := node.Status{Members: []cluster.Member{
		{Meta: cluster.Meta{ID: "n1", Leads: cluster.EncodeLeads([]int{0, 3}), Follows: cluster.EncodeLeads([]int{1, 2})}, State: cluster.StateAlive},
		{Meta: cluster.Meta{ID: "n2", Follows: "00"}, State: cluster.StateAlive},
		{Meta: cluster.Meta{ID: "n3"}, State: cluster.StateAlive}, // an earlier version
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/status" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	var out, errOut strings.Builder
	err := runStatus(context.Background(), []string{"--addr", srv.URL, "--admin-token", "tok"}, func(string) string { return "" }, &out, &errOut)
	if err != nil {
		t.Fatalf("runStatus: %v", err)
	}
	want := map[string][]string{"n1": {"0,3", "0,1,2,3"}, "n2": {"-", "-"}, "n3": {"-", "?"}}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || want[f[0]] == nil {
			continue
		}
		if got := f[len(f)-2:]; got[0] != want[f[0]][0] || got[1] != want[f[0]][1] {
			t.Errorf("%s: LEADS, HEARS = %v; want %v\n%s", f[0], got, want[f[0]], out.String())
		}
		delete(want, f[0])
	}
	if len(want) > 0 {
		t.Errorf("members missing from the table: %v\n%s", want, out.String())
	}
}

// TestStatusAgreesAndMarksTheDead: LEADS come from the shard table (a dead
// node's stale gossip does not list it as a leader), a voter gossip does
// not see alive is marked, members and circuits come in name order, a
// summary line counts the tiers, and the output ends with a new line.
// The node's address and token come from the node's own environment.
func TestStatusAgreesAndMarksTheDead(t *testing.T) {
	st := node.Status{
		Members: []cluster.Member{
			{Meta: cluster.Meta{ID: "n3", RaftAddr: "r3", Leads: cluster.EncodeLeads([]int{0}), Follows: "00"}, State: cluster.StateDead},
			{Meta: cluster.Meta{ID: "g1", Role: config.RoleGateway}, State: cluster.StateAlive},
			{Meta: cluster.Meta{ID: "n1", RaftAddr: "r1", Leads: cluster.EncodeLeads([]int{1}), Follows: cluster.EncodeLeads([]int{0})}, State: cluster.StateAlive},
			{Meta: cluster.Meta{ID: "n2", RaftAddr: "r2", Follows: cluster.EncodeLeads([]int{0, 1})}, State: cluster.StateAlive},
		},
		Shards: []raftstore.ShardStatus{
			{ID: 1, State: "Leader", Leader: "n1", Voters: []string{"n1", "n2", "n3"}},
			{ID: 0, State: "Follower", Leader: "n2", Voters: []string{"n1", "n2", "n3"}},
		},
		Breakers: map[string]string{"b:1": "open", "a:1": "closed"},
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	env := map[string]string{
		"SECKILL_HTTP_ADDR":        strings.TrimPrefix(srv.URL, "http://"),
		"SECKILL_ADMIN_TOKEN_FILE": tokenFile,
	}
	var out strings.Builder
	if err := runStatus(context.Background(), nil, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatalf("runStatus with the node's environment: %v", err)
	}
	text := out.String()
	if !strings.HasSuffix(text, "\n") {
		t.Error("output does not end with a new line")
	}
	if !strings.Contains(text, "cluster: 2 core alive, 1 gateways alive, 1 not alive; 2 of 2 shards with a leader; 1 circuits open") {
		t.Errorf("no summary line, or a wrong one:\n%s", text)
	}
	var order []string
	leads := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && (f[1] == "core" || f[1] == "gateway") {
			order = append(order, f[0])
			leads[f[0]] = f[len(f)-2]
		}
	}
	if !slices.Equal(order, []string{"g1", "n1", "n2", "n3"}) {
		t.Errorf("members in order %v; want by name", order)
	}
	if leads["n3"] != "-" || leads["n1"] != "1" || leads["n2"] != "0" {
		t.Errorf("LEADS %v; want n1 1, n2 0, n3 - (as the shard table says)", leads)
	}
	if !strings.Contains(text, "n1,n2,n3(dead)") {
		t.Errorf("the dead voter is not marked:\n%s", text)
	}
	if i, j := strings.Index(text, "circuit to a:1"), strings.Index(text, "circuit to b:1"); i < 0 || j < i {
		t.Errorf("circuits not in order:\n%s", text)
	}
	if s0, s1 := strings.Index(text, "\n0 "), strings.Index(text, "\n1 "); s0 < 0 || s1 < s0 {
		t.Errorf("shards not in order:\n%s", text)
	}

	out.Reset()
	if err := runStatus(context.Background(), []string{"--json"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var back node.Status
	if err := json.Unmarshal([]byte(out.String()), &back); err != nil || len(back.Members) != 4 {
		t.Errorf("--json: %v, %d members", err, len(back.Members))
	}
}

// TestSubcommandHelp: -h prints a usage to standard output and succeeds,
// for every subcommand; `node help` lists them.
func TestSubcommandHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"status", "-h"}, {"reconcile", "-h"}, {"tls", "ca", "-h"}, {"tls", "cert", "-h"}, {"gossip-key", "-h"}} {
		var out strings.Builder
		err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard)
		if err != nil || !strings.Contains(out.String(), "usage: node") {
			t.Errorf("node %s = %v; printed %q; want a usage and no error", strings.Join(args, " "), err, out.String())
		}
	}
}
