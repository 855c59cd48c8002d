// Package node wires one Flashstock node: the order store, the Raft shard
// groups, gossip membership and bootstrap, the actor engine, the Raft
// membership reconciler, the order flusher and the HTTP API. cmd/node runs
// one per process; tests run several in one process.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/config"
	httpapi "github.com/flashstock/flashstock/http"
	"github.com/flashstock/flashstock/internal/logbridge"
	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
)

// Version is reported in gossip meta and the status endpoint.
var Version = "dev"

// OpenSink opens the MySQL order store; cmd/node sets it so that this
// package does not import a SQL driver it may not need.
type OpenSink func(ctx context.Context, cfg config.Config) (orders.Sink, error)

// Node is a running node.
type Node struct {
	cfg        config.Config
	log        *slog.Logger
	metrics    *metrics.Metrics
	sink       orders.Sink
	store      *raftstore.Store
	members    *cluster.Membership
	place      *cluster.LeaderPlacement
	engine     *actors.Engine
	reconciler *cluster.Reconciler // nil on a gateway, as are store, sink and flusher
	flusher    *orders.Flusher
	rejoin     *rejoiner // a gateway's: gossip seeds contacted again while no core node is alive
	api        *httpapi.Server
	ln         net.Listener
	sec        *security      // cluster TLS and gossip keys
	metricsSrv *metricsServer // nil unless --metrics-addr
	serveErr   chan error
	adminToken string
	stopped    atomic.Bool
	draining   atomic.Bool            // BeginDrain: unready, still serving
	mismatch   atomic.Pointer[string] // the last shardMismatch said, to log a change once
}

