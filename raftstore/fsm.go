package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// FSMConfig bounds the state machine's memory.
type FSMConfig struct {
	// DedupRetention is how long a request ID is remembered, in command
	// time. DedupMax caps how many are remembered; the oldest go first.
	DedupRetention time.Duration
	DedupMax       int
	// OrderRetention is how long a flushed order stays readable from the
	// FSM, in command time, at most OrderRetentionMax per shard; older
	// orders are read from the order store.
	OrderRetention    time.Duration
	OrderRetentionMax int
}

// FSM is the replicated state of one shard: items, per-user purchases,
// idempotency keys, and confirmed orders not yet in the order store. It is
// the source of truth for stock; every other copy is a cache.
//
// Apply is deterministic: it reads no clock and no randomness (time is the
// leader's stamp in the command) and produces no side effects. Reads from
// other goroutines take mu for reading.
//
// This file holds the state and the dispatch; each command's effect is in
// the file of its topic (items.go, purchase.go, outbox.go, payment.go),
// reads are in reads.go and snapshots in snapshot.go.
type FSM struct {
	shard int
	cfg   FSMConfig

	applied atomic.Uint64 // last applied log index

	mu struct {
		sync.RWMutex
		items      map[string]*sale.Item
		bought     map[userItem]int32
		dedup      map[userRequest]dedupEntry
		dedupQueue expiry[userRequest]
		// The outbox: changes not yet in the order store (new orders,
		// status changes), ascending Seq. pendingSeq maps an order ID to
		// the Seq of its latest entry.
		pending     []orders.Order
		pendingSeq  map[uint64]uint64
		changes     map[uint64]bool // Seqs of entries that change an order already stored
		nextSeq     uint64
		flushedUpTo uint64 // a Seq
		lastStamp   int64

		// Payment window: unpaid orders, their deadlines (a min-heap), and
		// recently settled orders (paid or expired), remembered like
		// request IDs so that a late pay gets a definite answer.
		awaiting     map[uint64]orders.Order
		deadlines    deadlineHeap
		settled      map[uint64]orders.Order
		settledQueue expiry[uint64]

		// Flushed orders kept readable for OrderRetention.
		recent      map[uint64]recentOrder
		recentQueue expiry[uint64]
	}
}

// NewFSM returns an empty state machine for shard.
func NewFSM(shard int, cfg FSMConfig) *FSM {
	f := &FSM{shard: shard, cfg: cfg}
	f.resetLocked()
	return f
}

func (f *FSM) resetLocked() {
	f.mu.items = make(map[string]*sale.Item)
	f.mu.bought = make(map[userItem]int32)
	f.mu.dedup = make(map[userRequest]dedupEntry)
	f.mu.dedupQueue.reset()
	f.mu.pending = nil
	f.mu.pendingSeq = make(map[uint64]uint64)
	f.mu.changes = make(map[uint64]bool)
	f.mu.nextSeq = 0
	f.mu.flushedUpTo = 0
	f.mu.lastStamp = 0
	f.mu.awaiting = make(map[uint64]orders.Order)
	f.mu.deadlines = nil
	f.mu.settled = make(map[uint64]orders.Order)
	f.mu.settledQueue.reset()
	f.mu.recent = make(map[uint64]recentOrder)
	f.mu.recentQueue.reset()
}

// Apply applies one committed log entry. An entry that does not decode means
// the replicas would drift, so it panics.
func (f *FSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftstore: shard %d index %d: %v", f.shard, l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c := cmd.(type) {
	case *CreateItem:
		f.advanceLocked(c.Stamp)
		return f.createItemLocked(c)
	case *PurchaseBatch:
		now := f.advanceLocked(c.Stamp)
		return f.purchaseLocked(l.Index, now, c)
	case *MarkFlushed:
		f.advanceLocked(c.Stamp)
		f.markFlushedLocked(c.UpTo)
		return nil
	case *Restock:
		f.advanceLocked(c.Stamp)
		return f.restockLocked(c)
	case *Pay:
		now := f.advanceLocked(c.Stamp)
		return f.payLocked(c, now)
	case *Expire:
		now := f.advanceLocked(c.Stamp)
		return f.expireLocked(now)
	case *SetPaused:
		f.advanceLocked(c.Stamp)
		return f.setPausedLocked(c)
	}
	panic(fmt.Sprintf("raftstore: shard %d index %d: unhandled command %T", f.shard, l.Index, cmd))
}

// advanceLocked moves command time forward and expires old request IDs.
// Time never goes backwards, even if a new leader's clock is behind.
func (f *FSM) advanceLocked(stamp int64) int64 {
	if stamp > f.mu.lastStamp {
		f.mu.lastStamp = stamp
	}
	now := f.mu.lastStamp
	f.mu.dedupQueue.trim(now, func() bool { return len(f.mu.dedup) > f.cfg.DedupMax },
		func(k userRequest, exp int64) {
			if e, ok := f.mu.dedup[k]; ok && e.expires == exp {
				delete(f.mu.dedup, k)
			}
		})
	f.mu.settledQueue.trim(now, func() bool { return len(f.mu.settled) > f.cfg.DedupMax },
		func(id uint64, _ int64) { delete(f.mu.settled, id) }) // each order settles once
	f.mu.recentQueue.trim(now, func() bool { return len(f.mu.recent) > f.cfg.OrderRetentionMax },
		func(id uint64, exp int64) {
			if e, ok := f.mu.recent[id]; ok && e.expires == exp {
				delete(f.mu.recent, id)
			}
		})
	return now
}
