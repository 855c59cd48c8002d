package raftstore

import (
	"sort"

	"github.com/flashstock/flashstock/orders"
)

// The outbox: every change the order store must see (a new order, a
// payment, an expiry) waits here with an ascending Seq until the leader's
// flusher has written it and committed MarkFlushed through Raft. Flushed
// orders stay readable for OrderRetention.

// recentOrder is a flushed order kept readable, and when it is forgotten.
type recentOrder struct {
	order   orders.Order
	expires int64
}

// outboxLocked queues a change of o for the order store. A change to an
// order still waiting in the outbox updates that entry instead, so the
// store sees each order's latest state.
func (f *FSM) outboxLocked(o orders.Order, change bool) {
	if seq, ok := f.mu.pendingSeq[o.ID]; ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			f.mu.pending[i].Status = o.Status
			return
		}
	}
	f.mu.nextSeq++
	o.Seq = f.mu.nextSeq
	f.mu.pending = append(f.mu.pending, o)
	f.mu.pendingSeq[o.ID] = o.Seq
	if change {
		f.mu.changes[o.Seq] = true
	}
}

// pendingIndexLocked returns the position of the outbox entry with seq, or
// -1 if it is no longer (or never was) in the outbox.
func (f *FSM) pendingIndexLocked(seq uint64) int {
	p := f.mu.pending
	i := sort.Search(len(p), func(i int) bool { return p[i].Seq >= seq })
	if i < len(p) && p[i].Seq == seq {
		return i
	}
	return -1
}

// markFlushedLocked drops every outbox entry up to Seq upTo: the flusher
// has written them. A watermark at or below the current one is a no-op
// (a stale or repeated MarkFlushed).
func (f *FSM) markFlushedLocked(upTo uint64) {
	if upTo <= f.mu.flushedUpTo {
		return
	}
	f.mu.flushedUpTo = upTo
	p := f.mu.pending
	n := sort.Search(len(p), func(i int) bool { return p[i].Seq > upTo })
	if n == 0 {
		return
	}
	exp := f.mu.lastStamp + int64(f.cfg.OrderRetention)
	for _, o := range p[:n] {
		if f.mu.pendingSeq[o.ID] == o.Seq {
			delete(f.mu.pendingSeq, o.ID)
			if f.cfg.OrderRetention > 0 {
				f.mu.recent[o.ID] = recentOrder{order: o, expires: exp}
				f.mu.recentQueue.push(o.ID, exp)
			}
		}
		delete(f.mu.changes, o.Seq)
	}
	// Copy the tail so the flushed prefix does not pin memory.
	f.mu.pending = append([]orders.Order(nil), p[n:]...)
}

// PendingOrder returns an order whose latest change is not yet flushed.
func (f *FSM) PendingOrder(id uint64) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if seq, ok := f.mu.pendingSeq[id]; ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			return f.mu.pending[i], true
		}
	}
	return orders.Order{}, false
}

// PendingByUser returns the unflushed orders of a user.
func (f *FSM) PendingByUser(user string) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []orders.Order
	for _, o := range f.mu.pending {
		if o.UserID == user {
			out = append(out, o)
		}
	}
	return out
}

// PendingUnits returns, per item, how many units the order store is
// missing of Raft's sales because of what waits in the outbox: new orders
// not yet written count plus, expiries of orders the store holds as
// sold count minus. After the outbox drains it is zero.
func (f *FSM) PendingUnits() map[string]int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]int64)
	for _, o := range f.mu.pending {
		if o.Seq != f.mu.pendingSeq[o.ID] {
			continue
		}
		change := f.mu.changes[o.Seq]
		switch {
		case !change && o.Status != orders.StatusExpired:
			out[o.ItemID] += int64(o.Quantity)
		case change && o.Status == orders.StatusExpired:
			out[o.ItemID] -= int64(o.Quantity)
		}
	}
	return out
}

// PendingCount returns the number of confirmed orders not yet flushed.
func (f *FSM) PendingCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.mu.pending)
}

// Unflushed returns up to max of the oldest confirmed orders not yet
// flushed, in ID order.
func (f *FSM) Unflushed(max int) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.mu.pending
	if len(p) > max {
		p = p[:max]
	}
	return append([]orders.Order(nil), p...)
}

// FlushedUpTo returns the flushed watermark: every order with an ID up to
// it is in the order store.
func (f *FSM) FlushedUpTo() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.flushedUpTo
}
