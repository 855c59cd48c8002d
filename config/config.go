// Package config holds a node's configuration: one struct with defaults,
// validation, and the mapping from flag names to SECKILL_* environment
// variables (with *_FILE variants for Docker Swarm secrets). Only cmd/node
// reads flags and the environment; everything else receives a Config.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/flashstock/flashstock/sale"
)

// Config is everything a node is told at start.
type Config struct {
	Name            string
	DataDir         string
	HTTPAddr        string
	RaftAddr        string
	RaftAdvertise   string
	GossipAddr      string
	GossipAdvertise string // what peers reach; empty means GossipAddr
	ActorAddr       string
	ActorAdvertise  string // what peers reach; empty means ActorAddr
	Join            []string
	BootstrapExpect int
	Shards          int
	Replicas        int
	DeadNodeGrace   time.Duration
	Region          string
	// Role is RoleCore (Raft seats, shard data, order flushing) or
	// RoleGateway (gossip and the HTTP API only; see docs/scaling.md).
	Role string
	// GossipProfile is "lan" (memberlist's LAN timing) or "local" (one
	// host: faster failure detection, for tests and demos).
	GossipProfile    string
	HeartbeatTimeout time.Duration // Raft heartbeat and election timeout

	OrdersDSN   []string // empty: the embedded SQLite store
	OrderTables int

	AuthSecret      string
	TrustUserHeader bool
	AdminToken      string
	TrustedProxies  []string

	RateNode     float64 // requests/s to this node; 0 = off
	RateUser     float64 // purchases/s per shopper; 0 = off
	RateIP       float64 // unauthenticated reads/s per client IP; 0 = off
	AdmissionMax int     // this node's purchases in flight
	ItemCacheTTL time.Duration

	QueueMax       int
	BatchMax       int
	InflightMax    int
	MaxUnflushed   int
	RequestTimeout time.Duration
	DedupRetention time.Duration
	DedupMax       int
	OrderRetention time.Duration
	PaymentWindow  time.Duration // 0: orders are final when confirmed
	WALSegmentMB   int           // Raft log segment size per shard
	DiskReserveMB  int           // free space under which purchases are refused; 0 = derived
	// SlowDiskWrite is the Raft log write time (a write and an fsync) over
	// which a write is slow; a node whose writes mostly are hands its
	// leaderships away. 0 turns the judgement off.
	SlowDiskWrite time.Duration
	FlushBatch    int
	FlushInterval time.Duration
	DrainTimeout  time.Duration
	// ShutdownDelay is how long a node keeps serving after SIGTERM, unready,
	// before it drains: a load balancer that re-resolves its upstreams
	// every few seconds stops sending to it first.
	ShutdownDelay time.Duration

	LogLevel  string
	LogFormat string // text or json
	DebugAddr string // pprof listener; empty = off

	// The cluster plane's keys (docs/security.md). On a node whose gossip,
	// Raft or actor address is not loopback all of them are required,
	// unless InsecureCluster.
	GossipKeys    []string // base64 AES keys from --gossip-key; the first encrypts, all decrypt
	GossipKeyFile string   // the same, one per line, re-read on SIGHUP and when it changes
	TLSCA         string   // files: the cluster CA, this node's certificate and key
	TLSCert       string
	TLSKey        string
	// InsecureCluster lets a node on a non-loopback address run its cluster
	// ports without the keys (logged as a warning on every start).
	InsecureCluster bool
	// MetricsAddr, when set, serves /metrics there instead of on HTTPAddr.
	MetricsAddr string
	// RateAuthFail caps failed authentications per client IP and second
	// (burst: twice the rate); past it the IP gets 429 before its token is
	// even checked. 0 = off.
	RateAuthFail float64
	// AdminTokenFile is where AdminToken was read from (SECKILL_ADMIN_TOKEN_FILE),
	// so that the node can warn when the file is readable by others.
	AdminTokenFile string
}

