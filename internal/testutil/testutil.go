// Package testutil holds the test harnesses that several packages share:
// bounded waits instead of sleeps, and a single-node Flashstock stack (Raft
// shard groups on disk in a temp dir and on 127.0.0.1:0, the item-actor
// engine, the embedded SQLite order store and the flusher) wired the way
// cmd/node wires it. Everything it starts is stopped by tb.Cleanup.
package testutil

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// WaitFor polls cond until it returns true, and fails the test if it does
// not within timeout. Use it instead of sleeping.
func WaitFor(tb testing.TB, timeout time.Duration, cond func() bool) {
	tb.Helper()
	if !Eventually(timeout, cond) {
		tb.Fatalf("condition not met within %v", timeout)
	}
}

// Eventually polls cond until it returns true or timeout passes, and
// reports whether it became true.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// Logger returns a logger that discards everything.
func Logger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// StoreConfig returns the loopback preset of raftstore.Config: one node that
// bootstraps itself, its data under dir, Raft on 127.0.0.1:0 and short
// timeouts so that a group elects itself in well under a second.
func StoreConfig(dir string, shards int) raftstore.Config {
	c := raftstore.DefaultConfig()
	c.NodeID = "node-1"
	c.DataDir = dir
	c.BindAddr = "127.0.0.1:0"
	c.Shards = shards
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotInterval = time.Hour // tests take snapshots explicitly
	c.ApplyTimeout = 5 * time.Second
	c.Logger = Logger()
	c.RaftLog = io.Discard
	return c
}

// readyTimeout bounds how long a single-node store may take to elect itself.
const readyTimeout = 15 * time.Second

