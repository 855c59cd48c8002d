package main

import (
	"context"
	"errors"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/orders"
)

func openMySQL(ctx context.Context, cfg config.Config) (orders.Sink, error) {
	return nil, errors.New("--orders-dsn: the MySQL order store is not wired yet")
}
