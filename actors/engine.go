// Package actors runs one virtual actor per sale item (protoactor kind
// "item") on the node that leads the item's Raft shard, and the Engine that
// routes requests to them.
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
)

// Admission failures. They are answered at once, before Raft.
var (
	// ErrOverloaded: the item's queue is full. Retry after a short delay.
	ErrOverloaded = errors.New("actors: overloaded")
	// ErrBacklogFull: too many confirmed orders wait for the order store.
	ErrBacklogFull = errors.New("actors: order store backlog full")
	// ErrTimeout: no answer in time; the purchase may still commit. Retry
	// with the same request ID to learn the outcome.
	ErrTimeout = errors.New("actors: timed out waiting for the item")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("actors: engine closed")
	// ErrOrderNotFound: no such order.
	ErrOrderNotFound = errors.New("actors: order not found")
)

// Config bounds the engine.
type Config struct {
	QueueMax       int           // purchases waiting in one item actor
	BatchMax       int           // purchases per Raft entry
	RequestTimeout time.Duration // how long a caller waits for its answer
	MaxUnflushed   int           // confirmed orders per shard not yet in the order store
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{QueueMax: 4096, BatchMax: 1024, RequestTimeout: 5 * time.Second, MaxUnflushed: 1_000_000}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.QueueMax < 1:
		return errors.New("actors: queue max must be positive")
	case c.BatchMax < 1 || c.BatchMax >= orders.PositionsMax:
		return fmt.Errorf("actors: batch max must be 1..%d", orders.PositionsMax-1)
	case c.RequestTimeout <= 0:
		return errors.New("actors: request timeout must be positive")
	case c.MaxUnflushed < 1:
		return errors.New("actors: max unflushed must be positive")
	}
	return nil
}

// Observer receives engine events, for metrics. Methods must not block.
type Observer interface {
	BatchApplied(shard, size int, elapsed time.Duration, err error)
}

// Request is a shopper's purchase.
type Request struct {
	ItemID    string
	UserID    string
	RequestID string // optional idempotency key
	Quantity  int32
}

// Engine routes item operations to item actors and Raft shards.
type Engine struct {
	cfg   Config
	store *raftstore.Store
	sink  orders.Sink
	obs   Observer
	log   *slog.Logger
	sys   *actor.ActorSystem
	now   func() time.Time

	pids    sync.Map // item ID -> *actor.PID
	spawnMu sync.Mutex
	closed  atomic.Bool
	applies sync.WaitGroup // Raft applies started by item actors
}

// Deps are the engine's collaborators.
type Deps struct {
	Store    *raftstore.Store
	Sink     orders.Sink // for orders no longer in Raft
	Observer Observer    // may be nil
	Logger   *slog.Logger
	Now      func() time.Time // nil means time.Now
}

// NewEngine returns an engine with its own actor system.
func NewEngine(cfg Config, deps Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	log := deps.Logger
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log.With("lib", "protoactor") }),
		actor.WithDeadLetterRequestLogging(false),
	)
	return &Engine{cfg: cfg, store: deps.Store, sink: deps.Sink, obs: deps.Observer, log: log, sys: sys, now: deps.Now}, nil
}

// OnLeadership stops the item actors of a shard this node no longer leads,
// so that a stale activation stops admitting purchases. It never blocks.
func (e *Engine) OnLeadership(shard int, leader bool) {
	if leader {
		return
	}
	e.pids.Range(func(k, v any) bool {
		if e.store.ShardFor(k.(string)) == shard {
			e.pids.Delete(k)
			e.sys.Root.Stop(v.(*actor.PID))
		}
		return true
	})
}

// shardFor returns an item's shard, ready on this node.
func (e *Engine) leaderShard(itemID string) (*raftstore.Shard, error) {
	sh := e.store.Shard(e.store.ShardFor(itemID))
	if !sh.Ready() {
		return nil, raftstore.ErrNotLeader
	}
	return sh, nil
}

// CreateItem creates an item through Raft.
func (e *Engine) CreateItem(ctx context.Context, c raftstore.CreateItem) (raftstore.Item, error) {
	sh, err := e.leaderShard(c.ID)
	if err != nil {
		return raftstore.Item{}, err
	}
	return sh.CreateItem(c)
}

// Item returns an item from the local state machine.
func (e *Engine) Item(ctx context.Context, id string) (raftstore.Item, error) {
	sh := e.store.Shard(e.store.ShardFor(id))
	it, ok := sh.FSM().Item(id)
	if !ok {
		return raftstore.Item{}, raftstore.ErrItemNotFound
	}
	return it, nil
}

// Restock adds delta units to an item.
func (e *Engine) Restock(ctx context.Context, id string, delta int64) (raftstore.Item, error) {
	sh, err := e.leaderShard(id)
	if err != nil {
		return raftstore.Item{}, err
	}
	return sh.Restock(id, delta)
}

// SetPaused pauses or resumes an item.
func (e *Engine) SetPaused(ctx context.Context, id string, paused bool) (raftstore.Item, error) {
	sh, err := e.leaderShard(id)
	if err != nil {
		return raftstore.Item{}, err
	}
	return sh.SetPaused(id, paused)
}

