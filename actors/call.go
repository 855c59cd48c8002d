package actors

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/internal/breaker"
	"github.com/flashstock/flashstock/sale"
)

// call sends m to the item's actor, wherever it lives, and returns the
// reply. It retries, within the request timeout, whatever certainly did not
// reach Raft: no owner known yet, a dead letter (the activation stopped), a
// "not the leader" answer from a stale activation. An answer whose outcome
// is unknown is retried only when idempotent (the purchase has a request
// ID), so that the shopper gets a definite answer where one exists.
//
// Once an attempt may have reached Raft (the owner moved while we waited,
// or answered "outcome unknown"), the call can no longer end in a definite
// refusal that does not come from the state: a full queue, a missing
// leader, an open breaker, a deadline all answer sale.ErrUnknownOutcome,
// because the first attempt may have bought. Only the state machine's
// replica, which looks the request ID up before it decides (sold out,
// limit exceeded, not on sale), may still say no.
func (e *Engine) call(ctx context.Context, id string, m message, idempotent bool) (message, error) {
	var env *wrapperspb.BytesValue                   // encoded once, only for remote owners
	deadline := time.Now().Add(e.cfg.RequestTimeout) // real time: e.now is the sale clock
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	uncertain := false // an attempt may have reached Raft
	refuse := func(err error) (message, error) { return nil, settle(err, uncertain) }
	backoff := 5 * time.Millisecond
	var ownerless time.Time // since when no node has owned the item
	for {
		if e.closed.Load() {
			return refuse(sale.ErrClosed)
		}
		pid := e.pid(id)
		if pid == nil {
			// An election takes well under a second; a shard without a
			// leader for longer (this node cut off from the majority) is
			// answered at once rather than at the request timeout.
			if e.noOwners != nil && e.noOwners() {
				return refuse(fmt.Errorf("%w: no core node is reachable", sale.ErrUnavailable))
			}
			if ownerless.IsZero() {
				ownerless = time.Now()
			} else if time.Since(ownerless) > ownerlessMax {
				return refuse(fmt.Errorf("%w: no leader for item %s", sale.ErrUnavailable, id))
			}
		} else {
			ownerless = time.Time{}
		}
		var brk *breaker.Breaker
		if pid != nil && pid.Address != e.sys.Address() {
			brk = e.breaker(pid.Address)
			if !brk.Allow() {
				return refuse(fmt.Errorf("%w: node %s is failing (circuit open)", sale.ErrUnavailable, pid.Address))
			}
		}
		if pid != nil {
			left := time.Until(deadline)
			if left <= 0 {
				if brk != nil {
					brk.Cancel() // nothing was sent: not the peer's failure
				}
				return refuse(sale.ErrTimeout)
			}
			var res any
			var err error
			switch p, isPurchase := m.(*Purchase); {
			case isPurchase && pid.Address == e.sys.Address():
				res, err = e.callLocal(ctx, id, pid, p.Request, left)
			case isPurchase:
				res, err = e.callRemote(ctx, id, pid, p.Request, left)
			case pid.Address == e.sys.Address(): // a local actor takes the message as it is
				res, err = e.await(ctx, id, pid, m, left)
			default:
				if env == nil {
					env = encode(m)
				}
				res, err = e.await(ctx, id, pid, env, left)
			}
			if brk != nil {
				switch {
				case err == nil:
					brk.Success()
				case ctx.Err() != nil:
					brk.Cancel() // the shopper left: says nothing of the peer
				default:
					brk.Failure()
				}
			}
			switch {
			case errors.Is(err, errOwnerMoved):
				// The leader moved while we waited: the old one may or may
				// not have committed. Idempotent requests ask the new one.
				e.cluster.PidCache.RemoveByValue(id, KindItem, pid)
				uncertain = true
				if !idempotent {
					return nil, sale.ErrUnknownOutcome
				}
			case errors.Is(err, actor.ErrTimeout):
				return nil, sale.ErrTimeout
			case err != nil: // dead letter: the activation is gone, nothing applied
				e.cluster.PidCache.RemoveByValue(id, KindItem, pid)
			default:
				reply, err := asMessage(res)
				if err != nil {
					return nil, err
				}
				rej, ok := reply.(*Rejected)
				if !ok {
					return reply, nil
				}
				unknown := errors.Is(rej.Err, sale.ErrUnknownOutcome)
				if !errors.Is(rej.Err, sale.ErrNotLeader) && !(idempotent && unknown) {
					if err := settle(rej.Err, uncertain); err != rej.Err {
						return nil, err
					}
					return reply, nil
				}
				// Not applied, or (idempotent) unknown: ask the owner again.
				uncertain = uncertain || unknown
				e.cluster.PidCache.RemoveByValue(id, KindItem, pid)
			}
		}
		if time.Until(deadline) < backoff {
			if uncertain {
				return nil, sale.ErrUnknownOutcome
			}
			return nil, fmt.Errorf("%w: no leader for item %s", sale.ErrUnavailable, id)
		}
		select {
		case <-ctx.Done():
			return refuse(sale.ErrTimeout)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

// settle returns the answer of a call that ends in the refusal err: err
// itself, or, once an attempt may have reached Raft (uncertain), an
// unknown outcome for every refusal the item's state did not decide.
func settle(err error, uncertain bool) error {
	if uncertain && !decidedByState(err) {
		return fmt.Errorf("%w: an earlier attempt may have committed (%v)", sale.ErrUnknownOutcome, err)
	}
	return err
}

// decidedByState reports whether a refusal comes from the item's committed
// state (sold out, limit exceeded, not on sale, no such item...), which the
// owner's replica decides after it has looked the request ID up, rather
// than from a bound, a missing leader or a deadline.
func decidedByState(err error) bool {
	c, ok := sale.CodeOf(err)
	return ok && c.Definite && c.Status < 500 && c.Status != http.StatusTooManyRequests
}

// ownerlessMax is how long a request waits for its item's shard to have a
// leader before it is answered 503.
const ownerlessMax = time.Second

// Breaker settings for calls to other nodes: after breakerThreshold
// failures in a row (timeouts, dead letters, a leader that moved away), a
// node is skipped for breakerCooldown.
const (
	breakerThreshold = 5
	breakerCooldown  = time.Second
)

// breaker returns the circuit breaker of a remote actor address.
func (e *Engine) breaker(addr string) *breaker.Breaker {
	if b, ok := e.breakers.Load(addr); ok {
		return b.(*breaker.Breaker)
	}
	nb := breaker.New(breakerThreshold, breakerCooldown, e.now)
	nb.OnChange(func(from, to breaker.State) {
		e.log.Warn("circuit breaker", "peer", addr, "from", from.String(), "to", to.String())
		if e.obs != nil {
			e.obs.BreakerChanged(addr, to.String())
		}
	})
	b, _ := e.breakers.LoadOrStore(addr, nb)
	return b.(*breaker.Breaker)
}

// Breakers returns the state of every remote node's circuit breaker.
func (e *Engine) Breakers() map[string]string {
	out := map[string]string{}
	e.breakers.Range(func(k, v any) bool {
		out[k.(string)] = v.(*breaker.Breaker).State().String()
		return true
	})
	return out
}

// await sends env to pid and waits for the reply. A local actor is simply
// awaited: if this node dies, so does the caller. A remote one may die or
// lose its leadership while we wait; then its reply would come only at the
// timeout, so await watches the placement and gives up as soon as another
// node owns the item (errOwnerMoved). The waiting goroutine ends at the
// future's timeout at the latest.
func (e *Engine) await(ctx context.Context, id string, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	fut := e.sys.Root.RequestFuture(pid, msg, timeout)
	if pid.Address == e.sys.Address() {
		return fut.Result()
	}
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := fut.Result()
		done <- result{res, err}
	}()
	r, err := waitAnswer(ctx, e, done, id, pid, timeout)
	if err != nil {
		return nil, err
	}
	return r.res, r.err
}

// pid returns the item's actor, from the cluster's cache when it still
// points at the current owner, else from the lookup.
func (e *Engine) pid(id string) *actor.PID {
	addr, local, ok := e.place.Owner(id)
	if !ok {
		return nil
	}
	if local {
		addr = e.sys.Address()
	}
	if pid, ok := e.cluster.PidCache.Get(id, KindItem); ok {
		if pid.Address == addr {
			return pid
		}
		e.cluster.PidCache.RemoveByValue(id, KindItem, pid) // the leader moved
	}
	pid := e.lookup.Get(pcluster.NewClusterIdentity(id, KindItem))
	if pid != nil {
		e.cluster.PidCache.Set(id, KindItem, pid)
	}
	return pid
}

// asMessage turns an actor's reply into a message: as sent by a local
// actor, or decoded from a remote one's envelope.
func asMessage(res any) (message, error) {
	switch r := res.(type) {
	case *wrapperspb.BytesValue:
		return decode(r)
	case *Purchased, *Rejected, *itemReply:
		return r, nil
	}
	return nil, fmt.Errorf("actors: unexpected reply %T", res)
}
