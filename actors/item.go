package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// Purchase asks an item actor to buy. The reply is *Purchased or *Rejected.
type Purchase struct{ Request sale.Request }

// Purchased is the reply for a committed purchase.
type Purchased struct {
	Order     orders.Order
	Duplicate bool // the request ID was seen before; Order is the original
}

// Rejected is the reply for a purchase that did not happen (a business
// outcome such as sale.ErrSoldOut, or an admission error such as
// sale.ErrOverloaded), or whose outcome is unknown (sale.ErrUnknownOutcome).
type Rejected struct{ Err error }

// batchApplied tells the actor one of its in-flight entries is done and
// how many units it had reserved.
type batchApplied struct{ reserved int64 }

// waiting is a purchase in an item actor's queue. A purchase from another
// node carries the call id its answer goes back under (transport.go); one
// from this node carries the caller's channel (local); one from a node of an
// older version is answered through its future (sender, callID 0).
type waiting struct {
	sender *actor.PID
	callID uint64
	local  *localPurchase
	req    sale.Request
}

// itemActor owns the admission state of one item on the shard leader:
// the purchases waiting for the next Raft entry, and the entries in
// flight. Its stock figure is always read from the FSM, which the actor
// never modifies directly.
type itemActor struct {
	e     *Engine
	id    string
	shard *raftstore.Shard

	queue    []waiting // bounded by Config.QueueMax
	inflight int       // entries in flight, at most Config.InflightMax
	reserved int64     // units the entries in flight may take
}

func (a *itemActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		a.id = m.Identity.Identity
		a.shard = a.e.store.Shard(a.e.store.ShardFor(a.id))
	case *wrapperspb.BytesValue: // from another node
		msg, err := decode(m)
		if err != nil {
			a.e.log.Warn("item actor: bad message", "item", a.id, "err", err)
			return
		}
		if pc, ok := msg.(*purchaseCall); ok {
			a.enqueue(ctx, waiting{sender: ctx.Sender(), callID: pc.id, req: pc.req})
			return
		}
		a.receive(ctx, ctx.Sender(), msg)
	case *localPurchase: // from this node
		a.enqueue(ctx, waiting{local: m, req: m.req})
	case *getItem, *createItem, *restock, *setPaused, *endSale, *pay, *cancelOrder: // from this node
		a.receive(ctx, ctx.Sender(), m)
	case *batchApplied:
		a.inflight--
		a.reserved -= m.reserved
		a.flush(ctx)
	case *actor.Stopping:
		// Not yet sent to Raft: a definite "not applied".
		ans := answers{e: a.e}
		for _, w := range a.queue {
			ans.add(w, &Rejected{Err: sale.ErrNotLeader})
		}
		ans.send()
		a.queue = nil
	}
}

// enqueue queues a purchase for the next Raft entry, or answers
// overloaded when the queue is full. A purchase with a request ID that
// already bought (a retry after a leader moved) gets its original order
// instead: the first attempt may have committed, and "overloaded" would
// tell its shopper that nothing happened.
func (a *itemActor) enqueue(ctx actor.Context, w waiting) {
	if len(a.queue) >= a.e.cfg.QueueMax {
		ans := answers{e: a.e}
		if o, ok := a.lookupRequest(w.req); ok {
			ans.add(w, &Purchased{Order: o, Duplicate: true})
		} else {
			ans.add(w, &Rejected{Err: sale.ErrOverloaded})
		}
		ans.send()
		return
	}
	if a.e.store.DiskTrouble() { // the log must keep room for what it confirms
		ans := answers{e: a.e}
		ans.add(w, &Rejected{Err: sale.ErrDiskFull})
		ans.send()
		return
	}
	if !a.e.allowShopper(a.id, w.req.UserID) {
		ans := answers{e: a.e}
		ans.add(w, &Rejected{Err: sale.ErrRateLimited})
		ans.send()
		return
	}
	a.queue = append(a.queue, w)
	a.flush(ctx)
}

