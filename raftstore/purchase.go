package raftstore

import (
	"container/heap"
	"crypto/sha256"
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

// fingerprint names a buyer of an item, or a request ID of a buyer and an
// item, in 16 bytes: the first half of a SHA-256 of the IDs. The two
// memories that grow with the crowd (buyers and request IDs) keep it
// instead of the strings: a third of the bytes, and no pointers for the
// garbage collector to scan. SHA-256 because shoppers choose IDs: a
// collision made on purpose could lend one shopper another's purchases
// (against the limit) or order (on a replay); 128 bits of a collision-
// resistant hash make one out of reach, by chance or by design.
type fingerprint [16]byte

// buyerKey is the fingerprint of a user's holdings of an item.
func buyerKey(item, user string) fingerprint { return fingerprintOf('b', item, user, "") }

// requestKey is the fingerprint of a user's request ID for an item.
func requestKey(user, item, request string) fingerprint {
	return fingerprintOf('r', item, user, request)
}

// fingerprintOf hashes a kind byte and up to three IDs, each ended by a
// zero byte (IDs never contain one), without allocating for IDs of
// sale.IDLenMax.
func fingerprintOf(kind byte, a, b, c string) fingerprint {
	var buf [4 + 3*sale.IDLenMax]byte
	in := append(buf[:0], kind)
	in = append(append(in, a...), 0)
	in = append(append(in, b...), 0)
	in = append(append(in, c...), 0)
	sum := sha256.Sum256(in)
	var fp fingerprint
	copy(fp[:], sum[:])
	return fp
}

// dedupEntry is a remembered request: enough of the order it produced to
// answer a replay (the request itself brings the IDs), and when it is
// forgotten, in command time. It holds no pointers.
type dedupEntry struct {
	orderID  uint64
	created  int64 // unix nanoseconds
	payBy    int64 // unix nanoseconds; 0 = none
	expires  int64
	quantity int32
	status   orderStatus
}

// orderStatus is orders.Status in one byte.
type orderStatus uint8

const (
	statusConfirmed orderStatus = iota + 1
	statusPaid
	statusExpired
	statusCancelled // the numbers are in snapshots: append only
)

func statusCode(s orders.Status) orderStatus {
	switch s {
	case orders.StatusPaid:
		return statusPaid
	case orders.StatusExpired:
		return statusExpired
	case orders.StatusCancelled:
		return statusCancelled
	}
	return statusConfirmed
}

func (s orderStatus) status() orders.Status {
	switch s {
	case statusPaid:
		return orders.StatusPaid
	case statusExpired:
		return orders.StatusExpired
	case statusCancelled:
		return orders.StatusCancelled
	}
	return orders.StatusConfirmed
}

// newDedupEntry remembers o until expires.
func newDedupEntry(o orders.Order, expires int64) dedupEntry {
	e := dedupEntry{orderID: o.ID, created: o.CreatedAt.UnixNano(), expires: expires,
		quantity: o.Quantity, status: statusCode(o.Status)}
	if !o.PayBy.IsZero() {
		e.payBy = o.PayBy.UnixNano()
	}
	return e
}

// order rebuilds the remembered order of a user's request ID for an item.
func (e dedupEntry) order(item, user, request string) orders.Order {
	o := orders.Order{
		ID: e.orderID, ItemID: item, UserID: user, RequestID: request, Quantity: e.quantity,
		Status: e.status.status(), CreatedAt: time.Unix(0, e.created).UTC(),
		Shard: orders.ShardOfID(e.orderID), LogIndex: orders.IndexOfID(e.orderID),
	}
	if e.payBy != 0 {
		o.PayBy = time.Unix(0, e.payBy).UTC()
	}
	return o
}

// purchaseLocked decides every purchase of batch b, committed at log entry
// index with command time now, and returns one result per purchase in the
// batch's order. A remembered request answers its original order; a
// confirmed purchase takes its units, gets the order ID of its position in
// the entry, enters the outbox and, with a payment window, the deadline
// heap.
func (f *FSM) purchaseLocked(index uint64, now int64, b *PurchaseBatch) []PurchaseResult {
	return f.purchaseGroupLocked(index, now, b.PayWindow, b.ItemID, b.Purchases, 0)
}

// purchaseEntryLocked decides every group of a PurchaseEntry, in order,
// with positions running across the groups (each order ID stays unique
// in the entry), and returns each group's results.
func (f *FSM) purchaseEntryLocked(index uint64, now int64, e *PurchaseEntry) [][]PurchaseResult {
	out := make([][]PurchaseResult, len(e.Groups))
	pos := 0
	for i, g := range e.Groups {
		out[i] = f.purchaseGroupLocked(index, now, e.PayWindow, g.ItemID, g.Purchases, pos)
		pos += len(g.Purchases)
	}
	return out
}

// purchaseGroupLocked decides the purchases of one item; the first takes
// order position first in the entry.
func (f *FSM) purchaseGroupLocked(index uint64, now, payWindow int64, itemID string, ps []Purchase, first int) []PurchaseResult {
	res := make([]PurchaseResult, len(ps))
	it := f.mu.items[itemID]
	for i := range ps {
		p := &ps[i]
		var key fingerprint
		if p.RequestID != "" {
			key = requestKey(p.UserID, itemID, p.RequestID)
			if e, ok := f.mu.dedup.get(key); ok {
				res[i] = PurchaseResult{Outcome: sale.OutcomeDuplicate, Order: e.order(itemID, p.UserID, p.RequestID)}
				continue
			}
		}
		if it == nil {
			res[i].Outcome = sale.OutcomeItemNotFound
			continue
		}
		buyer := buyerKey(itemID, p.UserID)
		had, _ := f.mu.bought.get(buyer)
		if err := sale.Admit(it, p.Quantity, had, now); err != nil {
			res[i].Outcome = sale.OutcomeOf(err)
			continue
		}
		it.Remaining -= int64(p.Quantity)
		f.mu.bought.set(buyer, had+p.Quantity)
		o := orders.Order{
			ID:        orders.MakeID(f.shard, index, first+i),
			ItemID:    itemID,
			UserID:    p.UserID,
			RequestID: p.RequestID,
			Quantity:  p.Quantity,
			Status:    orders.StatusConfirmed,
			CreatedAt: time.Unix(0, now).UTC(),
			Shard:     f.shard,
			LogIndex:  index,
		}
		if payWindow > 0 {
			o.PayBy = time.Unix(0, now+payWindow).UTC()
			f.mu.awaiting.set(o.ID, o)
			heap.Push(&f.mu.deadlines, deadline{at: now + payWindow, id: o.ID})
		}
		f.outboxLocked(o, false)
		if p.RequestID != "" {
			exp := now + int64(f.cfg.DedupRetention)
			f.mu.dedup.set(key, newDedupEntry(o, exp))
			f.mu.dedupQueue.push(key, exp)
		}
		res[i] = PurchaseResult{Outcome: sale.OutcomeConfirmed, Order: o}
	}
	return res
}
