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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
	// BreakerChanged tells of a circuit breaker's new state ("closed",
	// "open", "half_open") for calls to a peer's actor address.
	BreakerChanged(peer, state string)
}

// Deps are the engine's collaborators.
type Deps struct {
	// Store is this node's shard groups. Nil makes the engine a gateway's:
	// it holds no replica, answers what it can from what the owners told
	// it (item snapshots no older than Config.ItemCacheTTL) and sends the
	// rest to the owners. Shards must then give the cluster's shard count.
	Store    *raftstore.Store
	Shards   int
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
	// NoOwners, if set, reports that no node that could own an item is
	// alive (a gateway that lost every core node): a request that finds
	// no owner is then answered 503 at once instead of after ownerlessMax.
	NoOwners func() bool
	// ActorAddr is the host:port of actor remoting; empty means
	// 127.0.0.1 with a port chosen by the OS. ActorAdvertise, if set, is
	// the host:port other nodes reach it at.
	ActorAddr      string
	ActorAdvertise string
	// Credentials, if set, secure actor remoting (protoactor's gRPC) in
	// both directions: its server takes only peers these credentials
	// accept, and its dials present them (internal/clustertls: mutual
	// TLS). Nil: plain gRPC, for loopback-only nodes.
	Credentials credentials.TransportCredentials
}

// NewActorSystem returns an actor system that logs through log.
func NewActorSystem(log *slog.Logger) *actor.ActorSystem {
	return actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log.With("lib", "protoactor") }),
		actor.WithDeadLetterRequestLogging(false),
	)
}

// handshakeTimeout bounds a secured actor connection's handshake.
const handshakeTimeout = 10 * time.Second

// Engine routes item operations to item actors, on this node or another.
type Engine struct {
	cfg      Config
	store    *raftstore.Store // nil on a gateway
	shards   int              // the cluster's shard count
	sink     orders.Sink      // nil on a gateway
	obs      Observer
	log      *slog.Logger
	now      func() time.Time
	sys      *actor.ActorSystem
	cluster  *pcluster.Cluster
	lookup   *LeaderLookup
	place    Placement
	noOwners func() bool
	provider pcluster.ClusterProvider

	closed   atomic.Bool
	applies  sync.WaitGroup // Raft applies started by item actors
	adminMu  []sync.Mutex   // per shard: a checked admin command, from its check to its commit
	itemsMax int            // items per shard: sale.ItemsPerShardMax (tests lower it)
	inflight atomic.Int64   // this node's purchases in flight

	breakers sync.Map           // remote actor address -> *breaker.Breaker
	perUser  *ratelimit.Limiter // shopper and item -> purchases; nil when off
	items    itemCache          // items this node has no replica of, as their owners told

	readsPID  *actor.PID    // the reads actor (reads.go)
	readSlots chan struct{} // reads served for gateways now, at most readsMax

	router  *router                   // answers to this node's purchases on other nodes
	pulse   *pulse                    // wakes those purchases to re-check the owner
	deadSub *eventstream.Subscription // answers purchase calls that found no actor
	stop    chan struct{}             // closed by Close: stops the pulse
	bg      sync.WaitGroup            // the pulse goroutine
}

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
	if deps.Store != nil {
		deps.Shards = deps.Store.Shards()
	}
	if deps.Shards < 1 {
		return nil, errors.New("actors: a gateway engine needs the cluster's shard count")
	}
	if deps.Placement == nil {
		if deps.Store == nil {
			return nil, errors.New("actors: a gateway engine needs a placement")
		}
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
		cfg: cfg, store: deps.Store, shards: deps.Shards, sink: deps.Sink, obs: deps.Observer, log: deps.Logger, now: deps.Now,
		sys: deps.System, provider: deps.Provider, place: deps.Placement, noOwners: deps.NoOwners,
		adminMu: make([]sync.Mutex, deps.Shards), itemsMax: sale.ItemsPerShardMax,
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
	sopts := []grpc.ServerOption{grpc.UnaryInterceptor(refuseUnary), grpc.StreamInterceptor(recoverStream(deps.Logger))}
	if deps.Credentials != nil {
		// The handshake of a connection that never completes one (a port
		// scan, a stranger) is cut after handshakeTimeout.
		sopts = append(sopts, grpc.Creds(deps.Credentials), grpc.ConnectionTimeout(handshakeTimeout))
		// Replaces protoactor's default, grpc.WithInsecure.
		ropts = append(ropts, remote.WithDialOptions(grpc.WithTransportCredentials(deps.Credentials)))
	}
	ropts = append(ropts, remote.WithServerOptions(sopts...))
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
	if err := e.startReads(); err != nil {
		e.sys.ProcessRegistry.Remove(e.router.pid)
		e.cluster.Shutdown(false)
		return nil, err
	}
	e.deadSub = e.sys.EventStream.Subscribe(e.onDeadLetter)
	e.bg.Add(2)
	go func() {
		defer e.bg.Done()
		e.pulse.run(e.stop)
	}()
	go func() {
		defer e.bg.Done()
		e.warmLoop(e.stop)
	}()
	return e, nil
}

