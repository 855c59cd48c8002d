package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// Purchase buys an item. It returns the order and whether it is the
// original order of an earlier request with the same request ID.
//
// Answers that need no other node and no Raft round come first and cost a
// map lookup in this node's replica: a remembered request ID, a quantity
// over the limit, a sale not open, sold out. A replica may lag its leader by
// a replication round; these answers only change by an admin action (a
// restock, a new window), so a lagging "sold out" is as honest as a
// shopper who arrived a millisecond earlier. Everything else goes to the
// item actor on the shard's leader.
func (e *Engine) Purchase(ctx context.Context, r sale.Request) (orders.Order, bool, error) {
	if !sale.ValidID(r.ItemID) || !sale.ValidID(r.UserID) || (r.RequestID != "" && !sale.ValidID(r.RequestID)) {
		return orders.Order{}, false, sale.ErrInvalidRequest
	}
	if err := e.admit(); err != nil {
		return orders.Order{}, false, err
	}
	defer e.inflight.Add(-1)
	sh := e.replica(e.shardFor(r.ItemID))
	if sh != nil {
		if o, dup, done, err := e.answerFromReplica(sh, r); done {
			return o, dup, err
		}
	} else if err := e.answerFromCache(ctx, r); err != nil {
		return orders.Order{}, false, err
	}
	reply, err := e.call(ctx, r.ItemID, &Purchase{Request: r}, r.RequestID != "")
	if err != nil {
		return orders.Order{}, false, err
	}
	switch m := reply.(type) {
	case *Purchased:
		return m.Order, m.Duplicate, nil
	case *Rejected:
		if errors.Is(m.Err, sale.ErrSoldOut) && sh == nil {
			e.noteSoldOut(r.ItemID)
		}
		return orders.Order{}, false, m.Err
	}
	return orders.Order{}, false, fmt.Errorf("actors: unexpected reply %T", reply)
}

// answerFromCache answers, on a node without a replica of the item's
// shard (a gateway, or a core node outside the shard's group), what the
// item's snapshot from its owner already decides: sold out, not on sale,
// over the per-user limit, no such item. The snapshot is at most
// Config.ItemCacheTTL old; past that the owner is asked again for it
// (once per TTL and item, however many shoppers wait: Engine.Item), so a
// sold-out answer here may be that much behind a restock, never more. A
// nil error means the owner must decide.
func (e *Engine) answerFromCache(ctx context.Context, r sale.Request) error {
	it, err := e.Item(ctx, r.ItemID)
	switch {
	case errors.Is(err, sale.ErrItemNotFound):
		return err
	case err != nil:
		return nil // the owner's answer will say; the purchase may still go through
	}
	return sale.Admit(&it, r.Quantity, 0, e.now().UnixNano())
}

// admit counts a purchase or a payment in this node's in-flight work, or
// refuses it when the node is closing or at --admission-max. The caller
// ends it with e.inflight.Add(-1).
func (e *Engine) admit() error {
	if e.closed.Load() {
		return sale.ErrClosed
	}
	if e.store != nil && e.store.DiskTrouble() {
		return sale.ErrDiskFull // and the node is not ready: shoppers go elsewhere
	}
	if n := e.inflight.Add(1); n > int64(e.cfg.AdmissionMax) {
		e.inflight.Add(-1)
		return sale.ErrOverloaded
	}
	return nil
}

// answerFromReplica answers a purchase from this node's replica when the
// outcome is already known there; done is false when the owner must decide.
func (e *Engine) answerFromReplica(sh *raftstore.Shard, r sale.Request) (o orders.Order, dup, done bool, err error) {
	a := sh.FSM().Admission(r.ItemID, r.UserID, r.RequestID)
	switch {
	case a.Duplicate:
		return a.Original, true, true, nil
	case !a.Found && sh.Ready():
		return orders.Order{}, false, true, sale.ErrItemNotFound
	case !a.Found:
		return orders.Order{}, false, false, nil // maybe created a moment ago
	}
	if err := sale.Admit(&a.Item, r.Quantity, 0, e.now().UnixNano()); err != nil {
		return orders.Order{}, false, true, err
	}
	if a.Pending >= e.cfg.MaxUnflushed {
		return orders.Order{}, false, true, sale.ErrBacklogFull
	}
	return orders.Order{}, false, false, nil
}

// Pay pays a user's order within its payment window, on the leader of the
// order's shard. Paying twice is a no-op; paying an expired order is
// sale.ErrOrderExpired.
func (e *Engine) Pay(ctx context.Context, id uint64, user string) (orders.Order, error) {
	return e.onOrder(ctx, id, func(o orders.Order) (message, error) {
		if o.UserID != user {
			return nil, sale.ErrOrderNotFound
		}
		if e.store != nil && e.store.Shard(orders.ShardOfID(id)).PayWindow() == 0 {
			return nil, sale.ErrPaymentNotRequired // (a gateway's owner says so)
		}
		return &pay{orderID: id, userID: user}, nil
	})
}

// CancelOrder cancels an order for an admin, on the leader of the order's
// shard: its units go back to the sale and to the buyer's allowance.
// Cancelling twice answers the cancelled order again; a paid order is
// sale.ErrOrderPaid, an expired one sale.ErrOrderExpired, and one older than
// the shard keeps (--order-retention after it was stored)
// sale.ErrOrderNotCancellable.
func (e *Engine) CancelOrder(ctx context.Context, id uint64) (orders.Order, error) {
	return e.onOrder(ctx, id, func(orders.Order) (message, error) { return &cancelOrder{orderID: id}, nil })
}

// onOrder reads order id, to learn its item and so its owner, and sends
// the owner the command cmd makes of it (pay, cancel), or returns cmd's
// refusal. Both commands are idempotent, so an attempt whose outcome is
// unknown is sent again.
func (e *Engine) onOrder(ctx context.Context, id uint64, cmd func(orders.Order) (message, error)) (orders.Order, error) {
	if err := e.admit(); err != nil {
		return orders.Order{}, err
	}
	defer e.inflight.Add(-1)
	o, _, err := e.Order(ctx, id)
	if err != nil {
		return orders.Order{}, err
	}
	m, err := cmd(o)
	if err != nil {
		return orders.Order{}, err
	}
	reply, err := e.call(ctx, o.ItemID, m, true)
	if err != nil {
		return orders.Order{}, err
	}
	switch r := reply.(type) {
	case *Purchased:
		return r.Order, nil
	case *Rejected:
		if errors.Is(r.Err, sale.ErrOrderNotFound) {
			return orders.Order{}, sale.ErrOrderNotFound
		}
		return orders.Order{}, r.Err
	}
	return orders.Order{}, fmt.Errorf("actors: unexpected reply %T", reply)
}

// Inflight returns the number of this node's purchases in flight.
func (e *Engine) Inflight() int64 { return e.inflight.Load() }

// userBuckets is the number of token buckets of the per-shopper limit:
// bounded memory whatever the number of shoppers.
const userBuckets = 1 << 16

// allowShopper reports whether the shopper may buy the item now, under
// the per-shopper rate; only an item's owner asks.
func (e *Engine) allowShopper(item, user string) bool {
	if e.perUser == nil {
		return true
	}
	ok, _ := e.perUser.AllowPair(user, item)
	return ok
}
