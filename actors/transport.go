package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/sale"
)

// Purchases to an item owned by another node do not wait on protoactor
// futures. A future is a process registered per request, with a timer, and
// its answer is one remote message per purchase. Instead each node has one
// router: a process of its own under a fixed name, to which owners send
// their answers, many per message (an item actor answers a whole Raft entry
// at once), keyed by a call id the caller chose. Per purchase that is a map
// entry and a channel on the caller, and a share of one message back.
//
// A call is answered exactly once or not at all: its id is forgotten when
// the caller stops waiting, and a late answer finds nothing to deliver to.
// What the caller may conclude when no answer comes is decided in
// Engine.call, as for futures: a dead letter (the owner's activation is
// gone) comes back as ErrNotLeader, from the owner's dead-letter hook
// below; an owner that moves or dies while a call waits is seen by the
// placement watch (errOwnerMoved); otherwise the call times out.

// routerName is the router's process id on every node.
const routerName = "flashstock-router"

// router receives answers to this node's purchase calls. It is an
// actor.Process without a mailbox: protoactor's endpoint reader hands it
// each message on its own goroutine, and delivery is a map lookup and a
// non-blocking channel send.
type router struct {
	pid  *actor.PID
	next atomic.Uint64

	shards [64]struct {
		sync.Mutex
		calls map[uint64]chan message
		_     [40]byte // keep shards on separate cache lines
	}
}

// newRouter returns a router with no calls; NewEngine registers it under
// routerName.
func newRouter() *router {
	r := &router{}
	for i := range r.shards {
		r.shards[i].calls = make(map[uint64]chan message)
	}
	return r
}

// register returns a new call id and the channel its answer arrives on.
func (r *router) register() (uint64, chan message) {
	id := r.next.Add(1)
	ch := make(chan message, 1)
	s := &r.shards[id%uint64(len(r.shards))]
	s.Lock()
	s.calls[id] = ch
	s.Unlock()
	return id, ch
}

// forget drops a call; an answer that comes later is discarded.
func (r *router) forget(id uint64) {
	s := &r.shards[id%uint64(len(r.shards))]
	s.Lock()
	delete(s.calls, id)
	s.Unlock()
}

// PendingCalls returns the number of this node's purchases waiting for an
// answer from another node.
func (e *Engine) PendingCalls() int { return e.router.pending() }

// pending counts the calls registered and neither answered nor forgotten.
func (r *router) pending() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.Lock()
		n += len(s.calls)
		s.Unlock()
	}
	return n
}

// deliver hands m to the call registered under id and forgets the call;
// an id it does not know (answered already, or forgotten) drops m.
func (r *router) deliver(id uint64, m message) {
	s := &r.shards[id%uint64(len(r.shards))]
	s.Lock()
	ch, ok := s.calls[id]
	delete(s.calls, id)
	s.Unlock()
	if ok {
		ch <- m // buffered for one; each id is delivered at most once
	}
}

