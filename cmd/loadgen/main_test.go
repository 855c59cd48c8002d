package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/loadgen"
)

// env is a getenv over a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin")
	if err := os.WriteFile(tokenFile, []byte("  tok-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(c loadgen.Config) string // "" if as expected
	}{
		{"defaults", nil, nil, func(c loadgen.Config) string {
			if c.Scenario != loadgen.ScenarioHot || c.Workers != 32 || c.Rate != 0 || !c.Verify {
				return "want hot, closed loop of 32, verify on"
			}
			return ""
		}},
		{"rate alone is open loop", []string{"--rate", "250"}, nil, func(c loadgen.Config) string {
			if c.Rate != 250 || c.Workers != 0 {
				return "want rate 250, workers 0"
			}
			return ""
		}},
		{"crowd", []string{"--scenario=crowd", "--arrival-window=2s", "--requests=500"}, nil, func(c loadgen.Config) string {
			if c.Scenario != loadgen.ScenarioCrowd || c.Workers != 0 || c.ArrivalWindow != 2*time.Second || c.Requests != 500 {
				return "want crowd of 500 over 2s"
			}
			return ""
		}},
		{"environment", nil, map[string]string{
			"LOADGEN_SCENARIO": "many", "LOADGEN_ITEMS": "4", "LOADGEN_AUTH_SECRET": "s3",
			"LOADGEN_TARGETS": "http://a:1, http://b:2/", "LOADGEN_VERIFY": "false",
		}, func(c loadgen.Config) string {
			if c.Scenario != loadgen.ScenarioMany || c.Items != 4 || c.AuthSecret != "s3" || c.Verify ||
				strings.Join(c.Targets, " ") != "http://a:1 http://b:2/" {
				return "want the environment's values"
			}
			return ""
		}},
		{"flags win over environment", []string{"--items", "6"}, map[string]string{"LOADGEN_SCENARIO": "many", "LOADGEN_ITEMS": "4"},
			func(c loadgen.Config) string {
				if c.Items != 6 {
					return "want items 6"
				}
				return ""
			}},
		{"admin token file", []string{"--admin-token-file", tokenFile, "--create"}, nil, func(c loadgen.Config) string {
			if c.AdminToken != "tok-from-file" || !c.Create {
				return "want the trimmed token from the file"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := parseFlags(tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatalf("parseFlags(%q) error = %v", tt.args, err)
			}
			if why := tt.check(opts.cfg); why != "" {
				t.Errorf("parseFlags(%q) = %+v; %s", tt.args, opts.cfg, why)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"both loops", []string{"--rate", "10", "--workers", "5"}, nil, "exactly one"},
		{"unknown flag", []string{"--bogus"}, nil, "bogus"},
		{"stray argument", []string{"now"}, nil, "unexpected arguments"},
		{"bad environment", nil, map[string]string{"LOADGEN_RATE": "fast"}, "LOADGEN_RATE"},
		{"token twice", []string{"--admin-token", "a", "--admin-token-file", "/nonexistent"}, nil, "give one"},
		{"missing token file", []string{"--admin-token-file", "/nonexistent/admin"}, nil, "admin-token-file"},
		{"create without token", []string{"--create"}, nil, "admin token"},
		{"no targets", []string{"--targets", " , "}, nil, "targets"},
		{"log level", []string{"--log-level", "loud"}, nil, "log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, env(tt.env), io.Discard)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseFlags(%q) error = %v; want a usage error mentioning %q", tt.args, err, tt.want)
			}
			if code := exitCode(err, io.Discard); code != 2 {
				t.Errorf("exitCode(%v) = %d; want 2", err, code)
			}
		})
	}
	if _, err := parseFlags([]string{"-h"}, env(nil), io.Discard); !errors.Is(err, errHelp) {
		t.Errorf("parseFlags(-h) error = %v; want errHelp", err)
	}
}

// tinyShop serves one item with a stock counter; leaky makes it sell past
// its stock.
type tinyShop struct {
	leaky bool
	mu    sync.Mutex
	sold  int64
	stock int64
	byReq map[string]string
}

func (s *tinyShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/items/item-1":
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "item-1", "stock": s.stock, "sold": s.sold,
			"remaining": s.stock - s.sold, "per_user_limit": 1, "status": "on_sale"})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/items/item-1/purchase":
		var b struct {
			RequestID string `json:"request_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		user := r.Header.Get("X-User-ID")
		order := func(id string) map[string]any {
			return map[string]any{"order_id": id, "item_id": "item-1", "user_id": user, "quantity": 1, "status": "confirmed"}
		}
		if id, ok := s.byReq[user+"/"+b.RequestID]; ok {
			_ = json.NewEncoder(w).Encode(order(id))
			return
		}
		if s.sold >= s.stock && !s.leaky {
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":{"code":"sold_out","message":"sold out"}}`)
			return
		}
		s.sold++
		id := strconv.FormatInt(s.sold, 10)
		s.byReq[user+"/"+b.RequestID] = id
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(order(id))
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"not_found","message":"no route"}}`)
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		leaky    bool
		wantCode int
		wantOut  string
	}{
		{"pass", false, 0, "verify: PASS"},
		{"oversold", true, 1, "verify: FAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(&tinyShop{leaky: tt.leaky, stock: 10, byReq: map[string]string{}})
			defer srv.Close()
			out := filepath.Join(t.TempDir(), "report.json")
			args := []string{"--targets", srv.URL, "--workers", "3", "--requests", "40", "--duration", "5s",
				"--timeout", "1s", "--verify-timeout", "1s", "--verify-orders", "0", "--progress", "0", "--out", out, "--replay", "0.5"}
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, env(nil), &stdout, &stderr)
			if code := exitCode(err, io.Discard); code != tt.wantCode {
				t.Fatalf("run() = %v (exit %d); want exit %d\nstdout:\n%s\nstderr:\n%s", err, code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantOut, stdout.String())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("read --out: %v", err)
			}
			var rep struct {
				Config   map[string]any `json:"config"`
				Requests struct {
					Total int64 `json:"total"`
				} `json:"requests"`
				Latency map[string]struct {
					P99 uint64 `json:"p99_us"`
				} `json:"latency"`
				Verify struct {
					Pass bool `json:"pass"`
				} `json:"verify"`
			}
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatalf("--out is not the JSON report: %v", err)
			}
			if rep.Requests.Total < 40 || rep.Config["scenario"] != "hot" || rep.Verify.Pass != (tt.wantCode == 0) {
				t.Errorf("report: requests %d, scenario %v, pass %v", rep.Requests.Total, rep.Config["scenario"], rep.Verify.Pass)
			}
			if _, ok := rep.Latency["sold_out"]; !ok {
				t.Errorf("report latency has no sold_out entry: %s", data)
			}
		})
	}
}

func TestRunProgress(t *testing.T) {
	// A slow server and a short progress period: the line shows up on stderr.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"error":{"code":"sold_out","message":"sold out"}}`)
	}))
	defer srv.Close()
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"--targets", srv.URL, "--rate", "100", "--requests", "30",
		"--duration", "2s", "--progress", "100ms", "--verify=false"}, env(nil), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run() = %v", err)
	}
	if !strings.Contains(stderr.String(), "sold_out=") || !strings.Contains(stderr.String(), "p99=") {
		t.Errorf("stderr has no progress line:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "verify: skipped") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}
