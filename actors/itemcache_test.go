package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashstock/flashstock/sale"
)

// TestItemCacheOneFetchPerItem: concurrent readers of an item the cache
// must fetch share one read of the owner, and all get its answer.
func TestItemCacheOneFetchPerItem(t *testing.T) {
	var c itemCache
	var reads atomic.Int32
	release := make(chan struct{})
	read := func() (sale.Item, error) {
		reads.Add(1)
		<-release
		return sale.Item{ID: "x", Remaining: 7}, nil
	}
	var wg sync.WaitGroup
	got := make([]sale.Item, 50)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = c.fetch(context.Background(), "x", read)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them all queue behind the first
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("%d reads of the owner for 50 concurrent readers; want 1", n)
	}
	for i, it := range got {
		if it.Remaining != 7 {
			t.Fatalf("reader %d got %+v", i, it)
		}
	}
	// A reader whose context ends stops waiting.
	if !c.startFetch("y") {
		t.Fatal("startFetch(y) with none in flight = false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.fetch(ctx, "y", read); err != sale.ErrTimeout {
		t.Errorf("fetch behind a stuck one, context ended = %v; want ErrTimeout", err)
	}
	c.endFetch("y", sale.Item{}, nil)
}

// TestItemCacheBounded: made-up item IDs cannot grow the cache past
// itemCacheMax; entries too old to serve go first.
func TestItemCacheBounded(t *testing.T) {
	var c itemCache
	now := time.Unix(1000, 0)
	for i := range itemCacheMax {
		c.put(fmt.Sprint("old-", i), cachedItem{missing: true, at: now.Add(-time.Minute)}, now)
	}
	c.put("fresh", cachedItem{item: sale.Item{ID: "fresh"}, at: now}, now)
	if n := c.n.Load(); n != 1 {
		t.Fatalf("%d entries after a put at the bound with every other entry stale; want 1", n)
	}
	for i := range itemCacheMax + 10 {
		c.put(fmt.Sprint("new-", i), cachedItem{missing: true, at: now}, now)
	}
	if n := c.n.Load(); n > itemCacheMax {
		t.Fatalf("%d entries; want at most %d", n, itemCacheMax)
	}
}