// Start starts a node and returns once it serves HTTP. With
// --bootstrap-expect N it first waits (until ctx ends) for N members.
// On error everything started is stopped again.
func Start(ctx context.Context, cfg config.Config, mysql OpenSink, stdout io.Writer, log *slog.Logger) (_ *Node, err error) {
	n := &Node{cfg: cfg, log: log, metrics: metrics.New(), serveErr: make(chan error, 1)}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if n.adminToken, err = loadAdminToken(cfg, stdout); err != nil {
		return nil, err
	}
	if cfg.AdminToken == "" {
		warnReadable(log, "admin token", filepath.Join(cfg.DataDir, "admin-token"))
	}
	if n.sec, err = newSecurity(cfg, log); err != nil {
		return nil, err
	}
	if n.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	undo = append(undo, func() { n.ln.Close() })
	starting := serveStarting(n.ln) // /healthz from now on (starting.go)
	undo = append(undo, starting.stop)
	gateway := cfg.Gateway() // no shard groups, order store, reconciler or flusher
	if !gateway {
		if n.sink, err = openSink(ctx, cfg, mysql); err != nil {
			return nil, err
		}
		undo = append(undo, func() { n.sink.Close() })
	}

	var engine atomic.Pointer[actors.Engine]
	var gate atomic.Pointer[cluster.FeatureGate]
	rc := raftstore.DefaultConfig()
	rc.NodeID = cfg.Name
	rc.DataDir = cfg.DataDir
	rc.BindAddr = cfg.RaftAddr
	rc.AdvertiseAddr = cfg.RaftAdvertise
	rc.Shards = cfg.Shards
	rc.Bootstrap = false // cluster.Bootstrap decides, for one node or many
	rc.HeartbeatTimeout, rc.ElectionTimeout = cfg.HeartbeatTimeout, cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.WALSegmentSize = cfg.WALSegmentMB << 20
	rc.DiskReserve = uint64(cfg.DiskReserveMB) << 20
	rc.SlowWrite = cfg.SlowDiskWrite
	rc.FSM = raftstore.FSMConfig{DedupRetention: cfg.DedupRetention, DedupMax: cfg.DedupMax,
		OrderRetention: cfg.OrderRetention, OrderRetentionMax: 200_000}
	rc.PayWindow = cfg.PaymentWindow
	rc.Logger = log
	// hashicorp/raft's lines join the node's own, in its format; its info
	// lines (state changes) only at --log-level debug.
	rc.RaftLog = &logbridge.Writer{Log: log, Lib: "raft", Demote: logbridge.RaftStartupNoise}
	if cfg.LogLevel == "debug" {
		rc.RaftLogLevel = "info"
	}
	rc.Allowed = func(shard int, f raftstore.Feature) bool {
		g := gate.Load()
		return g != nil && g.Allowed(shard, f) // none before gossip runs
	}
	if n.sec.tls != nil {
		rc.WrapListener = func(ln net.Listener) net.Listener { return n.sec.tls.Listener(ln, "raft") }
		rc.Dial = n.sec.tls.Dial
	}
	var reconciler atomic.Pointer[cluster.Reconciler]
	rc.OnLeadership = func(shard int, leader bool) {
		if e := engine.Load(); e != nil {
			e.OnLeadership(shard, leader)
		}
		if r := reconciler.Load(); r != nil {
			r.LeadershipChanged() // gossip the new Leads now: nodes outside the group route by them
		}
	}
	raftAddr := ""
	if !gateway {
		if n.store, err = raftstore.Open(rc); err != nil {
			return nil, err
		}
		undo = append(undo, func() { n.store.Close() })
		raftAddr = n.store.Addr()
	}

	sys := actors.NewActorSystem(log)
	actorAdv := cfg.ActorAddr
	if cfg.ActorAdvertise != "" {
		actorAdv = cfg.ActorAdvertise
	}
	if n.members, err = cluster.Start(cluster.Config{
		BindAddr:      cfg.GossipAddr,
		AdvertiseAddr: cfg.GossipAdvertise,
		Join:          cfg.Join,
		Fast:          cfg.GossipProfile == "local",
		Keys:          n.sec.keys,
		Refusals:      n.sec.refusals,
		Meta: cluster.Meta{
			// A gateway gossips no Raft address: the reconciler and
			// bootstrap only ever seat members that have one.
			ID: cfg.Name, RaftAddr: raftAddr, HTTPAddr: cfg.HTTPAddr, ActorAddr: actorAdv,
			ActorSys: sys.ID, Region: cfg.Region, Role: cfg.Role, Version: Version, Features: announcedFeatures(cfg.Name),
			Shards: cfg.Shards,
		},
		Logger: log,
	}); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.members.Shutdown() })
	if gateway {
		n.place = cluster.NewGatewayPlacement(cfg.Shards, n.members)
	} else {
		gate.Store(cluster.NewFeatureGate(n.store, n.members))
		if err := cluster.Bootstrap(ctx, n.store, n.members, cfg.Join, cfg.BootstrapExpect, cfg.Replicas, log); err != nil {
			return nil, err
		}
		n.place = cluster.NewLeaderPlacement(n.store, n.members)
	}
	deps := actors.Deps{
		Store: n.store, Shards: cfg.Shards, Sink: n.sink, Observer: n.metrics, Logger: log, System: sys,
		Provider: actors.NewProvider(n.members, cfg.DeadNodeGrace), Placement: n.place,
		NoOwners:  func() bool { return gateway && n.members.AliveCount(false) == 0 },
		ActorAddr: cfg.ActorAddr, ActorAdvertise: cfg.ActorAdvertise,
	}
	if n.sec.tls != nil {
		deps.Credentials = n.sec.tls.Credentials()
	}
	eng, err := actors.NewEngine(actors.Config{
		QueueMax: cfg.QueueMax, BatchMax: cfg.BatchMax, InflightMax: cfg.InflightMax, RequestTimeout: cfg.RequestTimeout, MaxUnflushed: cfg.MaxUnflushed,
		AdmissionMax: cfg.AdmissionMax, ItemCacheTTL: cfg.ItemCacheTTL, RateUser: cfg.RateUser,
	}, deps)
	if err != nil {
		return nil, err
	}
	n.engine = eng
	engine.Store(eng)
	undo = append(undo, func() { eng.Close(context.Background()) })

	if gateway {
		n.rejoin = startRejoin(n.members, cfg.Join, log)
		undo = append(undo, n.rejoin.stop)
	} else if err := n.startCore(cfg, log); err != nil {
		return nil, err
	} else {
		reconciler.Store(n.reconciler)
		undo = append(undo, n.reconciler.Stop, n.flusher.Stop)
	}
	n.registerGauges()
	n.metrics.InitShards(cfg.Shards)
	n.metrics.SetBuildInfo(Version, cfg.Role)

	hc := httpapi.DefaultConfig()
	hc.Addr = cfg.HTTPAddr
	hc.AdminToken = n.adminToken
	hc.TrustUserHeader = cfg.UserHeaderTrusted()
	hc.RequestTimeout = cfg.RequestTimeout
	hc.RateNode, hc.RateUser, hc.RateIP, hc.RateAuthFail = cfg.RateNode, cfg.RateUser, cfg.RateIP, cfg.RateAuthFail
	hc.MetricsElsewhere = cfg.MetricsAddr != ""
	hc.TrustedProxies = cfg.TrustedProxies
	if cfg.AuthSecret != "" {
		hc.AuthSecret = []byte(cfg.AuthSecret)
	}
	if n.api, err = httpapi.New(hc, eng, n, n.metrics, log); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if n.metricsSrv, err = n.serveMetrics(cfg.MetricsAddr); err != nil {
			return nil, err
		}
		undo = append(undo, n.metricsSrv.close)
	}
	starting.stop() // the API takes the listener over
	n.sec.start()
	go func() { n.serveErr <- n.api.Serve(n.ln) }()
	log.Info("node started", "name", cfg.Name, "role", cfg.Role, "http", n.ln.Addr().String(), "raft", raftAddr,
		"gossip", cfg.GossipAddr, "actor", eng.ActorAddr(), "shards", cfg.Shards, "orders", sinkName(cfg),
		"trust_user_header", hc.TrustUserHeader)
	if gateway {
		fmt.Fprintf(stdout, "flashstock %s: gateway serving http://%s (%d shards, through the core nodes)\n",
			cfg.Name, n.ln.Addr(), cfg.Shards)
	} else {
		fmt.Fprintf(stdout, "flashstock %s: serving http://%s (raft %s, %d shards, order store %s)\n",
			cfg.Name, n.ln.Addr(), raftAddr, cfg.Shards, sinkName(cfg))
	}
	return n, nil
}

