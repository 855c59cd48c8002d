// Package sale holds the rules of a flash sale that every layer shares and
// none may redefine: what an item is and when it is on sale, what a
// purchase asks for, which purchases are admitted (Admit), the identifiers
// and bounds the API and the log accept, and every error a purchase or an
// admin action can end in, with the one table that says how each crosses
// the wire between nodes and how the HTTP API answers it.
//
// It imports nothing of the project. The HTTP API, the item actors, the
// engine and the Raft state machine all decide from these rules; only the
// state machine decides with the committed state, so it has the last word.
package sale

import "time"

// Bounds on what the API and the Raft log accept. The decoder of the log
// enforces the same bounds, so that a corrupt entry cannot make a replica
// allocate without bound.
const (
	// IDLenMax is the longest item, user or request ID, in bytes.
	IDLenMax = 64
	// NameLenMax is the longest item name, in bytes.
	NameLenMax = 256
	// StockMax is the largest stock of an item, and the largest restock.
	StockMax = 1_000_000_000
	// PerUserLimitMax is the largest per-user limit, and so the largest
	// quantity of one purchase.
	PerUserLimitMax = 1000
	// PurchasesPerEntryMax is the most purchases one Raft entry carries.
	// An order ID has 16 bits for the position in its entry (orders.MakeID),
	// so it must stay below 65536; an entry the encoder would make larger
	// is refused before it reaches the log (a replica that could not apply
	// it would panic on every restart).
	PurchasesPerEntryMax = 4096
	// ItemsPerShardMax is the most items one shard group holds. Every item
	// lives in memory on each replica of its shard, in every snapshot and
	// in every reconcile report; items are spread over the shards by hash,
	// so a cluster of S shards holds about S times this many before the
	// fullest shard refuses a new one (ErrItemsFull).
	ItemsPerShardMax = 10_000
)

// A sale window's times are unix nanoseconds in an int64, which covers the
// years 1678 to 2262; the API accepts starts_at and ends_at between
// SaleTimeMin and SaleTimeMax only, so that no time wraps around and every
// one is a plausible date.
var (
	SaleTimeMin = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	SaleTimeMax = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ValidSaleTime reports whether t may bound a sale window.
func ValidSaleTime(t time.Time) bool {
	return !t.Before(SaleTimeMin) && !t.After(SaleTimeMax)
}

// CheckRestock reports whether delta units may be added to it (a negative
// delta removes unsold units): the stock may not pass StockMax
// (ErrStockMax) and the remaining stock may not go below zero
// (ErrInvalidStock).
func (it *Item) CheckRestock(delta int64) error {
	switch {
	case delta > 0 && it.Stock > StockMax-delta:
		return ErrStockMax
	case it.Remaining+delta < 0:
		return ErrInvalidStock
	}
	return nil
}

// ValidID reports whether s is a valid item, user or request ID: 1 to
// IDLenMax characters of A-Z a-z 0-9 _ . : -. IDs in this alphabet need no
// escaping in JSON, URLs, logs or SQL.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > IDLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '.' || b == ':' || b == '-') {
			return false
		}
	}
	return true
}

// IDRule is ValidID in words, for error messages.
const IDRule = "1-64 characters of A-Z a-z 0-9 _ . : -"
