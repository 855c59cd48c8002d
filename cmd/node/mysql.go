package main

import (
	"context"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
)

// openMySQL opens the sharded MySQL order store named by --orders-dsn. An
// unreachable database is a one-line error at start, not a hang.
func openMySQL(ctx context.Context, cfg config.Config) (orders.Sink, error) {
	mc := mysql.DefaultConfig()
	mc.DSNs = cfg.OrdersDSN
	mc.Tables = cfg.OrderTables
	return mysql.Open(ctx, mc)
}
