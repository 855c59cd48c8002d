package client

import (
	"context"
	"slices"
	"time"

	"github.com/flashstock/flashstock/internal/clock"
)

// StoredOrder is one row of the order store behind the cluster.
type StoredOrder struct {
	OrderID   string
	ItemID    string
	UserID    string
	RequestID string // "" when the store does not say
	Quantity  int64
	Status    string // "" when the store does not say
}

// OrderStore reads the order store behind the cluster (the sharded MySQL
// tables: client/storecheck, or any other copy of the orders) for Check,
// which requires every confirmed order stored exactly once and each item's
// stored units equal to its sold count. Methods may block until ctx is done
// and must honour ctx; they are called from one goroutine at a time.
type OrderStore interface {
	// Orders returns every stored copy of the given orders, keyed by order
	// ID; an order not stored is absent.
	Orders(ctx context.Context, orderIDs []string) (map[string][]StoredOrder, error)
	// SoldUnits returns, per item, the total quantity of its stored orders.
	SoldUnits(ctx context.Context, itemIDs []string) (map[string]int64, error)
}

// StoreEvidence is what an OrderStore returned.
type StoreEvidence struct {
	Orders    map[string][]StoredOrder
	SoldUnits map[string]int64
	// Err says why the store could not be read at all; Check counts it as
	// a lost order, since nothing shows the orders are there.
	Err string
}

// ReadStore reads st until it holds every one of orderIDs and, for each
// item of sold, at least that many units, or until ctx ends: the order
// store trails the confirmations (orders are flushed from Raft in batches).
// poll is the pause between reads. It returns the last complete read, or
// evidence whose Err says why there was none.
func ReadStore(ctx context.Context, st OrderStore, orderIDs []string, sold map[string]int64, poll time.Duration) *StoreEvidence {
	items := make([]string, 0, len(sold))
	for id := range sold {
		items = append(items, id)
	}
	slices.Sort(items)
	var last *StoreEvidence
	for {
		got, err := readStoreOnce(ctx, st, orderIDs, items)
		if err == nil {
			last = got
			if caughtUp(got, orderIDs, sold) {
				return got
			}
		}
		if clock.Sleep(ctx, poll) != nil {
			if last == nil {
				return &StoreEvidence{Err: errText(err, ctx.Err())}
			}
			return last
		}
	}
}

// readStoreOnce reads the orders and the units once.
func readStoreOnce(ctx context.Context, st OrderStore, orderIDs, items []string) (*StoreEvidence, error) {
	orders, err := st.Orders(ctx, orderIDs)
	if err != nil {
		return nil, err
	}
	units, err := st.SoldUnits(ctx, items)
	if err != nil {
		return nil, err
	}
	return &StoreEvidence{Orders: orders, SoldUnits: units}, nil
}

// errText is the text of the first non-nil error.
func errText(errs ...error) string {
	for _, err := range errs {
		if err != nil {
			return err.Error()
		}
	}
	return "no read"
}

// caughtUp reports whether the store holds every order and unit.
func caughtUp(st *StoreEvidence, orderIDs []string, sold map[string]int64) bool {
	for _, id := range orderIDs {
		if len(st.Orders[id]) == 0 {
			return false
		}
	}
	for id, n := range sold {
		if st.SoldUnits[id] < n {
			return false
		}
	}
	return true
}