// Purchase buys an item. It returns the order and whether it is the
// original order of an earlier request with the same request ID.
//
// Answers that need no Raft round come first and cost a map lookup: a
// remembered request ID, an unknown item, a quantity over the limit, a sale
// not open, sold out. Everything else goes to the item actor.
func (e *Engine) Purchase(ctx context.Context, r Request) (orders.Order, bool, error) {
	if e.closed.Load() {
		return orders.Order{}, false, ErrClosed
	}
	sh := e.store.Shard(e.store.ShardFor(r.ItemID))
	fsm := sh.FSM()
	if r.RequestID != "" {
		if o, ok := fsm.LookupRequest(r.UserID, r.RequestID); ok {
			if o.ItemID != r.ItemID {
				return orders.Order{}, false, raftstore.ErrRequestConflict
			}
			return o, true, nil
		}
	}
	it, ok := fsm.Item(r.ItemID)
	switch {
	case !ok:
		return orders.Order{}, false, raftstore.ErrItemNotFound
	case r.Quantity < 1 || r.Quantity > it.PerUserLimit:
		return orders.Order{}, false, raftstore.ErrInvalidQuantity
	case !saleOpen(&it, e.now().UnixNano()):
		return orders.Order{}, false, raftstore.ErrNotOnSale
	case it.Remaining < int64(r.Quantity):
		return orders.Order{}, false, raftstore.ErrSoldOut
	case !sh.Ready():
		return orders.Order{}, false, raftstore.ErrNotLeader
	case fsm.PendingCount() >= e.cfg.MaxUnflushed:
		return orders.Order{}, false, ErrBacklogFull
	}
	pid, err := e.activate(r.ItemID, sh)
	if err != nil {
		return orders.Order{}, false, err
	}
	res, err := e.sys.Root.RequestFuture(pid, &Purchase{Request: r}, e.cfg.RequestTimeout).Result()
	if err != nil {
		if errors.Is(err, actor.ErrTimeout) {
			return orders.Order{}, false, ErrTimeout
		}
		return orders.Order{}, false, fmt.Errorf("%w: %v", raftstore.ErrUnavailable, err)
	}
	switch m := res.(type) {
	case *Purchased:
		return m.Order, m.Duplicate, nil
	case *Rejected:
		return orders.Order{}, false, m.Err
	}
	return orders.Order{}, false, fmt.Errorf("actors: unexpected reply %T", res)
}

// saleOpen is the admission-time check of the sale window, on this node's
// clock; the FSM decides again with the leader's stamp.
func saleOpen(it *raftstore.Item, now int64) bool {
	return !it.Paused && now >= it.StartsAt && (it.EndsAt == 0 || now < it.EndsAt)
}

// activate returns the item's actor, spawning it on first use.
func (e *Engine) activate(itemID string, sh *raftstore.Shard) (*actor.PID, error) {
	if pid, ok := e.pids.Load(itemID); ok {
		return pid.(*actor.PID), nil
	}
	e.spawnMu.Lock()
	defer e.spawnMu.Unlock()
	if pid, ok := e.pids.Load(itemID); ok {
		return pid.(*actor.PID), nil
	}
	if e.closed.Load() {
		return nil, ErrClosed
	}
	props := actor.PropsFromProducer(func() actor.Actor {
		return &itemActor{e: e, id: itemID, shard: sh}
	})
	pid, err := e.sys.Root.SpawnNamed(props, "item/"+itemID)
	if errors.Is(err, actor.ErrNameExists) {
		// A stopped activation's name is released asynchronously; the
		// caller retries.
		return nil, fmt.Errorf("%w: item actor restarting", raftstore.ErrUnavailable)
	}
	if err != nil {
		return nil, fmt.Errorf("actors: spawn %s: %w", itemID, err)
	}
	e.pids.Store(itemID, pid)
	return pid, nil
}

// Order returns an order and whether it is already in the order store.
func (e *Engine) Order(ctx context.Context, id uint64) (orders.Order, bool, error) {
	shard := orders.ShardOfID(id)
	if shard >= e.store.Shards() {
		return orders.Order{}, false, ErrOrderNotFound
	}
	if o, ok := e.store.Shard(shard).FSM().PendingOrder(id); ok {
		return o, false, nil
	}
	o, err := e.sink.Get(ctx, id)
	if errors.Is(err, orders.ErrNotFound) {
		return orders.Order{}, false, ErrOrderNotFound
	}
	if err != nil {
		return orders.Order{}, false, err
	}
	return o, true, nil
}

// Close stops admitting purchases, stops every item actor (each answers its
// queued purchases) and waits for the Raft applies already in flight, so
// that every shopper whose purchase was sent to Raft gets its answer.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.Swap(true) {
		return nil
	}
	e.spawnMu.Lock()
	var futures []*actor.Future
	e.pids.Range(func(k, v any) bool {
		futures = append(futures, e.sys.Root.StopFuture(v.(*actor.PID)))
		e.pids.Delete(k)
		return true
	})
	e.spawnMu.Unlock()
	for _, f := range futures {
		_ = f.Wait()
	}
	done := make(chan struct{})
	go func() { e.applies.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("actors: waiting for in-flight applies: %w", ctx.Err())
	}
	e.sys.Shutdown()
	return nil
}