// Default returns the defaults: a single node on loopback.
func Default() Config {
	return Config{
		DataDir:          "./data",
		HTTPAddr:         "127.0.0.1:8080",
		RaftAddr:         "127.0.0.1:7000",
		GossipAddr:       "127.0.0.1:7946",
		ActorAddr:        "127.0.0.1:8090",
		BootstrapExpect:  1,
		Shards:           8,
		Replicas:         3,
		Role:             RoleCore,
		DeadNodeGrace:    30 * time.Second,
		GossipProfile:    "lan",
		HeartbeatTimeout: 500 * time.Millisecond,
		OrderTables:      16,
		RateUser:         5,
		RateIP:           100,
		RateAuthFail:     10,
		AdmissionMax:     20000,
		ItemCacheTTL:     time.Second,
		QueueMax:         4096,
		BatchMax:         1024,
		InflightMax:      1,
		MaxUnflushed:     1_000_000,
		RequestTimeout:   5 * time.Second,
		DedupRetention:   24 * time.Hour,
		DedupMax:         1_000_000,
		OrderRetention:   10 * time.Minute,
		WALSegmentMB:     16,
		SlowDiskWrite:    50 * time.Millisecond,
		FlushBatch:       500,
		FlushInterval:    50 * time.Millisecond,
		DrainTimeout:     30 * time.Second,
		LogLevel:         "info",
		LogFormat:        "text",
	}
}

// Node roles.
const (
	RoleCore    = "core"
	RoleGateway = "gateway"
)

// Gateway reports whether the node is a gateway.
func (c *Config) Gateway() bool { return c.Role == RoleGateway }

// EnvName returns the environment variable for a flag: "data-dir" ->
// "SECKILL_DATA_DIR".
func EnvName(flag string) string {
	return "SECKILL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// IsLoopback reports whether addr ("host:port") binds only loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate reports the first invalid setting, in words a user can act on.
func (c *Config) Validate() error {
	if err := c.validateAddrs(); err != nil {
		return err
	}
	if err := c.validateSettings(); err != nil {
		return err
	}
	return c.validateSecurity()
}

func (c *Config) validateAddrs() error {
	for _, a := range []struct{ flag, v string }{
		{"http-addr", c.HTTPAddr}, {"raft-addr", c.RaftAddr}, {"gossip-addr", c.GossipAddr}, {"actor-addr", c.ActorAddr},
		{"gossip-advertise", c.GossipAdvertise}, {"actor-advertise", c.ActorAdvertise}, {"raft-advertise", c.RaftAdvertise},
	} {
		if a.v == "" && (strings.HasSuffix(a.flag, "advertise") || a.flag == "raft-addr" && c.Gateway()) {
			continue // a gateway opens no Raft port
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("--%s %q: want host:port", a.flag, a.v)
		}
	}
	for _, a := range []struct{ flag, v string }{{"debug-addr", c.DebugAddr}, {"metrics-addr", c.MetricsAddr}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("--%s %q: want host:port", a.flag, a.v)
		}
	}
	return nil
}

