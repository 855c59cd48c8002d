package raftstoretest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/raftstore"
)

// Cluster is n stores, each a separate node with its own data dir and its
// own Raft listener on 127.0.0.1, whose shard groups all have the n nodes
// as voters. Partition cuts it in two through each node's mux (Block), as a
// network would. Its methods fail the test given to NewCluster; call them
// from the test's goroutine.
type Cluster struct {
	tb testing.TB
	// Stores are the nodes, node-1 first; every one is live and is closed
	// at cleanup.
	Stores []*raftstore.Store

	far map[*raftstore.Store]bool // the far side of the partition, nil when healed
}

// clusterTimeout bounds the cluster's waits: for leaders and for replicas
// to agree. Generous, for a starved machine running -race.
const clusterTimeout = 30 * time.Second

// NewCluster starts n nodes with shards groups each, bootstraps every group
// with all n as voters and waits until every shard has a leader that has
// committed its barrier. The nodes log to the test, each with its node ID.
func NewCluster(tb testing.TB, n, shards int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	raftLog := testutil.LogWriter(tb)
	var voters []raftstore.Server
	for i := 1; i <= n; i++ {
		id := "node-" + strconv.Itoa(i)
		cfg := StoreConfig(tb.TempDir(), shards)
		cfg.NodeID = id
		cfg.Bootstrap = false
		cfg.Logger = testutil.Logger(tb).With("node", id)
		cfg.RaftLog = prefixWriter{prefix: id + " ", w: raftLog}
		s, err := raftstore.Open(cfg)
		if err != nil {
			tb.Fatalf("raftstore.Open(%s): %v", id, err)
		}
		tb.Cleanup(func() { _ = s.Close() })
		c.Stores = append(c.Stores, s)
		voters = append(voters, raftstore.Server{ID: id, Addr: s.Addr(), Voter: true})
	}
	for _, s := range c.Stores {
		for sh := 0; sh < shards; sh++ {
			if err := s.Shard(sh).Bootstrap(voters); err != nil {
				tb.Fatalf("Bootstrap shard %d: %v", sh, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for i, s := range c.Stores {
		if err := s.WaitReady(ctx); err != nil {
			tb.Fatalf("node-%d WaitReady: %v", i+1, err)
		}
	}
	return c
}

// Partition cuts the cluster in two: the far stores can no longer reach
// the others over Raft, nor the others them, in either direction; each
// side still reaches itself. A new Partition replaces the previous one.
func (c *Cluster) Partition(far ...*raftstore.Store) {
	c.tb.Helper()
	isFar := make(map[*raftstore.Store]bool, len(far))
	for _, s := range far {
		if c.index(s) < 0 {
			c.tb.Fatalf("Partition: a store not of this cluster")
		}
		isFar[s] = true
	}
	var farAddrs, nearAddrs []string
	for _, s := range c.Stores {
		if isFar[s] {
			farAddrs = append(farAddrs, s.Addr())
		} else {
			nearAddrs = append(nearAddrs, s.Addr())
		}
	}
	for _, s := range c.Stores {
		if isFar[s] {
			s.Block(nearAddrs)
		} else {
			s.Block(farAddrs)
		}
	}
	c.far = isFar
}

// Heal undoes Partition: every store reaches every other again.
func (c *Cluster) Heal() {
	for _, s := range c.Stores {
		s.Block(nil)
	}
	c.far = nil
}

// majority returns the stores on the side of the partition that holds a
// majority of the cluster (all of them when it is healed), or nil.
func (c *Cluster) majority() []*raftstore.Store {
	var near, far []*raftstore.Store
	for _, s := range c.Stores {
		if c.far[s] {
			far = append(far, s)
		} else {
			near = append(near, s)
		}
	}
	switch {
	case 2*len(near) > len(c.Stores):
		return near
	case 2*len(far) > len(c.Stores):
		return far
	}
	return nil
}

// Leader waits until exactly one store on the majority side of the
// partition (every store, when healed) leads shard and has committed its
// post-election barrier, and returns it. A leader cut off on the minority
// side may still believe it leads for a moment; it is not returned.
func (c *Cluster) Leader(shard int) *raftstore.Store {
	c.tb.Helper()
	side := c.majority()
	if side == nil {
		c.tb.Fatalf("Leader(%d): no side of the partition holds a majority", shard)
	}
	var leader *raftstore.Store
	ok := testutil.Eventually(clusterTimeout, func() bool {
		leader = nil
		for _, s := range side {
			if !s.Shard(shard).Ready() {
				continue
			}
			if leader != nil {
				return false // two leaders in different terms, for an instant
			}
			leader = s
		}
		return leader != nil
	})
	if !ok {
		c.tb.Fatalf("Leader(%d): no single leader on the majority side within %v", shard, clusterTimeout)
	}
	return leader
}

// EnsureSame waits until every store's replica of shard holds the same
// state (raftstore.FSM.Dump: items, buyers, request IDs, the outbox and
// its watermark, orders awaiting payment, command time, the applied
// index), and fails tb if they still differ after the cluster's timeout.
// A replica cut off by a partition cannot catch up: heal first.
func (c *Cluster) EnsureSame(tb testing.TB, shard int) {
	tb.Helper()
	var dumps [][]byte
	same := func() bool {
		dumps = dumps[:0]
		for i, s := range c.Stores {
			d, err := s.Shard(shard).FSM().Dump()
			if err != nil {
				tb.Fatalf("node-%d shard %d Dump: %v", i+1, shard, err)
			}
			dumps = append(dumps, d)
		}
		for _, d := range dumps[1:] {
			if !bytes.Equal(d, dumps[0]) {
				return false
			}
		}
		return true
	}
	if testutil.Eventually(clusterTimeout, same) {
		return
	}
	var b strings.Builder
	for i, s := range c.Stores {
		st := s.Shard(shard).FSM().Stats()
		fmt.Fprintf(&b, "\n  node-%d: same as node-1 %t, %+v", i+1, bytes.Equal(dumps[i], dumps[0]), st)
	}
	tb.Fatalf("shard %d: replicas still differ after %v:%s", shard, clusterTimeout, b.String())
}

// prefixWriter names the node in front of each of its Raft log lines
// (hclog writes a line at a time).
type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *Cluster) index(s *raftstore.Store) int {
	for i, x := range c.Stores {
		if x == s {
			return i
		}
	}
	return -1
}
