package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
)

// serve runs a node until ctx ends, then drains it:
//  1. the HTTP server stops accepting and waits for in-flight requests;
//  2. the engine answers purchases still queued in item actors (503, not
//     applied) and waits for Raft entries in flight (their shoppers get the
//     real outcome);
//  3. the flusher writes every confirmed order this node leads to the order
//     store;
//  4. Raft shuts down cleanly, then the order store and gossip.
//
// A kill -9 skips all of this and loses nothing confirmed: confirmed orders
// are in the Raft log on disk, and the next start replays them and flushes
// what the order store lacks.
func serve(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg.LogLevel, stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	adminToken, err := loadAdminToken(cfg, stdout)
	if err != nil {
		return err
	}
	m := metrics.New()

	sink, err := openSink(ctx, cfg)
	if err != nil {
		return err
	}
	defer sink.Close()

	var engine atomic.Pointer[actors.Engine]
	rc := raftstore.DefaultConfig()
	rc.NodeID = cfg.Name
	rc.DataDir = cfg.DataDir
	rc.BindAddr = cfg.RaftAddr
	rc.AdvertiseAddr = cfg.RaftAdvertise
	rc.Shards = cfg.Shards
	rc.Bootstrap = cfg.BootstrapExpect == 1
	rc.FSM = raftstore.FSMConfig{DedupRetention: cfg.DedupRetention, DedupMax: cfg.DedupMax}
	rc.Logger = log
	rc.OnLeadership = func(shard int, leader bool) {
		if e := engine.Load(); e != nil {
			e.OnLeadership(shard, leader)
		}
	}
	store, err := raftstore.Open(rc)
	if err != nil {
		return err
	}
	storeOpen := true
	defer func() {
		if storeOpen {
			store.Close()
		}
	}()

	members, err := cluster.Start(cluster.Config{
		BindAddr: cfg.GossipAddr,
		Join:     cfg.Join,
		Meta: cluster.Meta{
			ID: cfg.Name, RaftAddr: store.Addr(), HTTPAddr: cfg.HTTPAddr, ActorAddr: cfg.ActorAddr,
			Region: cfg.Region, Role: "node", Version: version,
		},
		Logger: log,
	})
	if err != nil {
		return err
	}
	defer members.Leave(2 * time.Second)

	ec := actors.Config{QueueMax: cfg.QueueMax, BatchMax: cfg.BatchMax, RequestTimeout: cfg.RequestTimeout, MaxUnflushed: cfg.MaxUnflushed}
	eng, err := actors.NewEngine(ec, actors.Deps{Store: store, Sink: sink, Observer: m, Logger: log})
	if err != nil {
		return err
	}
	engine.Store(eng)

	sources := make([]orders.Source, store.Shards())
	for i := range sources {
		sources[i] = store.Shard(i)
	}
	fc := orders.DefaultFlusherConfig()
	fc.BatchMax, fc.Interval = cfg.FlushBatch, cfg.FlushInterval
	flusher := orders.NewFlusher(fc, sink, sources, m, log)
	flusher.Start()

	m.GaugeFunc("flashstock_orders_unflushed", "Confirmed orders not yet in the order store, in shards this node leads.", func() float64 {
		n := 0
		for i := 0; i < store.Shards(); i++ {
			if sh := store.Shard(i); sh.IsLeader() {
				n += sh.FSM().PendingCount()
			}
		}
		return float64(n)
	})
	m.GaugeFunc("flashstock_shards_led", "Shard groups this node leads.", func() float64 {
		n := 0
		for i := 0; i < store.Shards(); i++ {
			if store.Shard(i).IsLeader() {
				n++
			}
		}
		return float64(n)
	})

	node := &nodeView{cfg: cfg, store: store, members: members}
	hc := httpapi.DefaultConfig()
	hc.Addr = cfg.HTTPAddr
	hc.AdminToken = adminToken
	hc.TrustUserHeader = cfg.UserHeaderTrusted()
	hc.RequestTimeout = cfg.RequestTimeout
	if cfg.AuthSecret != "" {
		hc.AuthSecret = []byte(cfg.AuthSecret)
	}
	api, err := httpapi.New(hc, eng, node, m, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(ln) }()
	log.Info("node started", "name", cfg.Name, "http", ln.Addr().String(), "raft", store.Addr(),
		"gossip", cfg.GossipAddr, "shards", cfg.Shards, "orders", sinkName(cfg), "trust_user_header", hc.TrustUserHeader)
	fmt.Fprintf(stdout, "flashstock %s: serving http://%s (raft %s, %d shards, order store %s)\n",
		cfg.Name, ln.Addr(), store.Addr(), cfg.Shards, sinkName(cfg))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
	}

	log.Info("draining")
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	var errs []error
	errs = append(errs, runErr, api.Shutdown(dctx))
	errs = append(errs, eng.Close(dctx))
	flusher.Stop()
	errs = append(errs, flusher.Drain(dctx))
	storeOpen = false
	errs = append(errs, store.Close())
	err = errors.Join(errs...)
	if err != nil {
		log.Error("drain", "err", err)
	} else {
		log.Info("stopped")
	}
	return err
}

func newLogger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func sinkName(cfg config.Config) string {
	if len(cfg.OrdersDSN) > 0 {
		return fmt.Sprintf("mysql x%d", len(cfg.OrdersDSN))
	}
	return "sqlite " + filepath.Join(cfg.DataDir, "orders.db")
}

// openSink opens the order store: MySQL when DSNs are given, else the
// embedded SQLite database in the data dir.
func openSink(ctx context.Context, cfg config.Config) (orders.Sink, error) {
	octx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if len(cfg.OrdersDSN) > 0 {
		return openMySQL(octx, cfg)
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
