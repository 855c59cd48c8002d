package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func key(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(fill), n)))
}

func TestValidateSecurity(t *testing.T) {
	secured := func(c *Config) {
		c.GossipKeys = []string{key(32, 'a')}
		c.TLSCA, c.TLSCert, c.TLSKey = "ca.crt", "n1.crt", "n1.key"
	}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // "" for valid
	}{
		{"defaults: loopback, no keys", func(*Config) {}, ""},
		{"loopback with keys", secured, ""},
		{"raft off loopback, no keys", func(c *Config) { c.RaftAddr = "0.0.0.0:7000" }, "--insecure-cluster"},
		{"gossip off loopback, no keys", func(c *Config) { c.GossipAddr = "10.0.0.1:7946" }, "a gossip key"},
		{"actor off loopback, TLS only", func(c *Config) {
			c.ActorAddr = "10.0.0.1:8090"
			c.TLSCA, c.TLSCert, c.TLSKey = "a", "b", "c"
		}, "a gossip key (--gossip-key-file)"},
		{"off loopback, gossip key only", func(c *Config) {
			c.RaftAddr = "10.0.0.1:7000"
			c.GossipKeyFile = "gossip.key"
		}, "TLS files"},
		{"off loopback with keys", func(c *Config) { secured(c); c.RaftAddr = "0.0.0.0:7000" }, ""},
		{"off loopback, --insecure-cluster", func(c *Config) { c.RaftAddr = "0.0.0.0:7000"; c.InsecureCluster = true }, ""},
		{"partial TLS", func(c *Config) { c.TLSCA, c.TLSCert = "a", "b" }, "go together"},
		{"gossip key and key file", func(c *Config) { c.GossipKeys = []string{key(16, 'k')}; c.GossipKeyFile = "f" }, "not both"},
		{"gossip key not base64", func(c *Config) { c.GossipKeys = []string{"not base64!"} }, "not base64"},
		{"gossip key 20 bytes", func(c *Config) { c.GossipKeys = []string{key(20, 'k')} }, "20 bytes"},
		{"auth secret and trusted header", func(c *Config) {
			c.AuthSecret, c.TrustUserHeader = "0123456789abcdef-secret", true
		}, "together"},
		{"bad metrics addr", func(c *Config) { c.MetricsAddr = "9100" }, "--metrics-addr"},
		{"bad debug addr", func(c *Config) { c.DebugAddr = "localhost" }, "--debug-addr"},
		{"negative auth-fail rate", func(c *Config) { c.RateAuthFail = -1 }, "--rate-auth-fail"},
		{"unknown role", func(c *Config) { c.Role = "edge" }, "--role"},
		{"gateway without seeds", func(c *Config) { c.Role = RoleGateway }, "--join"},
		{"gateway: no Raft address needed", func(c *Config) {
			c.Role, c.Join, c.RaftAddr = RoleGateway, []string{"10.0.0.1:7946"}, ""
		}, ""},
		{"gateway: its unused Raft address off loopback needs no keys", func(c *Config) {
			c.Role, c.Join, c.RaftAddr = RoleGateway, []string{"10.0.0.1:7946"}, "0.0.0.0:7000"
		}, ""},
		{"gateway: gossip off loopback needs the keys", func(c *Config) {
			c.Role, c.Join, c.GossipAddr = RoleGateway, []string{"10.0.0.1:7946"}, "10.0.0.2:7946"
		}, "a gossip key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Name = "n1"
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate() = %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseGossipKeys(t *testing.T) {
	a, b, c := key(16, 'a'), key(24, 'b'), key(32, 'c')
	keys, err := ParseGossipKeys("# primary first\n" + c + "\n\n " + a + " ,\n" + b + "\n" + a + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || len(keys[0]) != 32 || len(keys[1]) != 16 || len(keys[2]) != 24 {
		t.Fatalf("ParseGossipKeys = %d keys of %v bytes; want c, a, b (the duplicate dropped, the order kept)", len(keys), lens(keys))
	}
	for _, in := range []string{"", "# only a comment\n", "!!!", key(15, 'x')} {
		if _, err := ParseGossipKeys(in); err == nil {
			t.Errorf("ParseGossipKeys(%q) = nil error; want one", in)
		}
	}
	// Errors never quote a key: a key of the wrong size is a secret too.
	secret := key(20, 's')
	if _, err := ParseGossipKeys(secret); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("ParseGossipKeys(wrong size) = %v; want an error that does not quote the key", err)
	}
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadGossipKeyFile(path); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("ReadGossipKeyFile(wrong size) = %v; want an error that does not quote the key", err)
	}
}

func lens(keys [][]byte) []int {
	var out []int
	for _, k := range keys {
		out = append(out, len(k))
	}
	return out
}
