package raftstore

import (
	"sort"

	"github.com/flashstock/flashstock/orders"
)

// The outbox: every change the order store must see (a new order, a
// payment, an expiry) waits here with an ascending Seq until the leader's
// flusher has written it and committed MarkFlushed through Raft. Flushed
// orders stay readable for OrderRetention.
//
// Entries are appended and never changed in place, so a snapshot may hold
// a slice of the outbox while Apply goes on. A later change of an order
// still waiting (a payment, an expiry) keeps its entry and Seq, as the
// log's meaning has always been; its new status goes to pendingStatus, a
// layered map that snapshots seal like the others, and readers see the
// entry with it.

// outboxEntry is one change waiting for the order store.
type outboxEntry struct {
	order orders.Order // with its Seq
	// change is set when the store already holds an earlier state of
	// the order (a payment or expiry of a flushed order).
	change bool
}

// recentOrder is a flushed order kept readable, and when it is forgotten.
type recentOrder struct {
	order   orders.Order
	expires int64
}

// outboxLocked queues a change of o for the order store. A change to an
// order still waiting in the outbox updates that entry's status instead,
// so the store sees each order's latest state.
func (f *FSM) outboxLocked(o orders.Order, change bool) {
	if _, ok := f.mu.pendingSeq.get(o.ID); ok {
		f.mu.pendingStatus.set(o.ID, statusCode(o.Status))
		return
	}
	f.mu.nextSeq++
	o.Seq = f.mu.nextSeq
	f.mu.pending = append(f.mu.pending, outboxEntry{order: o, change: change})
	f.mu.pendingSeq.set(o.ID, o.Seq)
}

// pendingIndexLocked returns the position of the outbox entry with seq, or
// -1 if it is no longer (or never was) in the outbox.
func (f *FSM) pendingIndexLocked(seq uint64) int {
	p := f.mu.pending
	i := f.mu.pendingHead + sort.Search(len(p)-f.mu.pendingHead, func(i int) bool { return p[f.mu.pendingHead+i].order.Seq >= seq })
	if i < len(p) && p[i].order.Seq == seq {
		return i
	}
	return -1
}

// current returns an outbox entry's order in its latest status.
func (s *state) current(e *outboxEntry) orders.Order {
	o := e.order
	if st, ok := s.pendingStatus.get(o.ID); ok {
		o.Status = st.status()
	}
	return o
}

// markFlushedLocked drops every outbox entry up to Seq upTo: the flusher
// has written them. A watermark at or below the current one is a no-op
// (a stale or repeated MarkFlushed).
func (f *FSM) markFlushedLocked(upTo uint64) {
	if upTo <= f.mu.flushedUpTo {
		return
	}
	f.mu.flushedUpTo = upTo
	p, head := f.mu.pending, f.mu.pendingHead
	n := head + sort.Search(len(p)-head, func(i int) bool { return p[head+i].order.Seq > upTo })
	exp := f.mu.lastStamp + int64(f.cfg.OrderRetention)
	for i := head; i < n; i++ {
		o := f.mu.current(&p[i])
		if seq, _ := f.mu.pendingSeq.get(o.ID); seq != o.Seq {
			continue
		}
		f.mu.pendingSeq.delete(o.ID)
		f.mu.pendingStatus.delete(o.ID)
		if f.cfg.OrderRetention > 0 {
			f.mu.recent.set(o.ID, recentOrder{order: o, expires: exp})
			f.mu.recentQueue.push(o.ID, exp)
		}
	}
	f.mu.pendingHead = n
	// Drop the flushed front now and then, by copying the tail: entries
	// a snapshot holds are never written, and the front stops pinning
	// memory once no snapshot holds it.
	if n > 1024 && n > len(p)/2 {
		f.mu.pending = append([]outboxEntry(nil), p[n:]...)
		f.mu.pendingHead = 0
	}
}

// live returns the outbox entries not yet flushed.
func (s *state) live() []outboxEntry { return s.pending[s.pendingHead:] }

// PendingOrder returns an order whose latest change is not yet flushed.
func (f *FSM) PendingOrder(id uint64) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.pendingOrderLocked(id)
}

func (f *FSM) pendingOrderLocked(id uint64) (orders.Order, bool) {
	if seq, ok := f.mu.pendingSeq.get(id); ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			return f.mu.current(&f.mu.pending[i]), true
		}
	}
	return orders.Order{}, false
}

// PendingByUser returns the unflushed orders of a user.
func (f *FSM) PendingByUser(user string) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []orders.Order
	live := f.mu.live()
	for i := range live {
		if live[i].order.UserID == user {
			out = append(out, f.mu.current(&live[i]))
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
	live := f.mu.live()
	for i := range live {
		e := &live[i]
		if seq, _ := f.mu.pendingSeq.get(e.order.ID); seq != e.order.Seq {
			continue // an earlier change of an order changed again since
		}
		switch o := f.mu.current(e); {
		case !e.change && !o.Status.Returned():
			out[o.ItemID] += int64(o.Quantity)
		case e.change && o.Status.Returned():
			out[o.ItemID] -= int64(o.Quantity)
		}
	}
	return out
}

// PendingCount returns the number of changes not yet flushed.
func (f *FSM) PendingCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.mu.live())
}

// Unflushed returns up to max of the oldest changes not yet flushed, in
// Seq order, each in its order's latest status.
func (f *FSM) Unflushed(max int) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	live := f.mu.live()
	if len(live) > max {
		live = live[:max]
	}
	out := make([]orders.Order, len(live))
	for i := range live {
		out[i] = f.mu.current(&live[i])
	}
	return out
}

// FlushedUpTo returns the flushed watermark: every order with an ID up to
// it is in the order store.
func (f *FSM) FlushedUpTo() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.flushedUpTo
}
