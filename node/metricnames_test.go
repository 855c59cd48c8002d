package node_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/node"
)

// TestShippedMetricNamesExist: every flashstock_ series that the Swarm
// stack's alert rules and the Grafana dashboard query is exported by a
// running node, so that no alert or panel silently watches a name that
// does not exist (it would show "no data", and an alert would never fire).
func TestShippedMetricNamesExist(t *testing.T) {
	c := config.Default()
	c.Name, c.DataDir = "metrics", t.TempDir()
	c.HTTPAddr, c.RaftAddr, c.GossipAddr, c.ActorAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	c.GossipProfile, c.AdminToken, c.DiskReserveMB = "local", adminToken, 1
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nd, err := node.Start(ctx, c, nil, io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nd.Kill)
	waitFor(t, 20*time.Second, "ready", nd.Ready)
	// A purchase, so that the labelled histograms and counters have series
	// (the per-shard and per-state ones exist from the start, at 0).
	if r, err := doAt(c.HTTPAddr, "POST", "/v1/items", "admin", map[string]any{"id": "m", "stock": 5}); err != nil || r.status != 201 {
		t.Fatalf("create item: %d %v %v", r.status, r.body, err)
	}
	if r, err := doAt(c.HTTPAddr, "POST", "/v1/items/m/purchase", "u", map[string]any{"quantity": 1}); err != nil || r.status != 201 {
		t.Fatalf("purchase: %d %v %v", r.status, r.body, err)
	}
	var exposed string
	waitFor(t, 10*time.Second, "a scrape", func() bool {
		resp, err := http.Get("http://" + c.HTTPAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		exposed = string(b)
		return resp.StatusCode == http.StatusOK
	})
	have := map[string]bool{}
	for _, line := range strings.Split(exposed, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		have[name] = true
	}
	re := regexp.MustCompile(`\bflashstock_[a-z0-9_]+`)
	for _, f := range []string{"../deploy/swarm/flashstock-rules.yml", "../deploy/swarm/grafana/flashstock-dashboard.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(f, ".yml") { // comments name Swarm configs, not series
			text = regexp.MustCompile(`(?m)(^|\s)#.*$`).ReplaceAllString(text, "")
		}
		names := re.FindAllString(text, -1)
		if len(names) == 0 {
			t.Fatalf("%s names no flashstock_ series: the pattern no longer matches", f)
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s queries %s, which a running node does not export", f, n)
			}
		}
	}
}