// Warm start: the first second of a flash crowd must not pay for actor
// activation, the owner lookup and the first connection to the owner on
// the hot path, all at once and once per shopper. Every warmInterval each
// node resolves (and so activates, on the owner) the actors of the items
// its replicas hold that are on sale or go on sale within warmAhead, and
// caches where they live; a new leader's items are warm within a round.
const (
	warmInterval = time.Second
	warmAhead    = 10 * time.Minute
	warmMax      = 1024 // items resolved per round: bounded work
)

func (e *Engine) warmLoop(stop <-chan struct{}) {
	t := time.NewTicker(warmInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			e.warm()
		}
	}
}

// warm resolves the actors of items about to sell, up to warmMax.
func (e *Engine) warm() {
	now := e.now().UnixNano()
	n := 0
	for i := 0; i < e.shards && n < warmMax; i++ {
		sh := e.replica(i)
		if sh == nil {
			continue
		}
		for _, it := range sh.FSM().Items() {
			if n == warmMax || e.closed.Load() {
				return
			}
			ended := it.EndsAt != 0 && now >= it.EndsAt
			if ended || it.Remaining <= 0 || it.StartsAt > now+int64(warmAhead) {
				continue
			}
			e.pid(it.ID)
			n++
		}
	}
}

// ActorAddr returns the actor remoting address.
func (e *Engine) ActorAddr() string { return e.sys.Address() }

// OnLeadership stops the item actors of a shard this node no longer leads,
// so that a stale activation stops admitting purchases. It never blocks.
func (e *Engine) OnLeadership(shard int, leader bool) {
	if leader || e.lookup == nil {
		return
	}
	e.lookup.Deactivate(func(id string) bool { return e.shardFor(id) == shard })
}

// shardFor returns the shard of an item.
func (e *Engine) shardFor(id string) int { return raftstore.ShardFor(id, e.shards) }

// replica returns this node's shard group when it holds a current replica
// of it (see raftstore.Shard.Replica), else nil; always nil on a gateway.
func (e *Engine) replica(shard int) *raftstore.Shard {
	if e.store == nil {
		return nil
	}
	if sh := e.store.Shard(shard); sh.Replica() {
		return sh
	}
	return nil
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
	// A create sent again after an unknown outcome may find the item its
	// first attempt made: item_exists then means "it exists", as asked.
	return e.callItem(ctx, c.ID, &createItem{cmd: c}, true)
}

// Restock adds delta units to an item. A restock is not idempotent: one
// whose outcome is unknown is not sent again (it could add the units
// twice); the caller learns sale.ErrUnknownOutcome and reads the item.
func (e *Engine) Restock(ctx context.Context, id string, delta int64) (sale.Item, error) {
	return e.callItem(ctx, id, &restock{delta: delta}, false)
}

// SetPaused pauses or resumes an item.
func (e *Engine) SetPaused(ctx context.Context, id string, paused bool) (sale.Item, error) {
	return e.callItem(ctx, id, &setPaused{paused: paused}, true) // setting a flag twice is setting it once
}

// EndSale closes an item's sale window now: purchases after it are
// refused as not on sale. Ending an ended sale changes nothing.
func (e *Engine) EndSale(ctx context.Context, id string) (sale.Item, error) {
	return e.callItem(ctx, id, &endSale{}, true)
}

// callItem sends an item read or admin command to the item's owner and
// returns the item it answers with. When idempotent, an attempt whose
// outcome is unknown is sent again (see call).
func (e *Engine) callItem(ctx context.Context, id string, m message, idempotent bool) (sale.Item, error) {
	reply, err := e.call(ctx, id, m, idempotent)
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

// Order returns an order in its latest state and whether that state is
// already in the order store.
func (e *Engine) Order(ctx context.Context, id uint64) (orders.Order, bool, error) {
	shard := orders.ShardOfID(id)
	if shard >= e.shards {
		return orders.Order{}, false, sale.ErrOrderNotFound
	}
	if e.store == nil {
		return e.remoteOrder(ctx, id)
	}
	sh := e.store.Shard(shard)
	if o, stored, ok := sh.FSM().LookupOrder(id); ok {
		return o, stored, nil
	}
	// Confirmed on the leader a moment ago, but not yet applied here: read
	// your own writes, whichever node you ask. (WaitApplied returns at once
	// when the entry is applied: an older order is in the store.)
	caughtUp := sh.WaitApplied(ctx, orders.IndexOfID(id), orderCatchUpMax)
	if caughtUp {
		if o, stored, ok := sh.FSM().LookupOrder(id); ok {
			return o, stored, nil
		}
	}
	o, err := e.sink.Get(ctx, id)
	if errors.Is(err, orders.ErrNotFound) {
		if !caughtUp {
			// The replica has not reached the entry that would have
			// confirmed it (a leader just failed, say): "no such order"
			// would be a guess, and a buyer told so would not pay.
			return orders.Order{}, false, sale.ErrUnavailable
		}
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
	e.sys.Root.Stop(e.readsPID)
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
