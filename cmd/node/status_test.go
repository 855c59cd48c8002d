package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/node"
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
