// Package actors runs one virtual actor per sale item (protoactor kind
// "item") on the node that leads the item's Raft shard, and the Engine that
// routes requests to them from any node.
//
// The item actor is admission control and group commit, never the truth:
// it answers a sold-out item from the committed state without touching Raft,
// bounds how many purchases may wait, and sends the waiting purchases to
// Raft as one log entry while the previous entry is in flight. The Raft FSM
// checks and decrements; a purchase is confirmed only when its entry is
// committed. A stale or duplicate activation can therefore cost
// availability, never stock. See DESIGN.md.
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flashstock/flashstock/internal/breaker"
	"github.com/flashstock/flashstock/internal/ratelimit"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// KindItem is the protoactor kind of item actors.
const KindItem = "item"

// Config bounds the engine.
type Config struct {
	QueueMax       int           // purchases waiting in one item actor
	BatchMax       int           // purchases per Raft entry
	InflightMax    int           // Raft entries one item actor may have in flight
	RequestTimeout time.Duration // how long a caller waits for its answer
	MaxUnflushed   int           // confirmed orders per shard not yet in the order store
	// AdmissionMax bounds the purchases this node has in flight (its own
	// shoppers, waiting on any actor); beyond it, overloaded at once.
	AdmissionMax int
	// ItemCacheTTL bounds how stale an item read may be on a node that
	// holds no replica of the item's shard.
	ItemCacheTTL time.Duration
	// RateUser caps each shopper's purchases of one item, per second
	// (burst: twice the rate), wherever they come from: the item's owner,
	// which sees all of them, enforces it. 0 turns it off.
	RateUser float64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{QueueMax: 4096, BatchMax: 1024, InflightMax: 1, RequestTimeout: 5 * time.Second, MaxUnflushed: 1_000_000,
		AdmissionMax: 20000, ItemCacheTTL: time.Second}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.QueueMax < 1:
		return errors.New("actors: queue max must be positive")
	case c.BatchMax < 1 || c.BatchMax > sale.PurchasesPerEntryMax:
		return fmt.Errorf("actors: batch max must be 1..%d", sale.PurchasesPerEntryMax)
	case c.InflightMax < 1 || c.InflightMax > 64:
		return errors.New("actors: inflight max must be 1..64")
	case c.RequestTimeout <= 0:
		return errors.New("actors: request timeout must be positive")
	case c.MaxUnflushed < 1:
		return errors.New("actors: max unflushed must be positive")
	case c.AdmissionMax < 1:
		return errors.New("actors: admission max must be positive")
	case c.ItemCacheTTL < 0:
		return errors.New("actors: item cache ttl must not be negative")
	case c.RateUser < 0:
		return errors.New("actors: user rate must not be negative")
	}
	return nil
}

// Observer receives engine events, for metrics. Methods must not block.
type Observer interface {
	BatchApplied(shard, size int, elapsed time.Duration, err error)
}

// Deps are the engine's collaborators.
type Deps struct {
	Store    *raftstore.Store
	Sink     orders.Sink // for orders no longer in Raft
	Observer Observer    // may be nil
	Logger   *slog.Logger
	Now      func() time.Time // nil means time.Now

	// System is the actor system; nil creates one. Create it first when its
	// ID must be gossiped before the engine starts.
	System *actor.ActorSystem
	// Provider and Placement join the engine to a cluster; nil for both
	// runs this node alone (it owns what it leads).
	Provider  pcluster.ClusterProvider
	Placement Placement
	// ActorAddr is the host:port of actor remoting; empty means
	// 127.0.0.1 with a port chosen by the OS. ActorAdvertise, if set, is
	// the host:port other nodes reach it at.
	ActorAddr      string
	ActorAdvertise string
}

// NewActorSystem returns an actor system that logs through log.
func NewActorSystem(log *slog.Logger) *actor.ActorSystem {
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log.With("lib", "protoactor") }),
		actor.WithDeadLetterRequestLogging(false),
	)
}

// Engine routes item operations to item actors, on this node or another.
type Engine struct {
	cfg      Config
	store    *raftstore.Store
	sink     orders.Sink
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	sys      *actor.ActorSystem
	cluster  *pcluster.Cluster
	lookup   *LeaderLookup
	place    Placement
	provider pcluster.ClusterProvider

	closed   atomic.Bool
	applies  sync.WaitGroup // Raft applies started by item actors
	inflight atomic.Int64   // this node's purchases in flight

	breakers sync.Map           // remote actor address -> *breaker.Breaker
	perUser  *ratelimit.Limiter // shopper and item -> purchases; nil when off
	items    sync.Map           // item ID -> cachedItem, for items this node has no replica of

	router  *router                   // answers to this node's purchases on other nodes
	pulse   *pulse                    // wakes those purchases to re-check the owner
	deadSub *eventstream.Subscription // answers purchase calls that found no actor
	stop    chan struct{}             // closed by Close: stops the pulse
	bg      sync.WaitGroup            // the pulse goroutine
}

