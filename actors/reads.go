package actors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Order reads through a gateway. A gateway holds no shard, so it cannot
// read an order from a replica; it asks the node that leads the order's
// shard (the order ID says which shard), whose Engine.Order answers from
// its state machine or, for an order already flushed, from its order
// store. A user's orders are asked of every node that leads a shard, and
// merged. Each node runs one reads actor under a well-known name for this;
// the actor only decodes and hands the read to a goroutine, bounded by
// readsMax, so a slow order store never stalls it.

// ReadsName is the well-known actor name of every node's reads actor.
const ReadsName = "flashstock-reads"

// readsMax bounds the reads one node serves for others at once; past it,
// overloaded.
const readsMax = 256

// readTimeout bounds one read on the serving node, and what a gateway
// waits for it (plus a margin for the network).
const readTimeout = 2 * time.Second

// startReads spawns the reads actor.
func (e *Engine) startReads() error {
	e.readSlots = make(chan struct{}, readsMax)
	pid, err := e.sys.Root.SpawnNamed(actor.PropsFromFunc(e.receiveRead), ReadsName)
	if err != nil {
		return fmt.Errorf("actors: spawn reads actor: %w", err)
	}
	e.readsPID = pid
	return nil
}

func (e *Engine) receiveRead(ctx actor.Context) {
	env, ok := ctx.Message().(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	msg, err := decode(env)
	if err != nil {
		e.log.Warn("reads actor: bad message", "from", sender.Address, "err", err)
		return
	}
	select {
	case e.readSlots <- struct{}{}:
	default:
		e.reply(sender, &Rejected{Err: sale.ErrOverloaded})
		return
	}
	e.applies.Add(1) // Close waits for it like for an apply
	go func() {
		defer e.applies.Done()
		defer func() { <-e.readSlots }()
		rctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		e.reply(sender, e.serveRead(rctx, msg))
	}()
}

// serveRead answers a read for a gateway from this node's replicas and
// order store.
func (e *Engine) serveRead(ctx context.Context, msg message) message {
	switch m := msg.(type) {
	case *getOrder:
		if e.store == nil {
			return &Rejected{Err: sale.ErrNotLeader}
		}
		o, stored, err := e.Order(ctx, m.id)
		if err != nil {
			return &Rejected{Err: err}
		}
		return &Purchased{Order: o, Duplicate: stored}
	case *userOrders:
		if e.store == nil {
			return &Rejected{Err: sale.ErrNotLeader}
		}
		os, err := e.UserOrders(ctx, m.user, min(m.limit, orderListMax))
		if err != nil {
			return &Rejected{Err: err}
		}
		return orderList(os)
	}
	return &Rejected{Err: sale.ErrUnavailable}
}

// remoteOrder reads an order on a gateway: from the leader of its shard.
func (e *Engine) remoteOrder(ctx context.Context, id uint64) (orders.Order, bool, error) {
	addr, _, ok := e.place.ShardOwner(orders.ShardOfID(id))
	if !ok && e.noOwners != nil && e.noOwners() {
		return orders.Order{}, false, fmt.Errorf("%w: no core node is reachable", sale.ErrUnavailable)
	}
	if !ok {
		return orders.Order{}, false, fmt.Errorf("%w: no leader for the order's shard", sale.ErrUnavailable)
	}
	reply, err := e.askReads(ctx, addr, &getOrder{id: id})
	if err != nil {
		return orders.Order{}, false, err
	}
	switch r := reply.(type) {
	case *Purchased:
		return r.Order, r.Duplicate, nil
	case *Rejected:
		return orders.Order{}, false, r.Err
	}
	return orders.Order{}, false, fmt.Errorf("actors: unexpected reply %T", reply)
}

// remoteUserOrders lists a user's orders on a gateway: every node that
// leads a shard answers with the orders pending in its replicas and those
// in its order store; the lists are merged, newest first. A shard without
// a reachable leader makes the list incomplete, and the read fails rather
// than answer with orders missing.
func (e *Engine) remoteUserOrders(ctx context.Context, user string, limit int) ([]orders.Order, error) {
	addrs := map[string]bool{}
	for s := 0; s < e.shards; s++ {
		addr, _, ok := e.place.ShardOwner(s)
		if !ok {
			return nil, fmt.Errorf("%w: no leader for shard %d", sale.ErrUnavailable, s)
		}
		addrs[addr] = true
	}
	type answer struct {
		list orderList
		err  error
	}
	answers := make(chan answer, len(addrs))
	for addr := range addrs {
		go func() { // ends within askReads' timeout
			reply, err := e.askReads(ctx, addr, &userOrders{user: user, limit: limit})
			if err == nil {
				switch r := reply.(type) {
				case orderList:
					answers <- answer{list: r}
					return
				case *Rejected:
					err = r.Err
				default:
					err = fmt.Errorf("actors: unexpected reply %T", reply)
				}
			}
			answers <- answer{err: err}
		}()
	}
	seen := map[uint64]bool{}
	var out []orders.Order
	var errs []error
	for range addrs {
		a := <-answers
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		for _, o := range a.list {
			if !seen[o.ID] {
				seen[o.ID] = true
				out = append(out, o)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// askReads sends a read to the reads actor at addr and returns its answer.
func (e *Engine) askReads(ctx context.Context, addr string, m message) (message, error) {
	timeout := readTimeout + 500*time.Millisecond
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	if timeout <= 0 {
		return nil, sale.ErrTimeout
	}
	res, err := e.sys.Root.RequestFuture(actor.NewPID(addr, ReadsName), encode(m), timeout).Result()
	if errors.Is(err, actor.ErrTimeout) {
		return nil, fmt.Errorf("%w: node %s did not answer a read", sale.ErrUnavailable, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sale.ErrUnavailable, err)
	}
	return asMessage(res)
}

// sortNewestFirst orders orders newest first, by ID among equals.
func sortNewestFirst(os []orders.Order) {
	sort.Slice(os, func(i, j int) bool {
		if !os[i].CreatedAt.Equal(os[j].CreatedAt) {
			return os[i].CreatedAt.After(os[j].CreatedAt)
		}
		return os[i].ID > os[j].ID
	})
}