func (c *Config) validateSettings() error {
	switch {
	case c.Name == "":
		return errors.New("--name is required")
	case c.DataDir == "":
		return errors.New("--data-dir is required")
	case c.Shards < 1 || c.Shards > 256:
		return fmt.Errorf("--shards %d: want 1..256", c.Shards)
	case c.BootstrapExpect < 1:
		return fmt.Errorf("--bootstrap-expect %d: want at least 1", c.BootstrapExpect)
	case c.Replicas < 1 || c.Replicas > 7:
		return fmt.Errorf("--replicas %d: want 1..7", c.Replicas)
	case c.DeadNodeGrace <= 0:
		return errors.New("--dead-node-grace must be positive")
	case c.Role != RoleCore && c.Role != RoleGateway:
		return fmt.Errorf("--role %q: want core or gateway", c.Role)
	case c.Gateway() && len(c.Join) == 0:
		return errors.New("--role gateway needs --join: a gateway holds no shard and serves through the core nodes it finds by gossip")
	case c.GossipProfile != "lan" && c.GossipProfile != "local":
		return fmt.Errorf("--gossip-profile %q: want lan or local", c.GossipProfile)
	case c.HeartbeatTimeout < 50*time.Millisecond:
		return errors.New("--raft-heartbeat-timeout must be at least 50ms")
	case c.OrderTables < 1 || c.OrderTables > 1024:
		return fmt.Errorf("--order-tables %d: want 1..1024", c.OrderTables)
	case c.QueueMax < 1, c.BatchMax < 1, c.MaxUnflushed < 1, c.DedupMax < 1, c.FlushBatch < 1, c.AdmissionMax < 1:
		return errors.New("--queue-max, --batch-max, --max-unflushed, --dedup-max, --flush-batch and --admission-max must be positive")
	case c.InflightMax < 1 || c.InflightMax > 64:
		return fmt.Errorf("--inflight-max %d: want 1..64", c.InflightMax)
	case c.BatchMax > sale.PurchasesPerEntryMax:
		return fmt.Errorf("--batch-max %d: want at most %d", c.BatchMax, sale.PurchasesPerEntryMax)
	case c.RateNode < 0, c.RateUser < 0, c.RateIP < 0, c.RateAuthFail < 0:
		return errors.New("--rate-node, --rate-user, --rate-ip and --rate-auth-fail must not be negative (0 turns one off)")
	case c.WALSegmentMB < 1 || c.WALSegmentMB > 1024:
		return fmt.Errorf("--wal-segment-mb %d: want 1..1024", c.WALSegmentMB)
	case c.DiskReserveMB < 0:
		return errors.New("--disk-reserve-mb must not be negative")
	case c.SlowDiskWrite < 0:
		return errors.New("--slow-disk-write must not be negative (0 turns it off)")
	case c.OrderRetention < 0:
		return errors.New("--order-retention must not be negative")
	case c.PaymentWindow < 0:
		return errors.New("--payment-window must not be negative (0 turns it off)")
	case c.ItemCacheTTL < 0 || c.ItemCacheTTL > time.Minute:
		return fmt.Errorf("--item-cache-ttl %v: want 0..1m", c.ItemCacheTTL)
	case c.ShutdownDelay < 0 || c.ShutdownDelay > time.Minute:
		return fmt.Errorf("--shutdown-delay %v: want 0..1m", c.ShutdownDelay)
	case c.RequestTimeout <= 0, c.DedupRetention <= 0, c.FlushInterval <= 0, c.DrainTimeout <= 0:
		return errors.New("--request-timeout, --dedup-retention, --flush-interval and --drain-timeout must be positive")
	case c.AuthSecret != "" && len(c.AuthSecret) < 16:
		return errors.New("--auth-secret must be at least 16 characters")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return errors.New("--admin-token must be at least 16 characters")
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			return fmt.Errorf("--trusted-proxies %q: want CIDRs such as 10.0.0.0/8", p)
		}
	}
	if c.AuthSecret != "" && c.TrustUserHeader {
		return errors.New("--auth-secret and --trust-user-header together would let a request without a JWT buy as any X-User-ID: give one of them (JWTs, or an authenticating gateway)")
	}
	if !IsLoopback(c.HTTPAddr) && c.AuthSecret == "" && !c.TrustUserHeader {
		return fmt.Errorf("--http-addr %s is not loopback: give --auth-secret (verify shopper JWTs) or --trust-user-header (behind an authenticating gateway)", c.HTTPAddr)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// validateSecurity checks the cluster plane's keys: well-formed when given,
// and required on a node whose cluster ports are not loopback only.
func (c *Config) validateSecurity() error {
	if len(c.GossipKeys) > 0 && c.GossipKeyFile != "" {
		return errors.New("give --gossip-key or --gossip-key-file, not both")
	}
	if len(c.GossipKeys) > 0 {
		if _, err := ParseGossipKeys(strings.Join(c.GossipKeys, ",")); err != nil {
			return fmt.Errorf("--gossip-key: %w", err)
		}
	}
	n := 0
	for _, f := range []string{c.TLSCA, c.TLSCert, c.TLSKey} {
		if f != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return errors.New("--tls-ca, --tls-cert and --tls-key go together: give all three (node tls ca / node tls cert make them)")
	}
	if c.InsecureCluster || c.ClusterLoopback() {
		return nil
	}
	var missing []string
	if !c.GossipEncrypted() {
		missing = append(missing, "a gossip key (--gossip-key-file)")
	}
	if !c.TLSEnabled() {
		missing = append(missing, "TLS files (--tls-ca, --tls-cert, --tls-key)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster ports on %s are reachable from other hosts: give %s (see docs/security.md; `node tls` makes certificates), or --insecure-cluster to run them open",
			c.exposedClusterAddr(), strings.Join(missing, " and "))
	}
	return nil
}

// ClusterLoopback reports whether the gossip, Raft and actor ports all bind
// loopback only: then no other host can reach them, and the keys are
// optional.
func (c *Config) ClusterLoopback() bool { return c.exposedClusterAddr() == "" }

func (c *Config) exposedClusterAddr() string {
	addrs := []string{c.GossipAddr, c.ActorAddr}
	if !c.Gateway() { // a gateway opens no Raft port
		addrs = append(addrs, c.RaftAddr)
	}
	for _, a := range addrs {
		if !IsLoopback(a) {
			return a
		}
	}
	return ""
}

// GossipEncrypted reports whether gossip has a key.
func (c *Config) GossipEncrypted() bool { return len(c.GossipKeys) > 0 || c.GossipKeyFile != "" }

// TLSEnabled reports whether Raft and actor traffic use mutual TLS.
func (c *Config) TLSEnabled() bool { return c.TLSCA != "" && c.TLSCert != "" && c.TLSKey != "" }

// GossipKeyring returns the gossip keys, the primary first: from
// --gossip-key, or read from --gossip-key-file. None when gossip is not
// encrypted.
func (c *Config) GossipKeyring() ([][]byte, error) {
	if c.GossipKeyFile != "" {
		return ReadGossipKeyFile(c.GossipKeyFile)
	}
	if len(c.GossipKeys) == 0 {
		return nil, nil
	}
	return ParseGossipKeys(strings.Join(c.GossipKeys, ","))
}

// Gossip key sizes memberlist accepts: AES-128, AES-192, AES-256.
var gossipKeySizes = []int{16, 24, 32}

// ParseGossipKeys parses base64 gossip keys separated by commas or new
// lines, the primary (the one that encrypts) first. Blank lines and lines
// starting with # are skipped. Errors never quote a key.
func ParseGossipKeys(s string) ([][]byte, error) {
	var keys [][]byte
	seen := map[string]bool{}
	for i, line := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("key %d is not base64 (make one with: openssl rand -base64 32)", i+1)
		}
		if !slices.Contains(gossipKeySizes, len(k)) {
			return nil, fmt.Errorf("key %d is %d bytes; want 16, 24 or 32 (AES-128, -192, -256)", i+1, len(k))
		}
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key given")
	}
	return keys, nil
}

// ReadGossipKeyFile reads a gossip key file: one base64 key per line, the
// primary first.
func ReadGossipKeyFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip key file: %w", err)
	}
	keys, err := ParseGossipKeys(string(b))
	if err != nil {
		return nil, fmt.Errorf("gossip key file %s: %w", path, err)
	}
	return keys, nil
}

// UserHeaderTrusted reports whether X-User-ID identifies shoppers: when
// asked, or by default on a loopback-only node without an auth secret.
func (c *Config) UserHeaderTrusted() bool {
	return c.TrustUserHeader || (c.AuthSecret == "" && IsLoopback(c.HTTPAddr))
}