func (a *itemActor) receive(ctx actor.Context, sender *actor.PID, msg message) {
	switch m := msg.(type) {
	case *Purchase: // from a node running an older version: answered through its future
		a.enqueue(ctx, waiting{sender: sender, req: m.Request})
	case *getItem:
		if !a.shard.Ready() {
			a.e.reply(sender, &Rejected{Err: sale.ErrNotLeader})
			return
		}
		it, ok := a.shard.FSM().Item(a.id)
		if !ok {
			a.e.reply(sender, &Rejected{Err: sale.ErrItemNotFound})
			return
		}
		a.e.reply(sender, &itemReply{item: it})
	case *createItem:
		a.admin(sender, a.e.checkCreate(m.cmd.ID), func(sh *raftstore.Shard) (sale.Item, error) { return sh.CreateItem(m.cmd) })
	case *restock:
		id := a.id
		a.admin(sender, func(sh *raftstore.Shard) error {
			if it, ok := sh.FSM().Item(id); ok {
				return it.CheckRestock(m.delta)
			}
			return nil // the FSM answers item_not_found
		}, func(sh *raftstore.Shard) (sale.Item, error) { return sh.Restock(id, m.delta) })
	case *setPaused:
		a.admin(sender, nil, func(sh *raftstore.Shard) (sale.Item, error) { return sh.SetPaused(a.id, m.paused) })
	case *endSale:
		a.admin(sender, nil, func(sh *raftstore.Shard) (sale.Item, error) { return sh.EndSale(a.id) })
	case *pay:
		if a.shard.PayWindow() == 0 { // asked by a gateway, which cannot tell
			a.e.reply(sender, &Rejected{Err: sale.ErrPaymentNotRequired})
			return
		}
		a.orderCommand(sender, func(sh *raftstore.Shard) (orders.Order, error) { return sh.Pay(m.orderID, m.userID) })
	case *cancelOrder:
		a.orderCommand(sender, func(sh *raftstore.Shard) (orders.Order, error) { return sh.Cancel(m.orderID) })
	default:
		a.e.reply(sender, &Rejected{Err: sale.ErrUnavailable})
	}
}

// checkCreate refuses a new item on a shard that holds
// sale.ItemsPerShardMax items (e.itemsMax). An ID that exists is let through: the FSM
// answers item_exists, which a create sent again after an unknown outcome
// relies on.
func (e *Engine) checkCreate(id string) func(*raftstore.Shard) error {
	return func(sh *raftstore.Shard) error {
		if _, exists := sh.FSM().Item(id); !exists && sh.FSM().Stats().Items >= e.itemsMax {
			return sale.ErrItemsFull
		}
		return nil
	}
}

// admin applies an admin command on its own goroutine, so that the Raft
// round does not hold up purchases, and answers the caller. A command with
// a check (a bound the committed state must allow) holds its shard's admin
// lock from the check to the commit, so that two checked commands of one
// shard cannot both pass against the same state: the check is exact on
// this leader. (The FSM applies what it is given; the bounds are checked
// here, before Raft.)
func (a *itemActor) admin(sender *actor.PID, check func(*raftstore.Shard) error, apply func(*raftstore.Shard) (sale.Item, error)) {
	e, sh := a.e, a.shard
	e.applies.Add(1)
	go func() {
		defer e.applies.Done()
		if check != nil {
			mu := &e.adminMu[sh.ID()]
			mu.Lock()
			defer mu.Unlock()
			if err := check(sh); err != nil {
				e.reply(sender, &Rejected{Err: err})
				return
			}
		}
		it, err := apply(sh)
		if err != nil {
			e.reply(sender, &Rejected{Err: err})
			return
		}
		e.reply(sender, &itemReply{item: it})
	}()
}

// orderCommand applies a command on one of an order's (pay, cancel) on its
// own goroutine and answers the caller with the order or the refusal.
func (a *itemActor) orderCommand(sender *actor.PID, apply func(*raftstore.Shard) (orders.Order, error)) {
	e, sh := a.e, a.shard
	e.applies.Add(1)
	go func() {
		defer e.applies.Done()
		o, err := apply(sh)
		if err != nil {
			e.reply(sender, &Rejected{Err: err})
			return
		}
		e.reply(sender, &Purchased{Order: o})
	}()
}

