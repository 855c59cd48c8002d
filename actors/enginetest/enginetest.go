// Package enginetest starts the single-node engine stack for tests: Raft
// shard groups on disk in a temp dir and on 127.0.0.1:0, the item-actor
// engine, the embedded SQLite order store and the flusher, wired the way
// node.Start wires them (without gossip and HTTP). Everything it starts is
// stopped by tb.Cleanup.
package enginetest

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/sqlite"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
	"github.com/flashstock/flashstock/sale"
)

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

// Node is a single-node stack, wired as node.Start wires one.
type Node struct {
	Dir     string
	Store   *raftstore.Store
	Engine  *actors.Engine
	Sink    *sqlite.Sink
	Flusher *orders.Flusher // nil with NodeOptions.NoFlusher
	Metrics *metrics.Metrics

	closeOnce sync.Once
}

// NewNode starts a node and stops it at cleanup (see Close). The node logs
// to the test.
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
	log := testutil.Logger(tb)
	n := &Node{Dir: opts.Dir, Metrics: metrics.New()}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sink, err := sqlite.Open(ctx, filepath.Join(opts.Dir, "orders.db"))
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	n.Sink = sink

	var engine atomic.Pointer[actors.Engine]
	rc := raftstoretest.StoreConfig(opts.Dir, opts.Shards)
	rc.Logger, rc.RaftLog = log, testutil.LogWriter(tb)
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

	rctx, rcancel := context.WithTimeout(context.Background(), raftstoretest.ReadyTimeout)
	defer rcancel()
	if err := store.WaitReady(rctx); err != nil {
		tb.Fatalf("WaitReady: %v", err)
	}
	return n
}

// Close drains and stops the node: engine, flusher (stop, then drain),
// Raft, order store. It is idempotent; cleanup calls it too.
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
