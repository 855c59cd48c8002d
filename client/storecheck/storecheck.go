// Package storecheck reads Flashstock's sharded MySQL order store for the
// checks of client.Check: it is the client.OrderStore of the load generator
// (--verify-mysql) and of the fault suite. It lives apart from client so
// that only the binaries that read MySQL link the driver.
package storecheck

import (
	"context"
	"fmt"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
)

// Store reads the order tables of one sharded MySQL store. It is safe for
// concurrent use.
type Store struct{ sink *mysql.Sink }

var _ client.OrderStore = (*Store)(nil)

// Open connects to the databases of dsns, in order (database i of the
// store), each holding tables order tables; 0 keeps the store's default.
// ctx bounds the connection and the check of the layout.
func Open(ctx context.Context, dsns []string, tables int) (*Store, error) {
	cfg := mysql.DefaultConfig()
	cfg.DSNs = dsns
	if tables > 0 {
		cfg.Tables = tables
	}
	s, err := mysql.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("storecheck: %w", err)
	}
	return &Store{sink: s}, nil
}

// Close closes the connections.
func (s *Store) Close() error { return s.sink.Close() }

// Orders returns every stored copy of the given orders.
func (s *Store) Orders(ctx context.Context, orderIDs []string) (map[string][]client.StoredOrder, error) {
	ids := make([]uint64, 0, len(orderIDs))
	for _, o := range orderIDs {
		id, err := orders.ParseID(o)
		if err != nil {
			return nil, fmt.Errorf("storecheck: order id %q: %w", o, err)
		}
		ids = append(ids, id)
	}
	copies, err := s.sink.Copies(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("storecheck: %w", err)
	}
	out := make(map[string][]client.StoredOrder, len(copies))
	for id, list := range copies {
		k := orders.FormatID(id)
		for _, o := range list {
			out[k] = append(out[k], client.StoredOrder{
				OrderID: k, ItemID: o.ItemID, UserID: o.UserID, RequestID: o.RequestID, Quantity: int64(o.Quantity),
				Status: string(o.Status),
			})
		}
	}
	return out, nil
}

// SoldUnits returns, per item of itemIDs, the units of its stored orders.
func (s *Store) SoldUnits(ctx context.Context, itemIDs []string) (map[string]int64, error) {
	all, err := s.sink.SoldByItem(ctx)
	if err != nil {
		return nil, fmt.Errorf("storecheck: %w", err)
	}
	out := make(map[string]int64, len(itemIDs))
	for _, id := range itemIDs {
		out[id] = all[id]
	}
	return out, nil
}