// cachedItem is an item as its owner last reported it.
type cachedItem struct {
	item sale.Item
	at   time.Time
}

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

// Breaker settings for calls to other nodes: after breakerThreshold
// failures in a row (timeouts, dead letters, a leader that moved away), a
// node is skipped for breakerCooldown.
const (
	breakerThreshold = 5
	breakerCooldown  = time.Second
	// staleItemMax is how old a cached item may be when its owner cannot
	// be reached: a degraded answer instead of an error.
	staleItemMax = 30 * time.Second
)

// NewEngine starts the actor system's cluster member and returns the
// engine. It takes about a second: protoactor's StartMember waits for its
// gossip to settle.
func NewEngine(cfg Config, deps Deps) (e *Engine, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.System == nil {
		deps.System = NewActorSystem(deps.Logger)
	}
	if deps.Placement == nil {
		deps.Placement = NewLocalPlacement(deps.Store)
	}
	if deps.Provider == nil {
		deps.Provider = StaticProvider{}
	}
	if deps.ActorAddr == "" {
		deps.ActorAddr = "127.0.0.1:0"
	}
	host, portStr, err := net.SplitHostPort(deps.ActorAddr)
	if err != nil {
		return nil, fmt.Errorf("actors: actor address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("actors: actor address: %w", err)
	}
	e = &Engine{
		cfg: cfg, store: deps.Store, sink: deps.Sink, obs: deps.Observer, log: deps.Logger, now: deps.Now,
		sys: deps.System, provider: deps.Provider, place: deps.Placement,
	}
	// A remote activation takes milliseconds; a dead owner never answers, and
	// the caller retries once placement has moved on.
	if cfg.RateUser > 0 {
		e.perUser = ratelimit.New(cfg.RateUser, int(math.Max(1, 2*cfg.RateUser)), userBuckets, nil)
	}
	e.lookup = NewLeaderLookup(deps.Placement, 500*time.Millisecond, deps.Logger)
	kind := pcluster.NewKind(KindItem, actor.PropsFromProducer(func() actor.Actor { return &itemActor{e: e} }))
	var ropts []remote.ConfigOption
	if deps.ActorAdvertise != "" {
		ropts = append(ropts, remote.WithAdvertisedHost(deps.ActorAdvertise))
	}
	cc := pcluster.Configure("flashstock", deps.Provider, e.lookup, remote.Configure(host, port, ropts...),
		pcluster.WithKinds(kind),
		pcluster.WithRequestTimeout(cfg.RequestTimeout),
		// Our provider decides who is a member; protoactor's own heartbeat
		// expiry would block a member forever after a long pause.
		pcluster.WithHeartbeatExpiration(24*time.Hour),
	)
	e.cluster = pcluster.New(deps.System, cc)
	// protoactor panics when remoting cannot listen or the provider fails.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("actors: start cluster member on %s: %v", deps.ActorAddr, r)
		}
	}()
	e.cluster.StartMember()
	e.router, e.pulse, e.stop = newRouter(), newPulse(), make(chan struct{})
	pid, ok := e.sys.ProcessRegistry.Add(e.router, routerName)
	if !ok {
		e.cluster.Shutdown(false)
		return nil, fmt.Errorf("actors: process %q already registered", routerName)
	}
	e.router.pid = pid
	e.deadSub = e.sys.EventStream.Subscribe(e.onDeadLetter)
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.pulse.run(e.stop)
	}()
	return e, nil
}

// ActorAddr returns the actor remoting address.
func (e *Engine) ActorAddr() string { return e.sys.Address() }

// OnLeadership stops the item actors of a shard this node no longer leads,
// so that a stale activation stops admitting purchases. It never blocks.
func (e *Engine) OnLeadership(shard int, leader bool) {
	if leader || e.lookup == nil {
		return
	}
	e.lookup.Deactivate(func(id string) bool { return e.store.ShardFor(id) == shard })
}

// Activations returns the number of item actors on this node.
func (e *Engine) Activations() int { return e.lookup.Activations() }

