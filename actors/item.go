package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
)

// Purchase asks an item actor to buy. The reply is *Purchased or *Rejected.
type Purchase struct{ Request Request }

// Purchased is the reply for a committed purchase.
type Purchased struct {
	Order     orders.Order
	Duplicate bool // the request ID was seen before; Order is the original
}

// Rejected is the reply for a purchase that did not happen (a business
// outcome such as raftstore.ErrSoldOut, or an admission error such as
// ErrOverloaded), or whose outcome is unknown (raftstore.ErrUnknownOutcome).
type Rejected struct{ Err error }

// batchApplied tells the actor its in-flight entry is done.
type batchApplied struct{}

type waiting struct {
	sender *actor.PID
	req    Request
}

// itemActor owns the admission state of one item on the shard leader:
// the purchases waiting for the next Raft entry, and whether one entry is
// in flight. Its stock figure is always read from the FSM, which the actor
// never modifies directly.
type itemActor struct {
	e     *Engine
	id    string
	shard *raftstore.Shard

	queue []waiting // bounded by Config.QueueMax
	busy  bool      // an entry is in flight
}

func (a *itemActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		a.id = m.Identity.Identity
		a.shard = a.e.store.Shard(a.e.store.ShardFor(a.id))
	case *wrapperspb.BytesValue:
		msg, err := decode(m)
		if err != nil {
			a.e.log.Warn("item actor: bad message", "item", a.id, "err", err)
			return
		}
		a.receive(ctx, ctx.Sender(), msg)
	case *batchApplied:
		a.busy = false
		a.flush(ctx)
	case *actor.Stopping:
		// Not yet sent to Raft: a definite "not applied".
		for _, w := range a.queue {
			ctx.Send(w.sender, encode(&Rejected{Err: raftstore.ErrNotLeader}))
		}
		a.queue = nil
	}
}

func (a *itemActor) receive(ctx actor.Context, sender *actor.PID, msg message) {
	switch m := msg.(type) {
	case *Purchase:
		if len(a.queue) >= a.e.cfg.QueueMax {
			ctx.Send(sender, encode(&Rejected{Err: ErrOverloaded}))
			return
		}
		a.queue = append(a.queue, waiting{sender: sender, req: m.Request})
		a.flush(ctx)
	case *getItem:
		if !a.shard.Ready() {
			ctx.Send(sender, encode(&Rejected{Err: raftstore.ErrNotLeader}))
			return
		}
		it, ok := a.shard.FSM().Item(a.id)
		if !ok {
			ctx.Send(sender, encode(&Rejected{Err: raftstore.ErrItemNotFound}))
			return
		}
		ctx.Send(sender, encode(&itemReply{item: it}))
	case *createItem:
		a.admin(sender, func(sh *raftstore.Shard) (raftstore.Item, error) { return sh.CreateItem(m.cmd) })
	case *restock:
		a.admin(sender, func(sh *raftstore.Shard) (raftstore.Item, error) { return sh.Restock(a.id, m.delta) })
	case *setPaused:
		a.admin(sender, func(sh *raftstore.Shard) (raftstore.Item, error) { return sh.SetPaused(a.id, m.paused) })
	default:
		ctx.Send(sender, encode(&Rejected{Err: raftstore.ErrUnavailable}))
	}
}

// admin applies an admin command on its own goroutine, so that the Raft
// round does not hold up purchases, and answers the caller.
func (a *itemActor) admin(sender *actor.PID, apply func(*raftstore.Shard) (raftstore.Item, error)) {
	e, sh := a.e, a.shard
	e.applies.Add(1)
	go func() {
		defer e.applies.Done()
		it, err := apply(sh)
		if err != nil {
			e.sys.Root.Send(sender, encode(&Rejected{Err: err}))
			return
		}
		e.sys.Root.Send(sender, encode(&itemReply{item: it}))
	}()
}

// flush sends the next batch to Raft unless one is in flight. With nothing
// in flight the FSM's remaining stock is exact, so a purchase larger than it
// is answered sold out here; purchases that fit only if an earlier one in
// this batch fails wait for the next round.
func (a *itemActor) flush(ctx actor.Context) {
	if a.busy || len(a.queue) == 0 {
		return
	}
	fsm := a.shard.FSM()
	remaining, ok := fsm.Remaining(a.id)
	avail := remaining
	batch := make([]waiting, 0, min(len(a.queue), a.e.cfg.BatchMax))
	keep := a.queue[:0]
	for _, w := range a.queue {
		q := int64(w.req.Quantity)
		switch {
		case !ok:
			ctx.Send(w.sender, encode(&Rejected{Err: raftstore.ErrItemNotFound}))
		case len(batch) == a.e.cfg.BatchMax:
			keep = append(keep, w)
		case q > remaining:
			a.answerSoldOut(ctx, w)
		case q <= avail:
			batch = append(batch, w)
			avail -= q
		default:
			keep = append(keep, w)
		}
	}
	clear(a.queue[len(keep):])
	a.queue = keep
	if len(batch) == 0 {
		return
	}
	a.busy = true
	a.apply(ctx.Self(), batch)
}

// answerSoldOut answers a purchase that cannot fit, unless its request ID
// already bought (a retry racing its original).
func (a *itemActor) answerSoldOut(ctx actor.Context, w waiting) {
	if w.req.RequestID != "" {
		if o, ok := a.shard.FSM().LookupRequest(w.req.UserID, w.req.RequestID); ok && o.ItemID == a.id {
			ctx.Send(w.sender, encode(&Purchased{Order: o, Duplicate: true}))
			return
		}
	}
	ctx.Send(w.sender, encode(&Rejected{Err: raftstore.ErrSoldOut}))
}

// apply replicates a batch on its own goroutine, owned by the engine's
// applies group. It answers the shoppers itself, so that they get their
// answers even if this activation has stopped meanwhile, then tells the
// actor to send the next batch.
func (a *itemActor) apply(self *actor.PID, batch []waiting) {
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
		for i, w := range batch {
			var reply message
			switch {
			case err != nil:
				reply = &Rejected{Err: err}
			case res[i].Outcome == raftstore.OutcomeConfirmed || res[i].Outcome == raftstore.OutcomeDuplicate:
				reply = &Purchased{Order: res[i].Order, Duplicate: res[i].Outcome == raftstore.OutcomeDuplicate}
			default:
				reply = &Rejected{Err: res[i].Outcome.Err()}
			}
			root.Send(w.sender, encode(reply))
		}
		root.Send(self, &batchApplied{})
	}()
}
