package raftstore

import (
	"container/heap"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// The payment window: with Config.PayWindow an order must be paid by its
// PayBy, else it expires and its units return to the sale and to the
// buyer's allowance. Pay and Expire are both commands, so the log orders a
// payment against its deadline the same way on every replica; the leader's
// expiry loop stamps the Expire commands.

// deadline is an unpaid order's expiry; deadlineHeap is ordered by it, then
// by order ID, so every replica pops in the same order.
type deadline struct {
	at int64
	id uint64
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)   { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// settleLocked records an order's final status (paid, expired): out of
// the payment window, into the outbox and the settled memory, and into the
// remembered request so a replay shows the current status.
func (f *FSM) settleLocked(o orders.Order, now int64) {
	f.mu.awaiting.delete(o.ID)
	f.mu.settled.set(o.ID, o)
	f.mu.settledQueue.push(o.ID, now+int64(f.cfg.DedupRetention))
	f.outboxLocked(o, true)
	if o.RequestID != "" {
		key := requestKey(o.UserID, o.ItemID, o.RequestID)
		if e, ok := f.mu.dedup.get(key); ok && e.orderID == o.ID {
			e.status = statusCode(o.Status)
			f.mu.dedup.set(key, e)
		}
	}
}

// payLocked pays an order in its window. Paying after the deadline, even
// before the Expire command that would have caught it, expires the order:
// whichever of pay and expiry comes first in the log decides, the same way
// on every replica.
func (f *FSM) payLocked(c *Pay, now int64) any {
	if o, ok := f.mu.awaiting.get(c.OrderID); ok {
		if o.UserID != c.UserID {
			return sale.ErrOrderNotFound
		}
		if now >= o.PayBy.UnixNano() {
			f.expireOneLocked(o, now)
			return sale.ErrOrderExpired
		}
		o.Status = orders.StatusPaid
		f.settleLocked(o, now)
		return o
	}
	if o, ok := f.mu.settled.get(c.OrderID); ok && o.UserID == c.UserID {
		switch o.Status {
		case orders.StatusExpired:
			return sale.ErrOrderExpired
		case orders.StatusCancelled:
			return sale.ErrOrderCancelled
		}
		return o // paid already: paying again is a no-op
	}
	return sale.ErrOrderNotFound
}

// expireLocked expires every unpaid order whose deadline is at or before
// now, and returns how many.
func (f *FSM) expireLocked(now int64) int {
	n := 0
	for len(f.mu.deadlines) > 0 && f.mu.deadlines[0].at <= now {
		d := heap.Pop(&f.mu.deadlines).(deadline)
		if o, ok := f.mu.awaiting.get(d.id); ok {
			f.expireOneLocked(o, now)
			n++
		}
	}
	return n
}

// expireOneLocked returns an unpaid order's stock to the sale and to the
// buyer's per-user allowance.
func (f *FSM) expireOneLocked(o orders.Order, now int64) {
	f.returnLocked(o, orders.StatusExpired, now)
}

// cancelLocked cancels an order the shard still holds: awaiting payment,
// waiting in the outbox, settled within --dedup-retention, or flushed
// within --order-retention. Its units go back to the sale and to the
// buyer's allowance, as an expiry's do. Cancelling again answers the
// cancelled order; a paid or expired order is refused. An order the shard
// no longer holds is refused with ErrOrderNotCancellable: the shard cannot
// tell whether it was cancelled before, and returning its units twice
// would sell stock that does not exist.
func (f *FSM) cancelLocked(c *Cancel, now int64) any {
	if o, ok := f.mu.awaiting.get(c.OrderID); ok {
		if now >= o.PayBy.UnixNano() {
			f.expireOneLocked(o, now)
			return sale.ErrOrderExpired
		}
		return f.cancelHeldLocked(o, now)
	}
	if o, ok := f.mu.settled.get(c.OrderID); ok {
		return f.cancelHeldLocked(o, now)
	}
	if o, ok := f.pendingOrderLocked(c.OrderID); ok {
		return f.cancelHeldLocked(o, now)
	}
	if e, ok := f.mu.recent.get(c.OrderID); ok {
		res := f.cancelHeldLocked(e.order, now)
		if o, ok := res.(orders.Order); ok {
			// Until the cancellation is flushed the entry must not
			// read as confirmed (settled is bounded in count too).
			f.mu.recent.set(o.ID, recentOrder{order: o, expires: e.expires})
		}
		return res
	}
	return sale.ErrOrderNotCancellable
}

// cancelHeldLocked cancels o, which the shard holds in its latest status.
func (f *FSM) cancelHeldLocked(o orders.Order, now int64) any {
	switch o.Status {
	case orders.StatusConfirmed:
		f.returnLocked(o, orders.StatusCancelled, now)
		o.Status = orders.StatusCancelled
		o.Seq = 0
		return o
	case orders.StatusCancelled:
		return o
	case orders.StatusPaid:
		return sale.ErrOrderPaid
	case orders.StatusExpired:
		return sale.ErrOrderExpired
	}
	return sale.ErrOrderNotCancellable
}

// returnLocked gives an order's units back to the sale and to the buyer's
// per-user allowance, and settles it in status (expired, cancelled).
func (f *FSM) returnLocked(o orders.Order, status orders.Status, now int64) {
	if it, ok := f.mu.items[o.ItemID]; ok {
		it.Remaining += int64(o.Quantity)
	}
	buyer := buyerKey(o.ItemID, o.UserID)
	had, _ := f.mu.bought.get(buyer)
	if left := had - o.Quantity; left > 0 {
		f.mu.bought.set(buyer, left)
	} else {
		f.mu.bought.delete(buyer)
	}
	o.Status = status
	f.settleLocked(o, now)
}

// NextDeadline returns the earliest payment deadline, unix nanoseconds,
// and false when no order awaits payment.
func (f *FSM) NextDeadline() (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.mu.deadlines) == 0 {
		return 0, false
	}
	return f.mu.deadlines[0].at, true
}

// expireLoop, on the leader, applies an Expire command whenever an unpaid
// order's deadline has passed. Expiry goes through the log so that every
// replica returns the same stock at the same point.
func (sh *Shard) expireLoop() {
	defer sh.wg.Done()
	t := time.NewTicker(sh.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case <-t.C:
		}
		at, ok := sh.fsm.NextDeadline()
		now := sh.stamp()
		if !ok || at > now || !sh.Ready() {
			continue
		}
		if _, err := sh.apply(&Expire{Stamp: now}, 16); err != nil {
			sh.log.Warn("expire unpaid orders", "err", err)
		}
	}
}
