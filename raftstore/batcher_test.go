package raftstore_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
	"github.com/flashstock/flashstock/sale"
)

// TestBatcherPacksItems: item actors of 64 items send their batches at
// once; the shard's batcher packs them into few entries, and every call
// gets its own results, in its own order. While a voter cannot read
// multi-item entries, each call is its own entry, with the same results.
func TestBatcherPacksItems(t *testing.T) {
	for _, multi := range []bool{true, false} {
		t.Run(fmt.Sprint("multi-item entries allowed ", multi), func(t *testing.T) {
			cfg := raftstoretest.StoreConfig(t.TempDir(), 1)
			cfg.Allowed = func(int, raftstore.Feature) bool { return multi }
			sh := raftstoretest.OpenStore(t, cfg).Shard(0)
			const items, rounds, per = 64, 20, 3
			for i := range items {
				if _, err := sh.CreateItem(raftstore.CreateItem{ID: fmt.Sprint("item-", i), Stock: rounds * per, PerUserLimit: 1}); err != nil {
					t.Fatal(err)
				}
			}
			s0 := sh.PurchaseStats()
			var wg sync.WaitGroup
			errs := make(chan error, items)
			for i := range items {
				wg.Add(1)
				go func() {
					defer wg.Done()
					item := fmt.Sprint("item-", i)
					for r := range rounds {
						ps := make([]raftstore.Purchase, per)
						for j := range ps {
							ps[j] = p(fmt.Sprintf("u%d-%d", r, j), fmt.Sprintf("q%d", j), 1)
						}
						res, err := sh.PurchaseBatch(item, ps)
						if err != nil {
							errs <- err
							return
						}
						for j, pr := range res {
							o := pr.Order
							if pr.Outcome != sale.OutcomeConfirmed || o.ItemID != item || o.UserID != ps[j].UserID || o.RequestID != ps[j].RequestID {
								errs <- fmt.Errorf("%s round %d purchase %d: %+v; want its own confirmed order", item, r, j, pr)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := range items {
				if rem, _ := sh.FSM().Remaining(fmt.Sprint("item-", i)); rem != 0 {
					t.Errorf("item-%d: %d left; want all %d sold", i, rem, rounds*per)
				}
			}
			s1 := sh.PurchaseStats()
			entries, purchases, multiEntries := s1.Entries-s0.Entries, s1.Purchases-s0.Purchases, s1.MultiItemEntries-s0.MultiItemEntries
			if purchases != items*rounds*per {
				t.Fatalf("PurchaseStats counted %d purchases; want %d", purchases, items*rounds*per)
			}
			calls := uint64(items * rounds)
			switch {
			case multi && entries*4 > calls:
				t.Errorf("%d entries for %d calls: want the batcher to pack several items' calls per entry", entries, calls)
			case !multi && (entries != calls || multiEntries != 0):
				t.Errorf("%d entries (%d multi-item) for %d calls; want one single-item entry per call while multi-item entries are not allowed", entries, multiEntries, calls)
			}
			t.Logf("%d calls of %d purchases in %d entries: %.1f purchases per entry", calls, per, entries, float64(purchases)/float64(entries))
		})
	}
}
