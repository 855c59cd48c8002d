package raftstore

import (
	"container/heap"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Purchases: one PurchaseBatch entry decides each of its purchases in
// order, against the item's remaining stock, the buyer's per-user limit
// and the sale window, and remembers each request ID (scoped to the user
// and the item) so that a retry gets the original order back instead of
// buying again.

// PurchaseResult is the Apply response for one purchase of a batch.
type PurchaseResult struct {
	Outcome sale.Outcome
	Order   orders.Order // set when Outcome is Confirmed or Duplicate
}

// userItem keys the units a user holds of an item (the per-user limit).
type userItem struct{ item, user string }

// userRequest keys an idempotent purchase: request IDs are scoped to the
// user and the item, so a shopper may reuse one for another item.
type userRequest struct{ user, item, request string }

// dedupEntry is a remembered request: the order it produced and when it
// is forgotten, in command time.
type dedupEntry struct {
	order   orders.Order
	expires int64
}

// purchaseLocked decides every purchase of batch b, committed at log entry
// index with command time now, and returns one result per purchase in the
// batch's order. A remembered request answers its original order; a
// confirmed purchase takes its units, gets the order ID of its position in
// the entry, enters the outbox and, with a payment window, the deadline
// heap.
func (f *FSM) purchaseLocked(index uint64, now int64, b *PurchaseBatch) []PurchaseResult {
	res := make([]PurchaseResult, len(b.Purchases))
	it := f.mu.items[b.ItemID]
	for i := range b.Purchases {
		p := &b.Purchases[i]
		var key userRequest
		if p.RequestID != "" {
			key = userRequest{p.UserID, b.ItemID, p.RequestID}
			if e, ok := f.mu.dedup[key]; ok {
				res[i] = PurchaseResult{Outcome: sale.OutcomeDuplicate, Order: e.order}
				continue
			}
		}
		if it == nil {
			res[i].Outcome = sale.OutcomeItemNotFound
			continue
		}
		ui := userItem{b.ItemID, p.UserID}
		had := f.mu.bought[ui]
		if err := sale.Admit(it, p.Quantity, had, now); err != nil {
			res[i].Outcome = sale.OutcomeOf(err)
			continue
		}
		it.Remaining -= int64(p.Quantity)
		f.mu.bought[ui] = had + p.Quantity
		o := orders.Order{
			ID:        orders.MakeID(f.shard, index, i),
			ItemID:    b.ItemID,
			UserID:    p.UserID,
			RequestID: p.RequestID,
			Quantity:  p.Quantity,
			Status:    orders.StatusConfirmed,
			CreatedAt: time.Unix(0, now).UTC(),
			Shard:     f.shard,
			LogIndex:  index,
		}
		if b.PayWindow > 0 {
			o.PayBy = time.Unix(0, now+b.PayWindow).UTC()
			f.mu.awaiting[o.ID] = o
			heap.Push(&f.mu.deadlines, deadline{at: now + b.PayWindow, id: o.ID})
		}
		f.outboxLocked(o, false)
		if p.RequestID != "" {
			exp := now + int64(f.cfg.DedupRetention)
			f.mu.dedup[key] = dedupEntry{order: o, expires: exp}
			f.mu.dedupQueue.push(key, exp)
		}
		res[i] = PurchaseResult{Outcome: sale.OutcomeConfirmed, Order: o}
	}
	return res
}