// startCore starts what only a core node runs: the Raft membership
// reconciler and the order flusher.
func (n *Node) startCore(cfg config.Config, log *slog.Logger) (err error) {
	recCfg := cluster.DefaultReconcilerConfig()
	recCfg.Sick = n.store.Sick
	recCfg.Replicas, recCfg.DeadGrace = cfg.Replicas, cfg.DeadNodeGrace
	recCfg.Seeds = cfg.Join
	if n.reconciler, err = cluster.NewReconciler(recCfg, n.store, n.members, n.place, log); err != nil {
		return err
	}
	sources := make([]orders.Source, n.store.Shards())
	for i := range sources {
		sources[i] = n.store.Shard(i)
	}
	fc := orders.DefaultFlusherConfig()
	fc.BatchMax, fc.Interval = cfg.FlushBatch, cfg.FlushInterval
	if n.flusher, err = orders.NewFlusher(fc, n.sink, sources, n.metrics, log); err != nil {
		return err
	}
	n.reconciler.Start()
	n.flusher.Start()
	return nil
}

func (n *Node) registerGauges() {
	n.metrics.GaugeFunc("flashstock_ready", "1 while /readyz answers 200: this node reaches the leader of a shard, its disk is fine and it is not draining.",
		func() float64 {
			if n.Ready() {
				return 1
			}
			return 0
		})
	n.metrics.GaugeFunc("flashstock_item_actors", "Item actors active on this node.",
		func() float64 { return float64(n.engine.Activations()) })
	n.metrics.GaugeFunc("flashstock_purchases_inflight", "This node's purchases in flight (bounded by --admission-max).",
		func() float64 { return float64(n.engine.Inflight()) })
	n.metrics.GaugeFunc("flashstock_circuit_open", "Remote nodes whose circuit breaker is open or half-open.",
		func() float64 {
			open := 0
			for _, st := range n.engine.Breakers() {
				if st != "closed" {
					open++
				}
			}
			return float64(open)
		})
	if n.store != nil {
		n.registerStoreGauges()
	}
}