// SendUserMessage implements actor.Process. Anything but a replies message
// (protoactor's uncorrelated DeadLetterResponse, for one) is ignored.
func (r *router) SendUserMessage(_ *actor.PID, msg any) {
	_, m, _ := actor.UnwrapEnvelope(msg)
	bv, ok := m.(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	dec, err := decode(bv)
	rs, ok := dec.(replies)
	if err != nil || !ok {
		return
	}
	for _, rr := range rs {
		r.deliver(rr.id, rr.msg)
	}
}

// SendSystemMessage implements actor.Process.
func (r *router) SendSystemMessage(*actor.PID, any) {}

// Stop implements actor.Process.
func (r *router) Stop(*actor.PID) {}

// callRemote sends a purchase to its owner on another node and waits for
// the answer, for at most timeout. It gives up early when ctx ends or when
// the placement says another node owns the item now (errOwnerMoved): the
// old owner may be dead, and its answer would never come.
func (e *Engine) callRemote(ctx context.Context, itemID string, pid *actor.PID, req sale.Request, timeout time.Duration) (message, error) {
	id, ch := e.router.register()
	defer e.router.forget(id)
	e.sys.Root.RequestWithCustomSender(pid, encode(&purchaseCall{id: id, req: req}), e.router.pid)
	return waitAnswer(ctx, e, ch, itemID, pid, timeout)
}

// localPurchase is a purchase from this node to an item actor on this
// node. Its answer goes straight to the caller's channel: no future either.
type localPurchase struct {
	req   sale.Request
	reply chan message // buffered for one
}

// answer hands m to the caller; it never blocks (one answer per purchase).
func (lp *localPurchase) answer(m message) {
	select {
	case lp.reply <- m:
	default:
	}
}

// callLocal sends a purchase to an item actor on this node and waits for
// the answer, for at most timeout, or until this node no longer owns the
// item (errOwnerMoved: the actor was stopped, and whatever its mailbox held
// is dropped).
func (e *Engine) callLocal(ctx context.Context, itemID string, pid *actor.PID, req sale.Request, timeout time.Duration) (message, error) {
	lp := &localPurchase{req: req, reply: make(chan message, 1)}
	e.sys.Root.Send(pid, lp)
	return waitAnswer(ctx, e, lp.reply, itemID, pid, timeout)
}

// waitAnswer waits for the answer on ch, for at most timeout. It gives up
// early when ctx ends, and when the placement names another owner than the
// node pid lives on (errOwnerMoved): that node may be dead or its actor
// stopped, and the answer would never come.
func waitAnswer[T any](ctx context.Context, e *Engine, ch <-chan T, itemID string, pid *actor.PID, timeout time.Duration) (T, error) {
	var zero T
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m := <-ch:
			return m, nil
		case <-ctx.Done():
			return zero, actor.ErrTimeout
		case <-timer.C:
			return zero, actor.ErrTimeout
		case <-e.pulse.C():
			if e.ownerMoved(itemID, pid) {
				return zero, errOwnerMoved
			}
		}
	}
}

// ownerMoved reports whether the placement names an owner of itemID other
// than the node pid lives on.
func (e *Engine) ownerMoved(itemID string, pid *actor.PID) bool {
	addr, local, ok := e.place.Owner(itemID)
	switch {
	case !ok:
		return false // no owner yet: keep waiting for the one we asked
	case pid.Address == e.sys.Address():
		return !local
	default:
		return local || addr != pid.Address
	}
}

// onDeadLetter answers a purchase that reached this node but no actor (the
// item's activation had stopped): certainly not applied, so the caller may
// try the current owner.
func (e *Engine) onDeadLetter(ev any) {
	dl, ok := ev.(*actor.DeadLetterEvent)
	if !ok {
		return
	}
	if lp, ok := dl.Message.(*localPurchase); ok {
		lp.answer(&Rejected{Err: sale.ErrNotLeader})
		return
	}
	if dl.Sender == nil {
		return
	}
	bv, ok := dl.Message.(*wrapperspb.BytesValue)
	if !ok || len(bv.GetValue()) == 0 || msgKind(bv.GetValue()[0]) != msgPurchaseCall {
		return
	}
	if m, err := decode(bv); err == nil {
		pc := m.(*purchaseCall)
		e.sys.Root.Send(dl.Sender, encode(replies{{id: pc.id, msg: &Rejected{Err: sale.ErrNotLeader}}}))
	}
}

// errOwnerMoved: the item's owner changed while a request waited on the
// old one.
var errOwnerMoved = errors.New("actors: item owner moved")

// ownerPollInterval is how often a request waiting on another node checks
// that the node still owns the item.
const ownerPollInterval = 50 * time.Millisecond

// reply sends msg to a waiting caller: as it is to a local one, encoded to
// a remote one.
func (e *Engine) reply(to *actor.PID, msg message) {
	if to.Address == e.sys.Address() {
		e.sys.Root.Send(to, msg)
		return
	}
	e.sys.Root.Send(to, encode(msg))
}

// pulse is closed and replaced every ownerPollInterval, so that calls
// waiting on another node re-check their item's owner without a timer each.
type pulse struct {
	mu sync.Mutex
	ch chan struct{}
}

// newPulse returns a pulse that beats once run is started.
func newPulse() *pulse { return &pulse{ch: make(chan struct{})} }

// C returns the channel the next beat closes.
func (p *pulse) C() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ch
}

// beat wakes everyone waiting on the current channel and starts the next.
func (p *pulse) beat() {
	p.mu.Lock()
	close(p.ch)
	p.ch = make(chan struct{})
	p.mu.Unlock()
}

// run beats until stop is closed.
func (p *pulse) run(stop <-chan struct{}) {
	t := time.NewTicker(ownerPollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.beat()
		}
	}
}
