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
// still waiting (a payment, an expiry, a cancel) gets an entry of its own
// once the shard's log has switched (CmdOutboxAppend), superseding the
// waiting one; before, as earlier versions do, its new status went to
// pendingStatus, a layered map that snapshots seal like the others, and
// readers see the entry with it (outboxLocked says why that lost changes).

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

// outboxLocked queues a change of o for the order store.
//
// A change to an order whose entry still waits gets an entry of its own,
// with the next Seq, and the waiting entry is superseded (readers skip an
// entry that is not its order's latest). Before CmdOutboxAppend the change
// only updated the waiting entry's status (pendingStatus), and that lost
// it whenever the flusher had read the entry before the change and then
// marked it flushed: the store kept the older status (a paid or expired
// order stayed "confirmed"). The superseding entry keeps the waiting
// entry's change flag: the log still holds the order as not in the store.
func (f *FSM) outboxLocked(o orders.Order, change bool) {
	if seq, ok := f.mu.pendingSeq.get(o.ID); ok {
		if !f.mu.appendChanges {
			f.mu.pendingStatus.set(o.ID, statusCode(o.Status))
			return
		}
		if i := f.pendingIndexLocked(seq); i >= 0 {
			change = f.mu.pending[i].change
		}
		f.mu.pendingStatus.delete(o.ID)
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
		if live[i].order.UserID == user && f.mu.latest(&live[i]) {
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
		if !f.mu.latest(e) {
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
	out := make([]orders.Order, 0, min(len(live), max))
	// A superseded entry always has its order's latest entry after it, so
	// the watermark of what is returned covers the superseded ones skipped.
	for i := 0; i < len(live) && len(out) < max; i++ {
		if f.mu.latest(&live[i]) {
			out = append(out, f.mu.current(&live[i]))
		}
	}
	return out
}

// latest reports whether e is its order's latest outbox entry; a
// superseded one is skipped by readers and dropped when flushed.
func (s *state) latest(e *outboxEntry) bool {
	seq, _ := s.pendingSeq.get(e.order.ID)
	return seq == e.order.Seq
}

// AppendsChanges reports whether the outbox gives every change of an order
// an entry of its own (CmdOutboxAppend applied).
func (f *FSM) AppendsChanges() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.appendChanges
}

// FlushedUpTo returns the flushed watermark: every order with an ID up to
// it is in the order store.
func (f *FSM) FlushedUpTo() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.flushedUpTo
}
