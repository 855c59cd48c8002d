package sale

// Request is a shopper's purchase: Quantity units of ItemID for UserID.
// RequestID, when set, is the shopper's idempotency key, scoped to the user
// and the item: the same key again is the same purchase.
type Request struct {
	ItemID    string
	UserID    string
	RequestID string
	Quantity  int32
}

// Admit decides whether a purchase of qty units, by a shopper who already
// holds held units of the item, may go ahead at time now (unix
// nanoseconds), from the item's state alone. It returns nil, or the
// sentinel of the first rule the purchase breaks, in this order: the
// quantity (1 to the per-user limit), the sale window, the per-user limit,
// the stock.
//
// The state machine calls it with the committed state and the leader's
// time stamp, and its answer is final. The engine and the item actors call
// it earlier, with a replica's state and their own clock, to answer without
// a Raft round what the state already decides; they pass held = 0 when they
// do not know it, which leaves the per-user limit to the state machine.
func Admit(it *Item, qty, held int32, now int64) error {
	switch {
	case qty < 1 || qty > it.PerUserLimit:
		return ErrInvalidQuantity
	case !it.OnSaleAt(now):
		return ErrNotOnSale
	case int64(held)+int64(qty) > int64(it.PerUserLimit):
		return ErrLimitExceeded
	case int64(qty) > it.Remaining:
		return ErrSoldOut
	}
	return nil
}

// Outcome is the state machine's answer to one purchase of a batch.
type Outcome uint8

// Purchase outcomes.
const (
	OutcomeConfirmed Outcome = iota + 1
	OutcomeDuplicate         // the request ID was seen: the order is the original
	OutcomeSoldOut
	OutcomeLimitExceeded
	OutcomeNotOnSale
	OutcomeItemNotFound
	OutcomeInvalidQuantity
)

// Err returns the sentinel error of a refused outcome, nil for a confirmed
// or duplicate one.
func (o Outcome) Err() error {
	switch o {
	case OutcomeConfirmed, OutcomeDuplicate:
		return nil
	case OutcomeSoldOut:
		return ErrSoldOut
	case OutcomeLimitExceeded:
		return ErrLimitExceeded
	case OutcomeNotOnSale:
		return ErrNotOnSale
	case OutcomeItemNotFound:
		return ErrItemNotFound
	case OutcomeInvalidQuantity:
		return ErrInvalidQuantity
	}
	return ErrUnknownOutcome
}

// OutcomeOf returns the outcome of a refusal that Admit returned.
func OutcomeOf(err error) Outcome {
	switch err {
	case nil:
		return OutcomeConfirmed
	case ErrSoldOut:
		return OutcomeSoldOut
	case ErrLimitExceeded:
		return OutcomeLimitExceeded
	case ErrNotOnSale:
		return OutcomeNotOnSale
	case ErrItemNotFound:
		return OutcomeItemNotFound
	case ErrInvalidQuantity:
		return OutcomeInvalidQuantity
	}
	panic("sale: no outcome for " + err.Error()) // Admit returns none other
}
