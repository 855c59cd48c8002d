package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

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
	case *Purchase:
		if len(a.queue) >= a.e.cfg.QueueMax {
			ctx.Respond(&Rejected{Err: ErrOverloaded})
			return
		}
		a.queue = append(a.queue, waiting{sender: ctx.Sender(), req: m.Request})
		a.flush(ctx)
	case *batchApplied:
		a.busy = false
		a.flush(ctx)
	case *actor.Stopping:
		// Not yet sent to Raft: a definite "not applied".
		for _, w := range a.queue {
			ctx.Send(w.sender, &Rejected{Err: raftstore.ErrNotLeader})
		}
		a.queue = nil
	}
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
			ctx.Send(w.sender, &Rejected{Err: raftstore.ErrItemNotFound})
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
			ctx.Send(w.sender, &Purchased{Order: o, Duplicate: true})
			return
		}
	}
	ctx.Send(w.sender, &Rejected{Err: raftstore.ErrSoldOut})
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
			switch {
			case err != nil:
				root.Send(w.sender, &Rejected{Err: err})
			case res[i].Outcome == raftstore.OutcomeConfirmed || res[i].Outcome == raftstore.OutcomeDuplicate:
				root.Send(w.sender, &Purchased{Order: res[i].Order, Duplicate: res[i].Outcome == raftstore.OutcomeDuplicate})
			default:
				root.Send(w.sender, &Rejected{Err: res[i].Outcome.Err()})
			}
		}
		root.Send(self, &batchApplied{})
	}()
}