// registerStoreGauges registers a core node's gauges of its shard groups.
func (n *Node) registerStoreGauges() {
	count := func(f func(*raftstore.Shard) int) func() float64 {
		return func() float64 {
			total := 0
			for i := 0; i < n.store.Shards(); i++ {
				total += f(n.store.Shard(i))
			}
			return float64(total)
		}
	}
	n.metrics.GaugeFunc("flashstock_orders_unflushed", "Confirmed orders not yet in the order store, in shards this node leads.",
		count(func(sh *raftstore.Shard) int {
			if sh.IsLeader() {
				return sh.FSM().PendingCount()
			}
			return 0
		}))
	n.metrics.GaugeFunc("flashstock_shards_led", "Shard groups this node leads.",
		count(func(sh *raftstore.Shard) int {
			if sh.IsLeader() {
				return 1
			}
			return 0
		}))
	snaps := func(f func(raftstore.SnapshotStats) float64, combine func(a, b float64) float64) func() float64 {
		return func() float64 {
			v := 0.0
			for i := 0; i < n.store.Shards(); i++ {
				v = combine(v, f(n.store.Shard(i).FSM().SnapshotStats()))
			}
			return v
		}
	}
	sum := func(a, b float64) float64 { return a + b }
	n.metrics.CounterFunc("flashstock_raft_snapshots_total", "Raft snapshots persisted by this node, all shards.",
		snaps(func(s raftstore.SnapshotStats) float64 { return float64(s.Count) }, sum))
	n.metrics.GaugeFunc("flashstock_raft_snapshot_pause_seconds", "The longest time Apply waited for the last snapshot of a shard (sealing the state).",
		snaps(func(s raftstore.SnapshotStats) float64 { return s.LastSnapshot.Seconds() }, math.Max))
	n.metrics.GaugeFunc("flashstock_raft_snapshot_persist_seconds", "The longest time the last snapshot of a shard took to encode and write (concurrent with Apply).",
		snaps(func(s raftstore.SnapshotStats) float64 { return s.LastPersist.Seconds() }, math.Max))
	n.metrics.GaugeFunc("flashstock_raft_snapshot_bytes", "The size of the last snapshots, all shards.",
		snaps(func(s raftstore.SnapshotStats) float64 { return float64(s.LastBytes) }, sum))
	n.metrics.GaugeFunc("flashstock_raft_dir_bytes", "Bytes on disk under the data dir's raft/ (logs and snapshots).",
		func() float64 { return float64(dirBytes(filepath.Join(n.cfg.DataDir, "raft"))) })
	purchases := func(f func(raftstore.PurchaseStats) uint64) func() float64 {
		return func() float64 {
			total := uint64(0)
			for i := 0; i < n.store.Shards(); i++ {
				total += f(n.store.Shard(i).PurchaseStats())
			}
			return float64(total)
		}
	}
	n.metrics.CounterFunc("flashstock_raft_purchase_entries_total", "Purchase entries this node wrote as a shard leader (purchases per entry: purchases_total over this).",
		purchases(func(s raftstore.PurchaseStats) uint64 { return s.Entries }))
	n.metrics.CounterFunc("flashstock_raft_purchase_entries_multi_item_total", "Of those, entries carrying several items' purchases (the shard's group commit).",
		purchases(func(s raftstore.PurchaseStats) uint64 { return s.MultiItemEntries }))
	n.metrics.CounterFunc("flashstock_raft_entry_purchases_total", "Purchases in the purchase entries this node wrote as a shard leader.",
		purchases(func(s raftstore.PurchaseStats) uint64 { return s.Purchases }))
	n.metrics.GaugeFunc("flashstock_disk_free_bytes", "Free bytes on the data dir's file system, as last read.",
		func() float64 { return float64(n.store.DiskHealth().FreeBytes) })
	n.metrics.GaugeFunc("flashstock_disk_trouble", "1 while the disk is under its reserve or a write failed for want of space lately: purchases refused, node not ready.",
		func() float64 {
			if n.store.DiskTrouble() {
				return 1
			}
			return 0
		})
	n.metrics.GaugeFunc("flashstock_disk_slow", "1 while most of the Raft log's writes of the last 5 s took longer than --slow-disk-write: the node hands its leaderships to voters with faster disks.",
		func() float64 {
			if n.store.DiskHealth().Slow {
				return 1
			}
			return 0
		})
	n.metrics.CounterFunc("flashstock_disk_write_failures_total", "Writes that failed for want of space (log entries, snapshots).",
		func() float64 { return float64(n.store.DiskHealth().WriteFails) })
	n.metrics.CounterFunc("flashstock_raft_snapshot_failures_total", "Snapshots that failed to persist.",
		snaps(func(s raftstore.SnapshotStats) float64 { return float64(s.Failures) }, sum))
	if n.sec.tls != nil {
		n.metrics.GaugeFunc("flashstock_tls_cert_expiry_timestamp_seconds", "When this node's cluster TLS certificate expires (unix seconds).",
			func() float64 { return float64(n.sec.tls.NotAfter().Unix()) })
		n.metrics.CounterFunc("flashstock_tls_handshakes_total", "Mutual TLS handshakes completed on the Raft and actor ports, both directions.",
			func() float64 { return float64(n.sec.tls.Handshakes()) })
	}
	n.metrics.GaugeFunc("flashstock_gossip_keys", "Gossip encryption keys installed (0: gossip is plain text).",
		func() float64 { return float64(n.members.KeyCount()) })
	n.metrics.GaugeFunc("flashstock_members_alive", "Live core members (with a Raft address) as this node sees them.",
		func() float64 { return float64(n.members.AliveCount(false)) })
	n.metrics.GaugeFunc("flashstock_gateways_alive", "Live gateways as this node sees them.",
		func() float64 { return float64(n.members.AliveCount(true)) })
}