// CreateItem creates an item on its shard's leader.
func (e *Engine) CreateItem(ctx context.Context, it sale.Item) (sale.Item, error) {
	if !sale.ValidID(it.ID) || len(it.Name) > sale.NameLenMax {
		return sale.Item{}, sale.ErrInvalidRequest
	}
	c := raftstore.CreateItem{ID: it.ID, Name: it.Name, Stock: it.Stock, PerUserLimit: it.PerUserLimit,
		StartsAt: it.StartsAt, EndsAt: it.EndsAt}
	return e.callItem(ctx, c.ID, &createItem{cmd: c})
}

// Item returns an item: from this node's replica of its shard when it has
// one (at most a replication delay behind the leader), else from the owner.
//
// On a node without a replica, reads come from a local cache no older than
// ItemCacheTTL (the multi-level cache of a classic flash-sale design: the
// owner's FSM, then this cache); when the owner cannot be reached, a cached
// copy up to staleItemMax old is served rather than an error.
func (e *Engine) Item(ctx context.Context, id string) (sale.Item, error) {
	sh := e.store.Shard(e.store.ShardFor(id))
	if sh.Replica() {
		if it, ok := sh.FSM().Item(id); ok {
			return it, nil
		}
		if sh.Ready() {
			return sale.Item{}, sale.ErrItemNotFound
		}
	}
	c, cached := e.cachedItem(id)
	if cached && e.now().Sub(c.at) <= e.cfg.ItemCacheTTL {
		return c.item, nil
	}
	it, err := e.callItem(ctx, id, &getItem{})
	if err == nil {
		e.items.Store(id, cachedItem{item: it, at: e.now()})
		return it, nil
	}
	if cached && e.now().Sub(c.at) <= staleItemMax && errors.Is(err, sale.ErrUnavailable) {
		return c.item, nil // degraded: the owner is unreachable
	}
	return sale.Item{}, err
}

func (e *Engine) cachedItem(id string) (cachedItem, bool) {
	v, ok := e.items.Load(id)
	if !ok {
		return cachedItem{}, false
	}
	return v.(cachedItem), true
}

// noteSoldOut records in the cache that an item this node has no replica
// of is sold out, so the next shoppers here are answered without a hop.
func (e *Engine) noteSoldOut(id string) {
	if c, ok := e.cachedItem(id); ok {
		c.item.Remaining, c.at = 0, e.now()
		e.items.Store(id, c)
	}
}

// Restock adds delta units to an item.
func (e *Engine) Restock(ctx context.Context, id string, delta int64) (sale.Item, error) {
	return e.callItem(ctx, id, &restock{delta: delta})
}

// SetPaused pauses or resumes an item.
func (e *Engine) SetPaused(ctx context.Context, id string, paused bool) (sale.Item, error) {
	return e.callItem(ctx, id, &setPaused{paused: paused})
}

func (e *Engine) callItem(ctx context.Context, id string, m message) (sale.Item, error) {
	reply, err := e.call(ctx, id, m, true)
	if err != nil {
		return sale.Item{}, err
	}
	switch r := reply.(type) {
	case *itemReply:
		return r.item, nil
	case *Rejected:
		return sale.Item{}, r.Err
	}
	return sale.Item{}, fmt.Errorf("actors: unexpected reply %T", reply)
}

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
	sh := e.store.Shard(e.store.ShardFor(r.ItemID))
	if sh.Replica() {
		if o, dup, done, err := e.answerFromReplica(sh, r); done {
			return o, dup, err
		}
	} else if c, ok := e.cachedItem(r.ItemID); ok && e.now().Sub(c.at) <= e.cfg.ItemCacheTTL {
		if err := sale.Admit(&c.item, r.Quantity, 0, e.now().UnixNano()); err != nil {
			return orders.Order{}, false, err
		}
	}
	reply, err := e.call(ctx, r.ItemID, &Purchase{Request: r}, r.RequestID != "")
	if err != nil {
		return orders.Order{}, false, err
	}
	switch m := reply.(type) {
	case *Purchased:
		return m.Order, m.Duplicate, nil
	case *Rejected:
		if errors.Is(m.Err, sale.ErrSoldOut) && !sh.Replica() {
			e.noteSoldOut(r.ItemID)
		}
		return orders.Order{}, false, m.Err
	}
	return orders.Order{}, false, fmt.Errorf("actors: unexpected reply %T", reply)
}

