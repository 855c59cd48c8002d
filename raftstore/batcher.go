package raftstore

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/flashstock/flashstock/sale"
)

// The batcher is a shard's group commit. Each item actor sends the
// purchases it admitted as one call (Shard.PurchaseBatch); while an entry
// is in flight, calls from every item of the shard queue here, and the
// next entry carries all of them (a PurchaseEntry, up to
// sale.PurchasesPerEntryMax purchases). A sale of many items then fills
// entries as well as a sale of one: per-item batching alone made 1.2
// purchases per entry on a 64-item sale, and every purchase paid a whole
// replicated round.
//
// There is no writer goroutine: a caller that finds a free slot writes
// the next entry itself, answers every call in it, and then hands the
// slot to the first call still queued (a baton), which writes the one
// after. So a caller writes at most one entry on top of waiting for its
// own, and a slot is never idle while calls wait.

// Feature is a kind of log entry that nodes of an earlier version cannot
// apply; Config.Allowed says when every voter of a shard can.
type Feature uint64

// Features.
const (
	// FeaturePurchaseEntry: multi-item purchase entries (CmdPurchaseEntry).
	FeaturePurchaseEntry Feature = 1 << iota
	// FeatureAdminCommands: cancelling an order and ending a sale
	// (CmdCancel, CmdEndSale).
	FeatureAdminCommands
	// FeatureOutboxAppend: one outbox entry per change of an order
	// (CmdOutboxAppend).
	FeatureOutboxAppend
)

// Features is every feature this version reads.
const Features = FeaturePurchaseEntry | FeatureAdminCommands | FeatureOutboxAppend

type batcher struct {
	sh *Shard

	mu       sync.Mutex
	queue    []*purchaseCall
	inflight int // slots taken: entries being written

	entries   atomic.Uint64 // purchase entries written
	multi     atomic.Uint64 // of which multi-item entries
	purchases atomic.Uint64 // purchases in them
}

// purchaseCall is one item actor's purchases waiting for an entry.
type purchaseCall struct {
	item    string
	ps      []Purchase
	res     []PurchaseResult
	err     error
	done    chan struct{} // closed once res and err are set
	lead    chan struct{} // closed when this call must write the next entry
	leading bool          // lead was closed (under the batcher's lock)
}

// inflightMax is how many entries a shard's batcher writes at once. One:
// with one entry in flight, the next gathers everything that queued
// meanwhile, which is what fills entries (the same reason an item actor
// keeps one batch in flight: more entries in flight made smaller batches
// and more fsyncs).
const inflightMax = 1

// purchase queues a call and returns its results once its entry applied.
func (b *batcher) purchase(item string, ps []Purchase) ([]PurchaseResult, error) {
	c := &purchaseCall{item: item, ps: ps, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := b.inflight < inflightMax
	if lead {
		b.inflight++
		c.leading = true
	}
	b.mu.Unlock()
	if !lead {
		select {
		case <-c.done:
			return c.res, c.err
		case <-c.lead:
		}
	}
	b.write()
	<-c.done // written by this caller, or by the one it handed the slot to
	return c.res, c.err
}

// write takes calls from the front of the queue, up to the entry's bound,
// applies them as one entry, answers them, and passes the slot on.
func (b *batcher) write() {
	b.mu.Lock()
	n, total := 0, 0
	for n < len(b.queue) && (n == 0 || total+len(b.queue[n].ps) <= sale.PurchasesPerEntryMax) {
		total += len(b.queue[n].ps)
		n++
	}
	calls := append([]*purchaseCall(nil), b.queue[:n]...)
	clear(b.queue[:n])
	b.queue = b.queue[n:]
	b.mu.Unlock()

	b.apply(calls)

	b.mu.Lock()
	handed := false
	for _, c := range b.queue {
		if !c.leading {
			c.leading, handed = true, true
			close(c.lead)
			break
		}
	}
	if !handed {
		b.inflight--
	}
	b.mu.Unlock()
}

// apply writes calls as one entry, or, while some voter cannot read
// multi-item entries, as one PurchaseBatch entry per call (written
// together: Raft still puts them in one disk write), and answers each.
func (b *batcher) apply(calls []*purchaseCall) {
	defer func() {
		for _, c := range calls {
			close(c.done)
		}
	}()
	sh := b.sh
	if len(calls) == 1 || !sh.allowed(FeaturePurchaseEntry) {
		var wg sync.WaitGroup
		for _, c := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.res, c.err = sh.purchaseBatch(c.item, c.ps)
			}()
		}
		wg.Wait()
		return
	}
	e := PurchaseEntry{Stamp: sh.stamp(), PayWindow: int64(sh.cfg.PayWindow), Groups: make([]PurchaseGroup, len(calls))}
	total := 0
	for i, c := range calls {
		e.Groups[i] = PurchaseGroup{ItemID: c.item, Purchases: c.ps}
		total += len(c.ps)
	}
	resp, err := sh.apply(&e, 32+len(calls)*16+total*32)
	res, ok := resp.([][]PurchaseResult)
	if err == nil && (!ok || len(res) != len(calls)) {
		err = fmt.Errorf("raftstore: unexpected purchase response %T", resp)
	}
	if err == nil {
		b.entries.Add(1)
		b.multi.Add(1)
		b.purchases.Add(uint64(total))
	}
	for i, c := range calls {
		if err != nil {
			c.err = err
			continue
		}
		if len(res[i]) != len(c.ps) {
			c.err = fmt.Errorf("raftstore: %d results for %d purchases", len(res[i]), len(c.ps))
			continue
		}
		c.res = res[i]
	}
}
