// Package orders defines a confirmed order, the Sink interface that order
// stores implement, the routing of orders to database shards and tables, and
// the Flusher that copies confirmed orders from a Raft shard to a Sink.
//
// A confirmed order is durable in Raft from the moment the shopper hears
// "confirmed"; the order store is a downstream copy. The Flusher makes that
// copy exactly once in effect: every Sink write is idempotent (keyed by order
// ID), and the flushed watermark only advances, through Raft, after the Sink
// has committed the rows. If the Sink is down, orders wait in the Raft state
// machine (bounded by the max-unflushed admission limit) and nothing is lost.
//
// Package orders imports no Raft, no HTTP and no SQL driver: the drivers live
// in the sub-packages sqlite (embedded default) and mysql (sharded).
package orders

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// ErrNotFound is returned by Sink.Get for an order the store does not hold.
var ErrNotFound = errors.New("orders: not found")

// Status is the lifecycle state of an order.
type Status string

// Order statuses. A confirmed order may later become paid or expired (when a
// payment window is configured), or cancelled by an admin; expired and
// cancelled orders returned their stock.
const (
	StatusConfirmed Status = "confirmed"
	StatusPaid      Status = "paid"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
)

// Returned reports whether an order in status s gave its units back to the
// sale: it counts for nothing in an item's sold units.
func (s Status) Returned() bool { return s == StatusExpired || s == StatusCancelled }

// Order is a confirmed purchase. Its ID is deterministic from the Raft log:
// see MakeID.
type Order struct {
	ID        uint64
	ItemID    string
	UserID    string
	RequestID string
	Quantity  int32
	Status    Status
	CreatedAt time.Time // leader-stamped command time, UTC
	Shard     int
	LogIndex  uint64
	// PayBy is when an unpaid order expires; zero when no payment window
	// applies. Kept in Raft, not in the order store.
	PayBy time.Time
	// Seq is the order's place in its shard's outbox: every change to be
	// written to the order store (a new order, a status change) gets the
	// next number, and the flushed watermark is a Seq. Set only on orders
	// read from the outbox.
	Seq uint64
}

// Order IDs pack the Raft shard, the log index of the entry that confirmed
// the order and the position of the purchase within that entry:
//
//	bits 63..56 shard | bits 55..16 log index | bits 15..0 position
//
// so IDs are unique across the cluster, ordered within a shard, and the shard
// that owns an order is known from its ID alone.
const (
	idShardBits    = 8
	idPositionBits = 16
	idIndexBits    = 64 - idShardBits - idPositionBits

	// ShardsMax is the largest number of Raft shards an ID can address.
	ShardsMax = 1 << idShardBits
	// PositionsMax is the largest number of orders one log entry can confirm.
	PositionsMax = 1 << idPositionBits
)

// MakeID returns the order ID for the purchase at position pos of the log
// entry at index in shard.
func MakeID(shard int, index uint64, pos int) uint64 {
	return uint64(shard)<<(64-idShardBits) |
		(index&(1<<idIndexBits-1))<<idPositionBits |
		uint64(pos)&(PositionsMax-1)
}

// ShardOfID returns the Raft shard that confirmed the order with this ID.
func ShardOfID(id uint64) int { return int(id >> (64 - idShardBits)) }

// IndexOfID returns the log index of the entry that confirmed the order
// (modulo 2^40, which no shard's log reaches).
func IndexOfID(id uint64) uint64 { return id >> idPositionBits & (1<<idIndexBits - 1) }

// FormatID renders an order ID the way the API shows it: a decimal string, so
// that JavaScript clients do not lose precision.
func FormatID(id uint64) string { return strconv.FormatUint(id, 10) }

// ParseID parses an order ID in the API form.
func ParseID(s string) (uint64, error) {
	if len(s) == 0 || len(s) > 20 {
		return 0, errors.New("orders: malformed order id")
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, errors.New("orders: malformed order id")
	}
	return id, nil
}

// Sink is an order store. Implementations must be safe for concurrent use.
//
// Write must be idempotent: writing an order that is already stored is a
// no-op except that a confirmed order takes the new status (paid or
// expired; statuses never move back), so a batch may be written more than
// once (after a leader change or a retry) and the store still holds each
// order exactly once, in its latest status. Write returns only after the rows are durable. It must honour
// ctx and never block past its deadline.
type Sink interface {
	Write(ctx context.Context, batch []Order) error
	Get(ctx context.Context, id uint64) (Order, error)
	// ListByUser returns up to limit (1..1000) of a user's orders, newest
	// first.
	ListByUser(ctx context.Context, userID string, limit int) ([]Order, error)
	// SoldByItem returns the units held by non-expired orders, per item:
	// the store's side of reconciliation.
	SoldByItem(ctx context.Context) (map[string]int64, error)
	Close() error
}
