package main

import (
	"context"
	"fmt"

	"github.com/flashstock/flashstock/loadgen"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
)

// mysqlStore checks the sharded MySQL order store for the verifier.
type mysqlStore struct{ sink *mysql.Sink }

func openMySQLStore(ctx context.Context, dsns []string, tables int) (*mysqlStore, error) {
	cfg := mysql.DefaultConfig()
	cfg.DSNs, cfg.Tables = dsns, tables
	s, err := mysql.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &mysqlStore{sink: s}, nil
}

// Orders implements loadgen.OrderStore.
func (m *mysqlStore) Orders(ctx context.Context, orderIDs []string) (map[string][]loadgen.StoredOrder, error) {
	ids := make([]uint64, 0, len(orderIDs))
	for _, s := range orderIDs {
		id, err := orders.ParseID(s)
		if err != nil {
			return nil, fmt.Errorf("order id %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	copies, err := m.sink.Copies(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]loadgen.StoredOrder, len(copies))
	for id, list := range copies {
		for _, o := range list {
			k := orders.FormatID(id)
			out[k] = append(out[k], loadgen.StoredOrder{OrderID: k, ItemID: o.ItemID, UserID: o.UserID, Quantity: int64(o.Quantity)})
		}
	}
	return out, nil
}

// SoldUnits implements loadgen.OrderStore.
func (m *mysqlStore) SoldUnits(ctx context.Context, itemIDs []string) (map[string]int64, error) {
	all, err := m.sink.SoldByItem(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(itemIDs))
	for _, id := range itemIDs {
		out[id] = all[id]
	}
	return out, nil
}
