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
// The big memories (buyers, request IDs, orders by ID) are layered maps
// (layered.go): a snapshot seals them in O(1), so Snapshot holds Apply for
// microseconds whatever the state's size, and Persist encodes the sealed
// view while Apply goes on.
//
// This file holds the state and the dispatch; each command's effect is in
// the file of its topic (items.go, purchase.go, outbox.go, payment.go),
// reads are in reads.go and snapshots in snapshot.go.
type FSM struct {
	shard int
	cfg   FSMConfig

	applied      atomic.Uint64 // last applied log index
	appliedBytes atomic.Uint64 // bytes of commands applied since start
	snapBytes    atomic.Uint64 // appliedBytes at the last snapshot
	snaps        snapStats
	// onWriteError hears of writes that failed (a snapshot's); the shard
	// sets it before Raft starts.
	onWriteError func(error)

	mu struct {
		sync.RWMutex
		state
	}
}

// state is everything Apply decides from. Restore builds a new one and
// swaps it in under the lock.
type state struct {
	items map[string]*sale.Item
	// bought is the units each buyer holds of each item (the per-user
	// limit), by buyerKey: a row exists only while the buyer holds units.
	bought *layered[fingerprint, int32]
	// dedup remembers each request ID's order, by requestKey, until its
	// expiry in command time or until DedupMax newer ones push it out
	// (dedupQueue is their FIFO).
	dedup      *layered[fingerprint, dedupEntry]
	dedupQueue expiry[fingerprint]

	// The outbox: changes not yet in the order store (new orders, status
	// changes), ascending Seq, appended and never changed in place, so a
	// snapshot holds a slice of it. pending[pendingHead:] is live;
	// pendingSeq maps an order ID to the Seq of its latest entry, and
	// pendingStatus the status an order changed to while its entry waited.
	pending       []outboxEntry
	pendingHead   int
	pendingSeq    *layered[uint64, uint64]
	pendingStatus *layered[uint64, orderStatus]
	nextSeq       uint64
	flushedUpTo   uint64 // a Seq
	lastStamp     int64
	// appendChanges is set by CmdOutboxAppend: a change of an order still
	// waiting gets an entry of its own rather than pendingStatus.
	appendChanges bool

	// Payment window: unpaid orders and their deadlines (a min-heap,
	// rebuilt from awaiting on restore), and recently settled orders (paid
	// or expired), remembered like request IDs so that a late pay gets a
	// definite answer.
	awaiting     *layered[uint64, orders.Order]
	deadlines    deadlineHeap
	settled      *layered[uint64, orders.Order]
	settledQueue expiry[uint64]

	// Flushed orders kept readable for OrderRetention.
	recent      *layered[uint64, recentOrder]
	recentQueue expiry[uint64]
}

func newState() state {
	return state{
		items:         make(map[string]*sale.Item),
		bought:        newLayered[fingerprint, int32](),
		dedup:         newLayered[fingerprint, dedupEntry](),
		pendingSeq:    newLayered[uint64, uint64](),
		pendingStatus: newLayered[uint64, orderStatus](),
		awaiting:      newLayered[uint64, orders.Order](),
		settled:       newLayered[uint64, orders.Order](),
		recent:        newLayered[uint64, recentOrder](),
	}
}

// NewFSM returns an empty state machine for shard.
func NewFSM(shard int, cfg FSMConfig) *FSM {
	f := &FSM{shard: shard, cfg: cfg}
	f.mu.state = newState()
	return f
}

// bytesSinceSnapshot returns how many bytes of commands were applied
// since the last snapshot (or the start).
func (f *FSM) bytesSinceSnapshot() uint64 { return f.appliedBytes.Load() - f.snapBytes.Load() }

// compactPerApply is how many entries of sealed layers each Apply moves
// into the layers' bases (layered.compact): about 50 µs of work, enough to
// fold a snapshot interval's writes back in well before the next one.
const compactPerApply = 2048

// Apply applies one committed log entry. An entry that does not decode means
// the replicas would drift, so it panics.
func (f *FSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	f.appliedBytes.Add(uint64(len(l.Data)))
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftstore: shard %d index %d: %v", f.shard, l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.mu.compact(compactPerApply)
	switch c := cmd.(type) {
	case *CreateItem:
		f.advanceLocked(c.Stamp)
		return f.createItemLocked(c)
	case *PurchaseBatch:
		now := f.advanceLocked(c.Stamp)
		return f.purchaseLocked(l.Index, now, c)
	case *PurchaseEntry:
		now := f.advanceLocked(c.Stamp)
		return f.purchaseEntryLocked(l.Index, now, c)
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
	case *Cancel:
		now := f.advanceLocked(c.Stamp)
		return f.cancelLocked(c, now)
	case *EndSale:
		now := f.advanceLocked(c.Stamp)
		return f.endSaleLocked(c, now)
	case *OutboxAppend:
		f.advanceLocked(c.Stamp)
		f.mu.appendChanges = true
		return nil
	}
	panic(fmt.Sprintf("raftstore: shard %d index %d: unhandled command %T", f.shard, l.Index, cmd))
}

// compact spends up to budget moves folding sealed layers back into their
// bases; it does nothing while a snapshot holds a view.
func (s *state) compact(budget int) {
	for _, c := range []func(int) int{s.bought.compact, s.dedup.compact, s.pendingSeq.compact, s.pendingStatus.compact,
		s.awaiting.compact, s.settled.compact, s.recent.compact} {
		if budget <= 0 {
			return
		}
		budget -= c(budget)
	}
}

// advanceLocked moves command time forward and expires old request IDs.
// Time never goes backwards, even if a new leader's clock is behind.
func (f *FSM) advanceLocked(stamp int64) int64 {
	if stamp > f.mu.lastStamp {
		f.mu.lastStamp = stamp
	}
	now := f.mu.lastStamp
	f.mu.dedupQueue.trim(now, func() bool { return f.mu.dedup.len() > f.cfg.DedupMax },
		func(k fingerprint, exp int64) {
			if e, ok := f.mu.dedup.get(k); ok && e.expires == exp {
				f.mu.dedup.delete(k)
			}
		})
	f.mu.settledQueue.trim(now, func() bool { return f.mu.settled.len() > f.cfg.DedupMax },
		func(id uint64, _ int64) { f.mu.settled.delete(id) }) // each order settles once
	f.mu.recentQueue.trim(now, func() bool { return f.mu.recent.len() > f.cfg.OrderRetentionMax },
		func(id uint64, exp int64) {
			if e, ok := f.mu.recent.get(id); ok && e.expires == exp {
				f.mu.recent.delete(id)
			}
		})
	return now
}