// flush sends batches to Raft while fewer than InflightMax are in flight.
// The FSM's committed remaining stock minus the units reserved by entries
// in flight is what a new batch may take: a purchase larger than the
// committed stock is answered sold out here (entries in flight can only
// lower it), and one that fits only if an entry in flight fails waits for
// the next round.
func (a *itemActor) flush(ctx actor.Context) {
	for a.inflight < a.e.cfg.InflightMax && len(a.queue) > 0 {
		if !a.flushOne(ctx) {
			return
		}
	}
}

// flushOne sends one batch; it returns false when nothing could be sent.
func (a *itemActor) flushOne(ctx actor.Context) bool {
	fsm := a.shard.FSM()
	remaining, ok := fsm.Remaining(a.id)
	avail := remaining - a.reserved
	batch := make([]waiting, 0, min(len(a.queue), a.e.cfg.BatchMax))
	keep := a.queue[:0]
	var units int64
	ans := answers{e: a.e}
	defer ans.send()
	for _, w := range a.queue {
		q := int64(w.req.Quantity)
		switch {
		case !ok:
			ans.add(w, &Rejected{Err: sale.ErrItemNotFound})
		case len(batch) == a.e.cfg.BatchMax:
			keep = append(keep, w)
		case q > remaining:
			a.answerSoldOut(&ans, w)
		case q <= avail:
			batch = append(batch, w)
			avail -= q
			units += q
		default:
			keep = append(keep, w)
		}
	}
	clear(a.queue[len(keep):])
	a.queue = keep
	if len(batch) == 0 {
		return false
	}
	a.inflight++
	a.reserved += units
	a.apply(ctx.Self(), batch, units)
	return true
}

// answerSoldOut answers a purchase that cannot fit, unless its request ID
// already bought (a retry racing its original).
func (a *itemActor) answerSoldOut(ans *answers, w waiting) {
	if o, ok := a.lookupRequest(w.req); ok {
		ans.add(w, &Purchased{Order: o, Duplicate: true})
		return
	}
	ans.add(w, &Rejected{Err: sale.ErrSoldOut})
}

// lookupRequest returns the order an earlier purchase with the same
// request ID made, if the FSM remembers one.
func (a *itemActor) lookupRequest(r sale.Request) (orders.Order, bool) {
	if r.RequestID == "" {
		return orders.Order{}, false
	}
	return a.shard.FSM().LookupRequest(a.id, r.UserID, r.RequestID)
}

// apply replicates a batch on its own goroutine, owned by the engine's
// applies group. It answers the shoppers itself, so that they get their
// answers even if this activation has stopped meanwhile, then tells the
// actor to send the next batch.
func (a *itemActor) apply(self *actor.PID, batch []waiting, units int64) {
	e, sh, id := a.e, a.shard, a.id
	e.applies.Add(1)
	go func() {
		defer e.applies.Done()
		ps := make([]raftstore.Purchase, len(batch))
		for i, w := range batch {
			ps[i] = raftstore.Purchase{UserID: w.req.UserID, RequestID: w.req.RequestID, Quantity: w.req.Quantity}
		}
		start := time.Now()
		res, err := sh.PurchaseBatch(id, ps)
		if e.obs != nil {
			e.obs.BatchApplied(sh.ID(), len(batch), time.Since(start), err)
		}
		root := e.sys.Root
		ans := answers{e: e}
		for i, w := range batch {
			var reply message
			switch {
			case err != nil:
				reply = &Rejected{Err: err}
			case res[i].Outcome == sale.OutcomeConfirmed || res[i].Outcome == sale.OutcomeDuplicate:
				reply = &Purchased{Order: res[i].Order, Duplicate: res[i].Outcome == sale.OutcomeDuplicate}
			default:
				reply = &Rejected{Err: res[i].Outcome.Err()}
			}
			ans.add(w, reply)
		}
		ans.send()
		root.Send(self, &batchApplied{reserved: units})
	}()
}