// announcedFeatures is what a node tells the others it applies: every
// feature of this version. Tests play a node of an earlier version by
// replacing it.
var announcedFeatures = func(string) uint64 { return uint64(raftstore.Features) }

// ExportRaftMetrics adds hashicorp/raft's own metrics (go-metrics, global
// to the process) to this node's /metrics; one node per process may.
func (n *Node) ExportRaftMetrics() error { return n.metrics.ExportRaftMetrics() }

// HTTPAddr returns the address the API listens on.
func (n *Node) HTTPAddr() string { return n.ln.Addr().String() }

// AdminToken returns the admin bearer token.
func (n *Node) AdminToken() string { return n.adminToken }

// Store returns the node's shard groups.
func (n *Node) Store() *raftstore.Store { return n.store }

// Members returns the node's membership.
func (n *Node) Members() *cluster.Membership { return n.members }

// Engine returns the node's actor engine.
func (n *Node) Engine() *actors.Engine { return n.engine }

// Sink returns the node's order store.
func (n *Node) Sink() orders.Sink { return n.sink }

// Ready reports whether the node can serve shoppers (Readiness.Ready).
func (n *Node) Ready() bool { return n.Readiness().Ready }

// Readiness implements httpapi.Node: each shard is served when this node
// reaches a leader for it, through its own replica (a leader past its
// post-election barrier, or a follower that hears one) or, holding no seat
// in the shard, through gossip (the leaders publish the shards they lead).
func (n *Node) Readiness() httpapi.Readiness {
	r := httpapi.Readiness{All: !n.stopped.Load(), Shards: make([]httpapi.ShardReadiness, n.cfg.Shards)}
	for i := range r.Shards {
		sr := httpapi.ShardReadiness{Shard: i}
		if n.store != nil {
			sh := n.store.Shard(i)
			if sr.Seat = sh.InGroup(); sr.Seat {
				if _, sr.Leader = sh.Leader(); sr.Leader != "" {
					sr.Served = !sh.IsLeader() || sh.Ready()
				}
			}
		}
		// No seat, or a replica that hears no leader (cut off, or removed
		// while it was away and never told: it still thinks it has a seat):
		// purchases go where gossip says, as from a gateway (ShardOwner).
		if id := n.place.LeaderOf(i); sr.Leader == "" && id != "" && id != n.members.Self().ID {
			m, ok := n.members.Member(id)
			sr.Leader, sr.Served = id, ok && m.State == cluster.StateAlive
		}
		r.Shards[i] = sr
		r.Ready = r.Ready || sr.Served
		r.All = r.All && sr.Served
	}
	// A full disk, or a gateway that would place items by another shard
	// count than the core nodes', serves nothing.
	refuse := n.draining.Load() || (n.store != nil && n.store.DiskTrouble()) || (n.store == nil && n.shardMismatch() != "")
	r.Ready = r.Ready && !n.stopped.Load() && !refuse
	r.All = r.All && !refuse
	return r
}

// shardMismatch names a live core node whose shard count differs from
// this gateway's --shards, or returns "": items are placed by hash mod the
// shard count, so such a gateway would send items to the wrong shards.
// A change is logged once: an operator must not have to read /readyz's
// body to learn why a gateway stays unready.
func (n *Node) shardMismatch() string {
	why := ""
	for _, m := range n.members.Alive() {
		if m.RaftAddr != "" && m.Shards != 0 && m.Shards != n.cfg.Shards {
			why = fmt.Sprintf("%s has %d shards, this gateway --shards %d", m.ID, m.Shards, n.cfg.Shards)
			break
		}
	}
	if was := n.mismatch.Swap(&why); was == nil || *was != why {
		switch {
		case why != "":
			n.log.Error("gateway unready: its shard count differs from the core nodes'; restart it with their --shards", "why", why)
		case was != nil:
			n.log.Info("gateway shard count agrees with the core nodes again")
		}
	}
	return why
}

// BeginDrain makes the node answer unready (so that load balancers stop
// sending to it) while it goes on serving what still comes; Shutdown then
// drains it.
func (n *Node) BeginDrain() { n.draining.Store(true) }

