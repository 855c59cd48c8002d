package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/sale"
)

// The item cache is the second level of the classic flash-sale cache (the
// owner's state machine is the first) on a node that holds no replica of
// an item's shard: a gateway, or a core node outside the shard's group.
// It answers item reads and the purchases whose outcome an item snapshot
// already decides (sold out, not on sale, over the per-user limit, no such
// item) without a hop to the owner.
//
// Staleness is bounded by Config.ItemCacheTTL: an entry older than that is
// fetched again from the owner before it answers anything, and only one
// fetch per item is in flight however many shoppers wait for it. An entry
// past half its TTL that is still asked for is refreshed ahead, in the
// background, while it goes on answering: under load nobody waits for a
// fetch. A sold-out answer on such a node can therefore trail a restock or
// an expired payment that returned units by at most the TTL plus a fetch. A purchase
// the cache lets through is decided by the owner, whose state machine is
// the truth: a stale "units left" costs a hop, never stock.

// staleItemMax is how old a cached item may be when its owner cannot be
// reached: a degraded answer instead of an error.
const staleItemMax = 30 * time.Second

// itemCacheMax bounds the cache's entries, known items and IDs the owner
// said do not exist alike: shoppers asking for made-up IDs cannot grow it
// without bound.
const itemCacheMax = 1 << 16

// cachedItem is an item as its owner last reported it; missing means the
// owner said there is no such item.
type cachedItem struct {
	item    sale.Item
	missing bool
	at      time.Time
}

// itemCache maps item IDs to cachedItem, with one fetch in flight per item.
// Reads (every purchase and item read on a node without a replica) take no
// lock; only a miss takes the fetch lock.
type itemCache struct {
	entries sync.Map     // item ID -> cachedItem
	n       atomic.Int64 // entries, for the bound

	mu      sync.Mutex
	fetches map[string]*itemFetch
}

// itemFetch is one read of an item from its owner that concurrent readers
// share.
type itemFetch struct {
	done chan struct{}
	item sale.Item
	err  error
}

func (c *itemCache) get(id string) (cachedItem, bool) {
	v, ok := c.entries.Load(id)
	if !ok {
		return cachedItem{}, false
	}
	return v.(cachedItem), true
}

// put stores an entry. At the bound it first drops the entries older than
// staleItemMax, which nothing may serve any more, and then, if still
// full, the whole cache: correctness never depends on an entry.
func (c *itemCache) put(id string, v cachedItem, now time.Time) {
	if _, loaded := c.entries.Swap(id, v); loaded {
		return
	}
	if c.n.Add(1) <= itemCacheMax {
		return
	}
	c.entries.Range(func(k, e any) bool {
		if k != id && now.Sub(e.(cachedItem).at) > staleItemMax {
			c.drop(k)
		}
		return true
	})
	if c.n.Load() > itemCacheMax {
		c.entries.Range(func(k, _ any) bool {
			if k != id {
				c.drop(k)
			}
			return true
		})
	}
}

// drop deletes an entry, counting it once however many drop it at once.
func (c *itemCache) drop(k any) {
	if _, ok := c.entries.LoadAndDelete(k); ok {
		c.n.Add(-1)
	}
}

// startFetch registers a fetch of id, unless one is in flight; the caller
// then runs it and calls endFetch.
func (c *itemCache) startFetch(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.fetches[id]; ok {
		return false
	}
	if c.fetches == nil {
		c.fetches = make(map[string]*itemFetch)
	}
	c.fetches[id] = &itemFetch{done: make(chan struct{})}
	return true
}

// endFetch ends the fetch startFetch registered and wakes its waiters.
func (c *itemCache) endFetch(id string, it sale.Item, err error) {
	c.mu.Lock()
	f := c.fetches[id]
	delete(c.fetches, id)
	c.mu.Unlock()
	f.item, f.err = it, err
	close(f.done)
}

// fetch runs read for id unless a read of it is already in flight, in
// which case it waits for that one (bounded by ctx and by the first
// reader's own timeout).
func (c *itemCache) fetch(ctx context.Context, id string, read func() (sale.Item, error)) (sale.Item, error) {
	for !c.startFetch(id) {
		c.mu.Lock()
		f, ok := c.fetches[id]
		c.mu.Unlock()
		if !ok {
			continue // it ended between the two looks
		}
		select {
		case <-f.done:
			return f.item, f.err
		case <-ctx.Done():
			return sale.Item{}, sale.ErrTimeout
		}
	}
	it, err := read()
	c.endFetch(id, it, err)
	return it, err
}

// Item returns an item: from this node's replica of its shard when it has
// one (at most a replication delay behind the leader), else from the item
// cache, fetched from the owner when older than ItemCacheTTL. When the
// owner cannot be reached, a cached copy up to staleItemMax old is served
// rather than an error.
func (e *Engine) Item(ctx context.Context, id string) (sale.Item, error) {
	if sh := e.replica(e.shardFor(id)); sh != nil {
		if it, ok := sh.FSM().Item(id); ok {
			return it, nil
		}
		if sh.Ready() {
			return sale.Item{}, sale.ErrItemNotFound
		}
	}
	c, cached := e.items.get(id)
	if age := e.now().Sub(c.at); cached && age <= e.cfg.ItemCacheTTL {
		if age > e.cfg.ItemCacheTTL/2 {
			e.refreshItem(id)
		}
		if c.missing {
			return sale.Item{}, sale.ErrItemNotFound
		}
		return c.item, nil
	}
	it, err := e.items.fetch(ctx, id, func() (sale.Item, error) { return e.fetchItem(ctx, id) })
	if err == nil || errors.Is(err, sale.ErrItemNotFound) {
		return it, err
	}
	if cached && !c.missing && e.now().Sub(c.at) <= staleItemMax && errors.Is(err, sale.ErrUnavailable) {
		return c.item, nil // degraded: the owner is unreachable
	}
	return sale.Item{}, err
}

// fetchItem reads an item from its owner into the cache.
func (e *Engine) fetchItem(ctx context.Context, id string) (sale.Item, error) {
	it, err := e.callItem(ctx, id, &getItem{}, true)
	switch {
	case err == nil:
		e.items.put(id, cachedItem{item: it, at: e.now()}, e.now())
	case errors.Is(err, sale.ErrItemNotFound):
		e.items.put(id, cachedItem{missing: true, at: e.now()}, e.now())
	}
	return it, err
}

// refreshItem refreshes a cache entry in the background unless a fetch of
// it is in flight. The goroutine is the engine's (Close waits for it, as
// for an apply) and ends within the request timeout; there is at most one
// per cached item.
func (e *Engine) refreshItem(id string) {
	if e.closed.Load() || !e.items.startFetch(id) {
		return
	}
	e.applies.Add(1)
	go func() {
		defer e.applies.Done()
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.RequestTimeout)
		defer cancel()
		it, err := e.fetchItem(ctx, id)
		e.items.endFetch(id, it, err)
	}()
}

// noteSoldOut records in the cache that an item this node has no replica
// of is sold out, as its owner just answered, so that the next shoppers
// here are answered without a hop.
func (e *Engine) noteSoldOut(id string) {
	if c, ok := e.items.get(id); ok && !c.missing {
		c.item.Remaining, c.at = 0, e.now()
		e.items.put(id, c, e.now())
	}
}
