package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/config"
)

func TestFlagsSecurityFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tok, []byte("admin-token-0123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SECKILL_TLS_CA_FILE":      "/run/secrets/tls_ca",
		"SECKILL_TLS_CERT_FILE":    "/run/secrets/tls_cert",
		"SECKILL_TLS_KEY":          "/run/secrets/tls_key",
		"SECKILL_GOSSIP_KEY_FILE":  "/run/secrets/gossip_key",
		"SECKILL_ADMIN_TOKEN_FILE": tok,
		"SECKILL_METRICS_ADDR":     "127.0.0.1:9100",
	}
	c, err := parseFlags([]string{"--name", "n1", "--raft-addr", "0.0.0.0:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if c.TLSCA != "/run/secrets/tls_ca" || c.TLSCert != "/run/secrets/tls_cert" || c.TLSKey != "/run/secrets/tls_key" ||
		c.GossipKeyFile != "/run/secrets/gossip_key" || c.MetricsAddr != "127.0.0.1:9100" {
		t.Fatalf("parseFlags = TLS %q %q %q, gossip %q, metrics %q; want the paths from the environment",
			c.TLSCA, c.TLSCert, c.TLSKey, c.GossipKeyFile, c.MetricsAddr)
	}
	if c.AdminToken != "admin-token-0123456789" || c.AdminTokenFile != tok {
		t.Fatalf("admin token %q from %q; want it read from %s", c.AdminToken, c.AdminTokenFile, tok)
	}
	// A flag wins over the environment.
	c, err = parseFlags([]string{"--name", "n1", "--tls-ca", "mine.crt"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || c.TLSCA != "mine.crt" {
		t.Fatalf("parseFlags(--tls-ca mine.crt) = %q, %v; want the flag", c.TLSCA, err)
	}
	if _, err := parseFlags([]string{"--name", "n1", "--raft-addr", "0.0.0.0:7000"}, func(string) string { return "" }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "--insecure-cluster") {
		t.Fatalf("parseFlags(off loopback, no keys) = %v; want the refusal", err)
	}
}

func TestDebugServer(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	const token = "admin-token-0123456789"
	get := func(url, bearer string) int {
		req, _ := http.NewRequest("GET", url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Loopback: open, but no command line.
	addr := freeAddr(t)
	stop, err := serveDebug(addr, token, log)
	if err != nil {
		t.Fatal(err)
	}
	if code := get("http://"+addr+"/debug/pprof/goroutine?debug=1", ""); code != 200 {
		t.Errorf("loopback goroutine profile = %d; want 200", code)
	}
	if code := get("http://"+addr+"/debug/pprof/cmdline", ""); code != 404 {
		t.Errorf("cmdline = %d; want 404 (the command line is not served)", code)
	}
	stop()
	if !config.IsLoopback(addr) {
		t.Fatalf("freeAddr %s is not loopback", addr)
	}
	// Any other address: the admin token, or 401. (0.0.0.0 binds every
	// interface; the test reaches it through loopback.)
	_, port, _ := strings.Cut(freeAddr(t), ":")
	stop, err = serveDebug("0.0.0.0:"+port, token, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	url := "http://127.0.0.1:" + port + "/debug/pprof/goroutine?debug=1"
	for _, bearer := range []string{"", "wrong-token-0123456789"} {
		if code := get(url, bearer); code != 401 {
			t.Errorf("non-loopback pprof with token %q = %d; want 401", bearer, code)
		}
	}
	if code := get(url, token); code != 200 {
		t.Errorf("non-loopback pprof with the admin token = %d; want 200", code)
	}
	if code := get("http://127.0.0.1:"+port+"/debug/pprof/cmdline", token); code != 404 {
		t.Errorf("cmdline with the admin token = %d; want 404", code)
	}
}

// TestMetricsAddr: with --metrics-addr, /metrics is there and not on the
// API; a group-readable admin token file is warned about.
func TestMetricsAddr(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("metrics-test-token-0123456789\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	maddr := freeAddr(t)
	a := nodeAddrs{http: freeAddr(t), raft: freeAddr(t), gossip: freeAddr(t), actor: freeAddr(t)}
	n := launchNodeEnv(t, t.TempDir(), a, "n1", []string{"SECKILL_ADMIN_TOKEN_FILE=" + tok}, "--metrics-addr", maddr)
	n.token = "metrics-test-token-0123456789"
	n.connect()
	n.waitReady()
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "flashstock_members_alive") {
		t.Fatalf("GET %s/metrics = %d; want the Prometheus text", maddr, resp.StatusCode)
	}
	resp, err = http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /metrics on the API = %d; want 404 with --metrics-addr", resp.StatusCode)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(n.logText(), "readable by other users") })
	if strings.Count(n.logText(), "readable by other users") != 1 {
		t.Fatalf("the readable admin token file was warned about more than once:\n%s", n.logText())
	}
	if strings.Contains(n.logText(), "metrics-test-token") {
		t.Fatal("the admin token appears in the log")
	}
}