// admit counts a purchase or a payment in this node's in-flight work, or
// refuses it when the node is closing or at --admission-max. The caller
// ends it with e.inflight.Add(-1).
func (e *Engine) admit() error {
	if e.closed.Load() {
		return sale.ErrClosed
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
				if err != nil {
					brk.Failure()
				} else {
					brk.Success()
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

// breaker returns the circuit breaker of a remote actor address.
func (e *Engine) breaker(addr string) *breaker.Breaker {
	if b, ok := e.breakers.Load(addr); ok {
		return b.(*breaker.Breaker)
	}
	b, _ := e.breakers.LoadOrStore(addr, breaker.New(breakerThreshold, breakerCooldown, e.now))
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

// Inflight returns the number of this node's purchases in flight.
func (e *Engine) Inflight() int64 { return e.inflight.Load() }

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

// reply sends msg to a waiting caller: as it is to a local one, encoded to
// a remote one.
func (e *Engine) reply(to *actor.PID, msg message) {
	if to.Address == e.sys.Address() {
		e.sys.Root.Send(to, msg)
		return
	}
	e.sys.Root.Send(to, encode(msg))
}

// ownerlessMax is how long a request waits for its item's shard to have a
// leader before it is answered 503.
const ownerlessMax = time.Second

// errOwnerMoved: the item's owner changed while a request waited on the
// old one.
var errOwnerMoved = errors.New("actors: item owner moved")

// ownerPollInterval is how often a request waiting on another node checks
// that the node still owns the item.
const ownerPollInterval = 50 * time.Millisecond

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

// Order returns an order in its latest state and whether that state is
// already in the order store.
func (e *Engine) Order(ctx context.Context, id uint64) (orders.Order, bool, error) {
	shard := orders.ShardOfID(id)
	if shard >= e.store.Shards() {
		return orders.Order{}, false, sale.ErrOrderNotFound
	}
	sh := e.store.Shard(shard)
	if o, stored, ok := sh.FSM().LookupOrder(id); ok {
		return o, stored, nil
	}
	// Confirmed on the leader a moment ago, but not yet applied here: read
	// your own writes, whichever node you ask. (WaitApplied returns at once
	// when the entry is applied: an older order is in the store.)
	if sh.WaitApplied(ctx, orders.IndexOfID(id), orderCatchUpMax) {
		if o, stored, ok := sh.FSM().LookupOrder(id); ok {
			return o, stored, nil
		}
	}
	o, err := e.sink.Get(ctx, id)
	if errors.Is(err, orders.ErrNotFound) {
		return orders.Order{}, false, sale.ErrOrderNotFound
	}
	if err != nil {
		return orders.Order{}, false, err
	}
	return o, true, nil
}

// orderCatchUpMax bounds how long an order read waits for this node's
// replica to apply the entry that confirmed the order.
const orderCatchUpMax = time.Second

// Pay pays a user's order within its payment window, on the leader of the
// order's shard. Paying twice is a no-op; paying an expired order is
// sale.ErrOrderExpired.
func (e *Engine) Pay(ctx context.Context, id uint64, user string) (orders.Order, error) {
	if err := e.admit(); err != nil {
		return orders.Order{}, err
	}
	defer e.inflight.Add(-1)
	o, _, err := e.Order(ctx, id)
	if err != nil {
		return orders.Order{}, err
	}
	if o.UserID != user {
		return orders.Order{}, sale.ErrOrderNotFound
	}
	if e.store.Shard(orders.ShardOfID(id)).PayWindow() == 0 {
		return orders.Order{}, sale.ErrPaymentNotRequired
	}
	reply, err := e.call(ctx, o.ItemID, &pay{orderID: id, userID: user}, true)
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

// Close stops admitting purchases, stops every item actor (each answers its
// queued purchases) and waits for the Raft applies already in flight, so
// that every shopper whose purchase was sent to Raft gets its answer. Then
// it leaves the actor cluster.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	// Purchases already admitted finish first: their messages may still sit
	// in actor mailboxes, and a stopped actor drops its mailbox. Past ctx,
	// the engine stops anyway and says what it abandoned.
	var err error
wait:
	for e.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("actors: waiting for purchases in flight: %w", ctx.Err())
			break wait
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.lookup.Shutdown()
	done := make(chan struct{})
	go func() { e.applies.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("actors: waiting for in-flight applies: %w", ctx.Err())
		}
	}
	close(e.stop)
	e.bg.Wait()
	e.sys.EventStream.Unsubscribe(e.deadSub)
	e.sys.ProcessRegistry.Remove(e.router.pid)
	_ = e.provider.Shutdown(false)
	e.cluster.Shutdown(false)
	return err
}
