package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flashstock/flashstock/config"
)

// secretFlags may also be read from the file named by SECKILL_<FLAG>_FILE.
var secretFlags = map[string]bool{"auth-secret": true, "admin-token": true, "orders-dsn": true}

// pathFlags name files already; SECKILL_<FLAG>_FILE is another name for
// SECKILL_<FLAG> (the file's path), so that Swarm secrets are wired the same
// way for every secret.
var pathFlags = map[string]bool{"tls-ca": true, "tls-cert": true, "tls-key": true}

// parseFlags reads the command line over the environment over the
// defaults.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config.Config, error) {
	c := config.Default()
	if h, err := os.Hostname(); err == nil {
		c.Name = h
	}
	var join, dsn, proxies, gossipKeys string
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.Name, "name", c.Name, "node name, unique in the cluster (default: hostname)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for Raft logs, snapshots, the embedded order store and the admin token")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP API address")
	fs.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "Raft address shared by all shard groups")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "Raft address other nodes dial (default: --raft-addr)")
	fs.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "gossip (memberlist) address, UDP and TCP")
	fs.StringVar(&c.GossipAdvertise, "gossip-advertise", "", "gossip address (IP:port) other nodes reach (default: --gossip-addr)")
	fs.StringVar(&c.ActorAddr, "actor-addr", c.ActorAddr, "actor remoting address")
	fs.StringVar(&c.ActorAdvertise, "actor-advertise", "", "actor remoting address other nodes reach (default: --actor-addr)")
	fs.StringVar(&join, "join", "", "comma-separated gossip addresses of nodes to join")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "number of nodes to wait for before creating the shard groups")
	fs.IntVar(&c.Shards, "shards", c.Shards, "number of Raft shard groups; fixed when the data dir is created")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "voters per shard group")
	fs.DurationVar(&c.DeadNodeGrace, "dead-node-grace", c.DeadNodeGrace, "how long a dead node keeps its Raft seats before it is replaced")
	fs.StringVar(&c.GossipProfile, "gossip-profile", c.GossipProfile, "gossip timing: lan, or local (one host: faster failure detection)")
	fs.DurationVar(&c.HeartbeatTimeout, "raft-heartbeat-timeout", c.HeartbeatTimeout, "Raft heartbeat and election timeout (failover speed vs. false elections)")
	fs.StringVar(&c.Region, "region", c.Region, "region/zone label, e.g. hk-1a")
	fs.StringVar(&c.Role, "role", c.Role, "core (holds Raft seats and shard data) or gateway (serves the API, holds nothing; needs --join)")
	fs.StringVar(&dsn, "orders-dsn", "", "comma-separated MySQL DSNs, one per database shard (default: embedded SQLite)")
	fs.IntVar(&c.OrderTables, "order-tables", c.OrderTables, "order tables per MySQL database")
	fs.StringVar(&c.AuthSecret, "auth-secret", "", "HS256 secret that verifies shopper JWTs")
	fs.BoolVar(&c.TrustUserHeader, "trust-user-header", false, "take the shopper from the X-User-ID header (behind an authenticating gateway; benchmarks)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "bearer token for admin routes (default: generated and stored in the data dir)")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client (default: none; the socket address is the client)")
	fs.Float64Var(&c.RateNode, "rate-node", c.RateNode, "requests per second this node accepts, token bucket (0 = off); beyond it 429 rate_limited")
	fs.Float64Var(&c.RateUser, "rate-user", c.RateUser, "purchases per second per shopper (0 = off)")
	fs.Float64Var(&c.RateIP, "rate-ip", c.RateIP, "item reads per second per client IP (0 = off)")
	fs.IntVar(&c.AdmissionMax, "admission-max", c.AdmissionMax, "purchases this node has in flight; beyond it 503 overloaded")
	fs.DurationVar(&c.ItemCacheTTL, "item-cache-ttl", c.ItemCacheTTL, "staleness bound of item reads on a node without a replica of the item's shard")
	fs.IntVar(&c.QueueMax, "queue-max", c.QueueMax, "purchases that may wait in one item actor; beyond it 503 overloaded")
	fs.IntVar(&c.BatchMax, "batch-max", c.BatchMax, "purchases per Raft log entry")
	fs.IntVar(&c.InflightMax, "inflight-max", c.InflightMax, "Raft entries one item may have in flight (pipelining)")
	fs.IntVar(&c.MaxUnflushed, "max-unflushed", c.MaxUnflushed, "confirmed orders per shard waiting for the order store; beyond it 503 unavailable")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "how long a purchase waits for its answer")
	fs.DurationVar(&c.DedupRetention, "dedup-retention", c.DedupRetention, "how long request_ids are remembered")
	fs.IntVar(&c.DedupMax, "dedup-max", c.DedupMax, "how many request_ids each shard remembers")
	fs.DurationVar(&c.OrderRetention, "order-retention", c.OrderRetention, "how long flushed orders stay readable from Raft (at most 200000 per shard); older ones are read from the order store")
	fs.DurationVar(&c.PaymentWindow, "payment-window", c.PaymentWindow, "time a buyer has to pay (POST /v1/orders/{id}/pay) before the order expires and its stock returns; 0 = off, orders are final")
	fs.IntVar(&c.WALSegmentMB, "wal-segment-mb", c.WALSegmentMB, "size of each shard's preallocated Raft log segment files, MiB")
	fs.IntVar(&c.DiskReserveMB, "disk-reserve-mb", c.DiskReserveMB, "free disk space under which the node refuses purchases and is not ready, MiB (0 = one log segment per shard plus 32)")
	fs.DurationVar(&c.SlowDiskWrite, "slow-disk-write", c.SlowDiskWrite, "Raft log write time (write and fsync) over which a write is slow; a node whose writes mostly are for 5 s hands its shard leaderships to voters with faster disks (0 = off)")
	fs.IntVar(&c.FlushBatch, "flush-batch", c.FlushBatch, "orders per order-store write")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "order flush poll interval")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long SIGTERM waits for in-flight work")
	fs.DurationVar(&c.ShutdownDelay, "shutdown-delay", c.ShutdownDelay, "on SIGTERM, answer /readyz 503 but keep serving this long before draining, so a load balancer stops sending first (gateways behind nginx: 7s)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (one format for the node's own lines, Raft's and memberlist's)")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "serve Go pprof profiles on this address (default off); off loopback every request needs the admin token")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve /metrics on this address instead of the API's (default: on --http-addr)")
	fs.Float64Var(&c.RateAuthFail, "rate-auth-fail", c.RateAuthFail, "failed authentications per second per client IP before it gets 429 unchecked (0 = off)")
	fs.StringVar(&gossipKeys, "gossip-key", "", "base64 gossip encryption keys (16, 24 or 32 bytes), comma-separated, the first encrypts; prefer --gossip-key-file (a command line is visible to every user)")
	fs.StringVar(&c.GossipKeyFile, "gossip-key-file", "", "file of base64 gossip keys, one per line, the first encrypts; re-read on SIGHUP and when it changes")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "cluster CA certificate (PEM) that Raft and actor peers must chain to")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "this node's certificate (PEM; node tls cert makes one); re-read on SIGHUP and when it changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "this node's private key (PEM)")
	fs.BoolVar(&c.InsecureCluster, "insecure-cluster", false, "run non-loopback cluster ports without a gossip key and TLS (anyone who reaches them can join)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, "usage: node [flags] (node help lists the subcommands)\n\nflags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return c, errHelp
		}
		return c, usageError{err}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		v := getenv(config.EnvName(f.Name))
		if v == "" && pathFlags[f.Name] {
			v = getenv(config.EnvName(f.Name) + "_FILE")
		}
		if v == "" && secretFlags[f.Name] {
			if path := getenv(config.EnvName(f.Name) + "_FILE"); path != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					envErr = fmt.Errorf("%s_FILE: %w", config.EnvName(f.Name), err)
					return
				}
				v = strings.TrimSpace(string(b))
				if f.Name == "admin-token" {
					c.AdminTokenFile = path
				}
			}
		}
		if v != "" {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", config.EnvName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return c, usageError{envErr}
	}
	c.Join = splitList(join)
	c.OrdersDSN = splitList(dsn)
	c.TrustedProxies = splitList(proxies)
	c.GossipKeys = splitList(gossipKeys)
	if err := c.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
