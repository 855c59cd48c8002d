package raftstore

import (
	"context"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Reads of the FSM from other goroutines (the item actors, HTTP handlers,
// status): each takes the read lock and returns copies. A follower's
// answers may lag the leader by a replication round; Shard.Replica says
// whether a replica is current enough to answer, Shard.WaitApplied waits
// for a given log entry.

// Admission is what a purchase's answer may be decided from without a
// Raft round, read under one lock: the original order of a remembered
// request, the item, and the number of orders waiting for the store.
type Admission struct {
	Original  orders.Order
	Duplicate bool // the request ID is remembered; Original is its order
	Item      sale.Item
	Found     bool // the item exists
	Pending   int
}

// Admission reads the state a purchase of item by user, with an optional
// request ID, can be answered from.
func (f *FSM) Admission(item, user, request string) Admission {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var a Admission
	if request != "" {
		if e, ok := f.mu.dedup.get(requestKey(user, item, request)); ok {
			a.Original, a.Duplicate = e.order(item, user, request), true
			return a
		}
	}
	if it, ok := f.mu.items[item]; ok {
		a.Item, a.Found = *it, true
	}
	a.Pending = len(f.mu.live())
	return a
}

// AppliedIndex returns the index of the last applied log entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// OrderState returns the latest state of an order this FSM still holds:
// awaiting payment, recently settled, or waiting in the outbox.
func (f *FSM) OrderState(id uint64) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if o, ok := f.mu.awaiting.get(id); ok {
		return o, true
	}
	if o, ok := f.mu.settled.get(id); ok {
		return o, true
	}
	if o, ok := f.pendingOrderLocked(id); ok {
		return o, true
	}
	if e, ok := f.mu.recent.get(id); ok {
		return e.order, true
	}
	return orders.Order{}, false
}

// Bought returns how many units of item the user holds.
func (f *FSM) Bought(item, user string) int32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, _ := f.mu.bought.get(buyerKey(item, user))
	return n
}

// LookupRequest returns the order a user's request ID for an item
// produced, if it is still remembered.
func (f *FSM) LookupRequest(item, user, request string) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.mu.dedup.get(requestKey(user, item, request))
	if !ok {
		return orders.Order{}, false
	}
	return e.order(item, user, request), true
}

// LookupOrder returns an order Raft still holds: waiting for the order store
// (stored false), or awaiting payment or settled and already stored.
func (f *FSM) LookupOrder(id uint64) (o orders.Order, stored, ok bool) {
	if o, ok := f.PendingOrder(id); ok {
		return o, false, true
	}
	if o, ok := f.OrderState(id); ok {
		return o, true, true
	}
	return orders.Order{}, false, false
}

// Stats is a summary of the state for status pages and metrics.
type Stats struct {
	Items       int
	Awaiting    int // orders awaiting payment
	Pending     int
	DedupKeys   int
	BuyerRows   int
	FlushedUpTo uint64
	Applied     uint64
}

// Stats returns a summary of the state.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{
		Items:       len(f.mu.items),
		Awaiting:    f.mu.awaiting.len(),
		Pending:     len(f.mu.live()),
		DedupKeys:   f.mu.dedup.len(),
		BuyerRows:   f.mu.bought.len(),
		FlushedUpTo: f.mu.flushedUpTo,
		Applied:     f.applied.Load(),
	}
}

// replicaContactMax is how recently a follower must have heard from its
// leader for its replica to count as current.
const replicaContactMax = 3 * time.Second

// Replica reports whether this node holds a current replica of the shard:
// it leads it, or it follows a leader it heard from recently. Reads that
// may lag by a replication round (sold out, remembered request IDs, item
// pages) are served from a current replica without asking the leader.
func (sh *Shard) Replica() bool {
	if sh.IsLeader() {
		return true
	}
	return sh.fsm.AppliedIndex() > 0 && time.Since(sh.raft.LastContact()) < replicaContactMax
}

// WaitApplied waits until this replica has applied the log up to index. A
// follower learns that an entry is committed with the next AppendEntries (up
// to CommitTimeout later), and the follower that was not needed for the
// quorum may not have the entry yet at all. An index further than
// applyLagMax past this replica's log is no entry it is about to get (a
// made-up order ID): no wait. It reports whether the index is applied; it
// never waits past timeout, nor once ctx ends or the shard closes.
func (sh *Shard) WaitApplied(ctx context.Context, index uint64, timeout time.Duration) bool {
	if sh.fsm.AppliedIndex() >= index {
		return true
	}
	if index > sh.raft.LastIndex()+applyLagMax {
		return false
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-sh.stop:
			return false
		case <-timer.C:
			return sh.fsm.AppliedIndex() >= index
		case <-poll.C:
			if sh.fsm.AppliedIndex() >= index {
				return true
			}
		}
	}
}

// applyLagMax is how many entries past its log a replica may be asked to
// wait for: seconds of a busy shard's rounds.
const applyLagMax = 4096
