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
)

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