// OpenStore opens a store with cfg, waits until every shard has a leader and
// closes it at cleanup.
func OpenStore(tb testing.TB, cfg raftstore.Config) *raftstore.Store {
	tb.Helper()
	s, err := raftstore.Open(cfg)
	if err != nil {
		tb.Fatalf("raftstore.Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		tb.Fatalf("WaitReady: %v", err)
	}
	return s
}

// NewStore returns a started single-node store with shards groups in a
// fresh temp dir.
func NewStore(tb testing.TB, shards int) *raftstore.Store {
	tb.Helper()
	return OpenStore(tb, StoreConfig(tb.TempDir(), shards))
}

// NodeOptions configure NewNode. Zero values take the defaults.
type NodeOptions struct {
	Dir    string         // data dir; "" means a fresh tb.TempDir()
	Shards int            // 0 means 2
	Engine *actors.Config // nil means actors.DefaultConfig()
	FSM    *raftstore.FSMConfig
	Now    func() time.Time // the engine's and the leader's clock; nil means time.Now

	// NoFlusher leaves confirmed orders in Raft: no flusher is started.
	NoFlusher bool
}

// Node is a single-node stack, wired as cmd/node/serve.go wires it.
type Node struct {
	Dir     string
	Store   *raftstore.Store
	Engine  *actors.Engine
	Sink    *sqlite.Sink
	Flusher *orders.Flusher // nil with NodeOptions.NoFlusher
	Metrics *metrics.Metrics

	closeOnce sync.Once
}

// NewNode starts a node and stops it at cleanup, in serve.go's drain order:
// engine, flusher (stop, then drain), Raft, order store.
func NewNode(tb testing.TB, opts NodeOptions) *Node {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	if opts.Shards == 0 {
		opts.Shards = 2
	}
	ec := actors.DefaultConfig()
	if opts.Engine != nil {
		ec = *opts.Engine
	}
	log := Logger()
	n := &Node{Dir: opts.Dir, Metrics: metrics.New()}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sink, err := sqlite.Open(ctx, filepath.Join(opts.Dir, "orders.db"))
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	n.Sink = sink

	var engine atomic.Pointer[actors.Engine]
	rc := StoreConfig(opts.Dir, opts.Shards)
	if opts.FSM != nil {
		rc.FSM = *opts.FSM
	}
	if opts.Now != nil {
		rc.Now = opts.Now
	}
	rc.OnLeadership = func(shard int, leader bool) {
		if e := engine.Load(); e != nil {
			e.OnLeadership(shard, leader)
		}
	}
	store, err := raftstore.Open(rc)
	if err != nil {
		sink.Close()
		tb.Fatalf("raftstore.Open: %v", err)
	}
	n.Store = store

	eng, err := actors.NewEngine(ec, actors.Deps{Store: store, Sink: sink, Observer: n.Metrics, Logger: log, Now: opts.Now})
	if err != nil {
		store.Close()
		sink.Close()
		tb.Fatalf("actors.NewEngine: %v", err)
	}
	engine.Store(eng)
	n.Engine = eng

	if !opts.NoFlusher {
		sources := make([]orders.Source, store.Shards())
		for i := range sources {
			sources[i] = store.Shard(i)
		}
		fc := orders.DefaultFlusherConfig()
		fc.Interval = 10 * time.Millisecond
		fc.BackoffMin = 10 * time.Millisecond
		fc.BackoffMax = 100 * time.Millisecond
		f, err := orders.NewFlusher(fc, sink, sources, n.Metrics, log)
		if err != nil {
			tb.Fatalf("orders.NewFlusher: %v", err)
		}
		n.Flusher = f
		n.Flusher.Start()
	}
	tb.Cleanup(func() { n.Close(tb) })

	rctx, rcancel := context.WithTimeout(context.Background(), readyTimeout)
	defer rcancel()
	if err := store.WaitReady(rctx); err != nil {
		tb.Fatalf("WaitReady: %v", err)
	}
	return n
}

// Close drains and stops the node. It is idempotent; cleanup calls it too.
func (n *Node) Close(tb testing.TB) {
	tb.Helper()
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Engine.Close(ctx); err != nil {
			tb.Errorf("Engine.Close: %v", err)
		}
		if n.Flusher != nil {
			n.Flusher.Stop()
			if err := n.Flusher.Drain(ctx); err != nil {
				tb.Errorf("Flusher.Drain: %v", err)
			}
		}
		if err := n.Store.Close(); err != nil {
			tb.Errorf("Store.Close: %v", err)
		}
		if err := n.Sink.Close(); err != nil {
			tb.Errorf("Sink.Close: %v", err)
		}
	})
}

// ShardOf returns the shard that owns itemID.
func (n *Node) ShardOf(itemID string) *raftstore.Shard {
	return n.Store.Shard(n.Store.ShardFor(itemID))
}

// Pending returns the confirmed orders not yet flushed, over all shards.
func (n *Node) Pending() int {
	total := 0
	for i := 0; i < n.Store.Shards(); i++ {
		total += n.Store.Shard(i).FSM().PendingCount()
	}
	return total
}

// CreateItem creates an item through the engine and fails the test on error.
func (n *Node) CreateItem(tb testing.TB, c sale.Item) sale.Item {
	tb.Helper()
	it, err := n.Engine.CreateItem(context.Background(), c)
	if err != nil {
		tb.Fatalf("CreateItem(%q) = %v; want nil", c.ID, err)
	}
	return it
}

// ItemIDForShard returns an item ID with the given prefix that hashes to
// shard out of shards.
func ItemIDForShard(prefix string, shard, shards int) string {
	for i := 0; ; i++ {
		id := prefix + "-" + strconv.Itoa(i)
		if raftstore.ShardFor(id, shards) == shard {
			return id
		}
	}
}

// FreeAddr returns a 127.0.0.1 address whose port is free for TCP and UDP
// (gossip uses both). Ports come from 20000-31999, below Linux's ephemeral
// range (32768 and up), so that a port picked here is not taken by some
// outgoing connection before the test binds it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return addr
	}
	tb.Fatal("no free port in 20000-31999")
	return ""
}
