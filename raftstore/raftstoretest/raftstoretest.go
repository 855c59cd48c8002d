// Package raftstoretest holds the test harnesses for raftstore: the
// loopback preset of its Config, single-node stores in a temp dir, and
// Cluster, several stores on real TCP on 127.0.0.1 bootstrapped together,
// with network partitions (through the Raft mux's Block hook), the shard
// leader and a check that every replica holds the same state (after
// hashicorp/raft's testing.go). Everything it starts is stopped by
// tb.Cleanup.
package raftstoretest

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/raftstore"
)

// StoreConfig returns the loopback preset of raftstore.Config: one node that
// bootstraps itself, its data under dir, Raft on 127.0.0.1:0 and short
// timeouts so that a group elects itself in well under a second. It logs
// nothing; NewStore and NewCluster log to the test.
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
	c.DiskReserve = 1 << 20        // a CI machine's disk may be nearly full
	c.ApplyTimeout = 5 * time.Second
	c.Logger = slog.New(slog.DiscardHandler)
	c.RaftLog = io.Discard
	return c
}

// ReadyTimeout bounds how long a store may take to elect its leaders.
const ReadyTimeout = 15 * time.Second

// OpenStore opens a store with cfg, waits until every shard has a leader and
// closes it at cleanup.
func OpenStore(tb testing.TB, cfg raftstore.Config) *raftstore.Store {
	tb.Helper()
	s, err := raftstore.Open(cfg)
	if err != nil {
		tb.Fatalf("raftstore.Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		tb.Fatalf("WaitReady: %v", err)
	}
	return s
}

// NewStore returns a started single-node store with shards groups in a
// fresh temp dir, logging to the test.
func NewStore(tb testing.TB, shards int) *raftstore.Store {
	tb.Helper()
	cfg := StoreConfig(tb.TempDir(), shards)
	cfg.Logger, cfg.RaftLog = testutil.Logger(tb), testutil.LogWriter(tb)
	return OpenStore(tb, cfg)
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