// Wait blocks until ctx ends or the HTTP server fails.
func (n *Node) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-n.serveErr:
		return err
	}
}

// Shutdown drains the node:
//  1. the HTTP server stops accepting and waits for in-flight requests;
//  2. the flusher writes the confirmed orders of the shards this node
//     leads to the order store;
//  3. this node hands its shard leaderships to other voters, so that the
//     cluster keeps selling without an election timeout;
//  4. the engine answers purchases still queued in item actors (503, not
//     applied) and waits for Raft entries in flight (their shoppers get the
//     real outcome);
//  5. Raft shuts down cleanly, then the order store and gossip.
//
// A kill -9 skips all of this and loses nothing confirmed: confirmed orders
// are in the Raft log on a quorum of disks; the next leader flushes what
// the order store lacks.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.stopped.Swap(true) {
		return nil
	}
	n.log.Info("draining")
	errs := []error{n.api.Shutdown(ctx)}
	n.sec.close()
	n.metricsSrv.close()
	if n.store == nil { // a gateway: nothing of its own to flush or hand over
		n.rejoin.stop()
		errs = append(errs, n.engine.Close(ctx))
	} else {
		n.reconciler.Stop()
		n.flusher.Stop()
		errs = append(errs, n.flusher.Drain(ctx))
		n.transferLeaderships()
		errs = append(errs, n.engine.Close(ctx), n.store.Close(), n.sink.Close())
	}
	if err := n.members.Leave(2 * time.Second); err != nil {
		// Peers that are gone cannot hear the goodbye; they will time
		// this node out instead. Not a failed drain.
		n.log.Warn("leave gossip", "err", err)
	}
	err := errors.Join(errs...)
	if err != nil {
		n.log.Error("drain", "err", err)
	} else {
		n.log.Info("stopped")
	}
	return err
}

// Kill stops the node the way a crash would, for in-process tests: no
// drain, no leadership transfer, no goodbye to gossip.
func (n *Node) Kill() {
	if n.stopped.Swap(true) {
		return
	}
	n.ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = n.api.Shutdown(ctx)
	n.sec.close()
	n.metricsSrv.close()
	_ = n.members.Shutdown()
	if n.store == nil {
		n.rejoin.stop()
		_ = n.engine.Close(ctx)
		return
	}
	n.reconciler.Stop()
	n.flusher.Stop()
	_ = n.store.Close()
	_ = n.engine.Close(ctx)
	_ = n.sink.Close()
}

func (n *Node) transferLeaderships() {
	if len(n.members.Alive()) < 2 {
		return
	}
	for i := 0; i < n.store.Shards(); i++ {
		sh := n.store.Shard(i)
		if !sh.IsLeader() {
			continue
		}
		if err := sh.TransferLeadership("", ""); err != nil {
			n.log.Warn("transfer leadership on shutdown", "shard", i, "err", err)
		}
	}
}

// dirBytes returns the bytes of the files under dir (0 where it cannot
// read them): a few dozen files per shard, cheap enough for a scrape.
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func sinkName(cfg config.Config) string {
	if cfg.Gateway() {
		return "none (gateway)"
	}
	if len(cfg.OrdersDSN) > 0 {
		return fmt.Sprintf("mysql x%d", len(cfg.OrdersDSN))
	}
	return "sqlite " + filepath.Join(cfg.DataDir, "orders.db")
}

// openSink opens the order store: MySQL when DSNs are given, else the
// embedded SQLite database in the data dir.
func openSink(ctx context.Context, cfg config.Config, mysql OpenSink) (orders.Sink, error) {
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if len(cfg.OrdersDSN) > 0 {
		if mysql == nil {
			return nil, errors.New("--orders-dsn: this binary has no MySQL order store")
		}
		return mysql(octx, cfg)
	}
	return sqlite.Open(octx, filepath.Join(cfg.DataDir, "orders.db"))
}

// loadAdminToken returns --admin-token, or the token stored in the data
// dir, creating one on first start and saying where it is.
func loadAdminToken(cfg config.Config, stdout io.Writer) (string, error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	path := filepath.Join(cfg.DataDir, "admin-token")
	b, err := os.ReadFile(path)
	if err == nil {
		fmt.Fprintf(stdout, "admin token: in %s\n", path)
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	fmt.Fprintf(stdout, "admin token: generated, in %s\n", path)
	return tok, nil
}
