package loadgen

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
)

// ConfirmedOrder is a purchase the server confirmed to the loadgen: what was
// asked, and the order that came back.
type ConfirmedOrder struct {
	ItemID    string
	UserID    string
	RequestID string
	Quantity  int64
	Got       OrderView
}

// Replay is a confirmed purchase sent again with the same request_id.
type Replay struct {
	ItemID    string
	UserID    string
	RequestID string
	OrderID   string    // the order the first confirmation carried
	Outcome   Outcome   // the answer to the re-send
	Code      string    // its error code, if any
	Got       OrderView // the order it carried, when Outcome is confirmed or replayed
}

// History is what a run recorded, as the verifier needs it.
type History struct {
	// Confirmed holds the confirmed purchases, up to a bound (see Truncated).
	Confirmed []ConfirmedOrder
	// Replays holds the idempotency probes.
	Replays []Replay
	// ConfirmedQty counts confirmed units per item, never truncated.
	ConfirmedQty map[string]int64
	// UnknownQty counts, per item, the units of purchases that ended without
	// an order after some send left the outcome open (timeout, 5xx, 503
	// unavailable): the server may have sold them.
	UnknownQty map[string]int64
	// UnknownPurchases is the number of such purchases.
	UnknownPurchases int64
	// Truncated is set when Confirmed stopped growing at its bound.
	Truncated bool
}

// OrderLookup is one sampled GET /v1/orders/{id}.
type OrderLookup struct {
	OrderID  string
	Found    bool      // 200
	NotFound bool      // 404
	Got      OrderView // when Found
	Err      string    // why it could not be read, when neither
}

// StoredOrder is one row of the downstream order store.
type StoredOrder struct {
	OrderID  string
	ItemID   string
	UserID   string
	Quantity int64
}

// OrderStore is the hook for checking the order store behind the cluster:
// the sharded MySQL tables (a binary that links a MySQL driver implements it
// and passes it in Deps.OrderStore) or any other copy of the orders. The
// verifier checks that every confirmed order is stored exactly once and that
// each item's stored units equal its sold count. Methods are called from one
// goroutine, may block until ctx is done, and must honour ctx.
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
}

// Evidence is everything the verifier judges.
type Evidence struct {
	History History
	// Items are the items of the run.
	Items []string
	// Before and After are the items as the server showed them before and
	// after the load. An item missing from Before counts as having sold 0.
	Before map[string]ItemState
	After  map[string]ItemState
	// Lookups are the sampled order reads.
	Lookups []OrderLookup
	// Store is the order store's view; nil when there is no OrderStore.
	Store *StoreEvidence
}

// ItemVerdict is one item's books.
type ItemVerdict struct {
	ID           string `json:"id"`
	Stock        int64  `json:"stock"`
	PerUserLimit int64  `json:"per_user_limit"`
	SoldBefore   int64  `json:"sold_before"`
	Sold         int64  `json:"sold"`
	Remaining    int64  `json:"remaining"`
	Status       string `json:"status"`
	// Confirmed is the units the loadgen saw confirmed; Unknown the units
	// whose outcome it never learnt. A correct server has
	// Confirmed <= Sold-SoldBefore <= Confirmed+Unknown.
	Confirmed int64 `json:"confirmed_seen"`
	Unknown   int64 `json:"unknown"`
	Pass      bool  `json:"pass"`
}

// Verdict is the verifier's answer.
type Verdict struct {
	Pass     bool          `json:"pass"`
	Problems []string      `json:"problems,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
	Items    []ItemVerdict `json:"items"`
	// OrdersChecked orders were read back, OrdersPersisted of them marked persisted.
	OrdersChecked   int `json:"orders_checked"`
	OrdersPersisted int `json:"orders_persisted"`
}

// problemsPerKindMax bounds the problems listed per kind; the rest are counted.
const problemsPerKindMax = 10

// findings collects problems by kind, keeping the first few of each.
type findings struct {
	problems []string
	notes    []string
	perKind  map[string]int
}

func (f *findings) fail(kind, format string, args ...any) {
	if f.perKind == nil {
		f.perKind = make(map[string]int)
	}
	f.perKind[kind]++
	if f.perKind[kind] <= problemsPerKindMax {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

func (f *findings) note(format string, args ...any) {
	f.notes = append(f.notes, fmt.Sprintf(format, args...))
}

// finish appends the "and N more" lines, in a stable order.
func (f *findings) finish() {
	kinds := make([]string, 0, len(f.perKind))
	for k, n := range f.perKind {
		if n > problemsPerKindMax {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		f.problems = append(f.problems, fmt.Sprintf("... and %d more %s problems", f.perKind[k]-problemsPerKindMax, k))
	}
}

// Check judges the evidence. It is a pure function: the engine gathers the
// evidence, tests can feed it any history.
func Check(ev Evidence) Verdict {
	var f findings
	v := Verdict{}
	h := ev.History

	// Per item: stock, sold and remaining against what was seen.
	for _, id := range ev.Items {
		iv, ok := checkItem(&f, id, ev)
		if ok {
			v.Items = append(v.Items, iv)
		}
	}

	// Per order: replies echo the request, order IDs are unique, a
	// request_id maps to one order, no user goes over the limit.
	type reqKey struct{ user, requestID string }
	byOrder := make(map[string]ConfirmedOrder, len(h.Confirmed))
	byRequest := make(map[reqKey]string, len(h.Confirmed))
	type userKey struct{ item, user string }
	userUnits := make(map[userKey]int64)
	for _, c := range h.Confirmed {
		id := c.Got.OrderID
		checkEcho(&f, c)
		k := reqKey{c.UserID, c.RequestID}
		if prev, ok := byRequest[k]; ok {
			if prev != id {
				f.fail("request_id", "request_id %q of user %s confirmed as two orders: %s and %s", c.RequestID, c.UserID, prev, id)
			}
			continue // the same purchase recorded twice holds one order
		}
		byRequest[k] = id
		if prev, ok := byOrder[id]; ok {
			f.fail("order_id", "order %s confirmed to two purchases: user %s request %q and user %s request %q",
				id, prev.UserID, prev.RequestID, c.UserID, c.RequestID)
			continue
		}
		byOrder[id] = c
		userUnits[userKey{c.ItemID, c.UserID}] += c.Quantity
	}
	limits := make(map[string]int64)
	for id, it := range ev.After {
		limits[id] = it.PerUserLimit
	}
	users := make([]userKey, 0, len(userUnits))
	for k := range userUnits {
		users = append(users, k)
	}
	slices.SortFunc(users, func(a, b userKey) int {
		if a.item != b.item {
			return cmp.Compare(a.item, b.item)
		}
		return cmp.Compare(a.user, b.user)
	})
	for _, k := range users {
		if limit, ok := limits[k.item]; ok && limit > 0 && userUnits[k] > limit {
			f.fail("per_user_limit", "user %s holds %d units of item %s, limit %d", k.user, userUnits[k], k.item, limit)
		}
	}
	if h.Truncated {
		f.note("per-order checks covered the first %d confirmed orders only (recorder bound)", len(h.Confirmed))
	}

	// Replays: the same request_id must come back with the same order.
	unanswered, created := 0, 0
	for _, rp := range h.Replays {
		switch {
		case rp.Outcome.ok():
			if rp.Outcome == OutcomeConfirmed {
				created++
			}
			if rp.Got.OrderID != rp.OrderID {
				f.fail("request_id", "request_id %q of user %s confirmed as order %s, its replay as order %s",
					rp.RequestID, rp.UserID, rp.OrderID, rp.Got.OrderID)
			}
		case rp.Outcome.Unknown() || rp.Outcome.rejected():
			unanswered++
		default:
			f.fail("replay", "replay of request_id %q of user %s (order %s) answered %s %s instead of the order",
				rp.RequestID, rp.UserID, rp.OrderID, rp.Outcome, rp.Code)
		}
	}
	if unanswered > 0 {
		f.note("%d of %d replays got no definitive answer", unanswered, len(h.Replays))
	}
	if created > 0 {
		f.note("%d replays were answered 201 rather than 200", created)
	}

	// Sampled order reads.
	for _, l := range ev.Lookups {
		c, known := byOrder[l.OrderID]
		switch {
		case l.NotFound:
			f.fail("order_lookup", "confirmed order %s: GET /v1/orders answered 404", l.OrderID)
		case !l.Found:
			f.note("order %s could not be read: %s", l.OrderID, l.Err)
		case !known:
			f.note("order %s was read back but is not in the history", l.OrderID)
		default:
			v.OrdersChecked++
			if l.Got.Persisted != nil && *l.Got.Persisted {
				v.OrdersPersisted++
			}
			if diff := orderDiff(c, l.Got); diff != "" {
				f.fail("order_lookup", "order %s read back %s", l.OrderID, diff)
			}
		}
	}

	if ev.Store != nil {
		checkStore(&f, ev, byOrder)
	}

	f.finish()
	v.Problems, v.Notes = f.problems, f.notes
	v.Pass = len(v.Problems) == 0
	return v
}

// checkItem checks one item's counters; ok is false if it was not read.
func checkItem(f *findings, id string, ev Evidence) (ItemVerdict, bool) {
	after, ok := ev.After[id]
	if !ok {
		f.fail("item", "item %s: not read back after the run", id)
		return ItemVerdict{}, false
	}
	before := ev.Before[id] // zero: created by this run
	seen, unknown := ev.History.ConfirmedQty[id], ev.History.UnknownQty[id]
	iv := ItemVerdict{
		ID: id, Stock: after.Stock, PerUserLimit: after.PerUserLimit,
		SoldBefore: before.Sold, Sold: after.Sold, Remaining: after.Remaining, Status: after.Status,
		Confirmed: seen, Unknown: unknown,
	}
	n := len(f.problems)
	delta := after.Sold - before.Sold
	if before.Sold+seen > after.Stock {
		f.fail("oversell", "item %s oversold: %d units confirmed in this run + %d sold before > stock %d",
			id, seen, before.Sold, after.Stock)
	}
	if after.Sold > after.Stock || after.Remaining < 0 {
		f.fail("oversell", "item %s oversold: sold %d, remaining %d, stock %d", id, after.Sold, after.Remaining, after.Stock)
	}
	if after.Remaining != after.Stock-after.Sold {
		f.fail("counters", "item %s: remaining %d != stock %d - sold %d", id, after.Remaining, after.Stock, after.Sold)
	}
	if _, had := ev.Before[id]; had && before.Stock != after.Stock {
		f.fail("counters", "item %s: stock changed during the run from %d to %d", id, before.Stock, after.Stock)
	}
	if delta < seen {
		f.fail("lost_order", "item %s: server sold %d units in this run but confirmed %d to the loadgen (confirmed orders lost)",
			id, delta, seen)
	}
	if delta > seen+unknown {
		f.fail("unconfirmed_sale", "item %s: server sold %d units in this run, the loadgen saw %d confirmed and %d unknown (%d sold without a confirmation)",
			id, delta, seen, unknown, delta-seen-unknown)
	}
	if unknown > 0 && delta >= seen && delta <= seen+unknown {
		f.note("item %s: %d of %d units with unknown outcome were sold", id, delta-seen, unknown)
	}
	iv.Pass = len(f.problems) == n
	return iv, true
}

// checkEcho checks that a confirmation describes the purchase that was made.
func checkEcho(f *findings, c ConfirmedOrder) {
	if c.Got.OrderID == "" {
		f.fail("reply", "user %s request %q: confirmation without an order_id", c.UserID, c.RequestID)
	}
	if diff := orderDiff(c, c.Got); diff != "" {
		f.fail("reply", "order %s confirmed %s", c.Got.OrderID, diff)
	}
}

// orderDiff describes how got differs from the purchase c; "" if it matches.
// Fields the server left empty are not compared.
func orderDiff(c ConfirmedOrder, got OrderView) string {
	switch {
	case got.OrderID != "" && got.OrderID != c.Got.OrderID:
		return fmt.Sprintf("as order %s", got.OrderID)
	case got.ItemID != "" && got.ItemID != c.ItemID:
		return fmt.Sprintf("for item %s, bought item %s", got.ItemID, c.ItemID)
	case got.UserID != "" && got.UserID != c.UserID:
		return fmt.Sprintf("for user %s, bought by %s", got.UserID, c.UserID)
	case got.Quantity != 0 && got.Quantity != c.Quantity:
		return fmt.Sprintf("with quantity %d, bought %d", got.Quantity, c.Quantity)
	case got.Status != "" && got.Status != "confirmed" && got.Status != "paid":
		return fmt.Sprintf("with status %q", got.Status)
	}
	return ""
}

// checkStore checks the order store against the confirmed orders and the
// items' sold counts.
func checkStore(f *findings, ev Evidence, byOrder map[string]ConfirmedOrder) {
	ids := make([]string, 0, len(byOrder))
	for id := range byOrder {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		c := byOrder[id]
		rows := ev.Store.Orders[id]
		switch len(rows) {
		case 0:
			f.fail("store", "order %s (item %s, user %s) is missing from the order store", id, c.ItemID, c.UserID)
		case 1:
			r := rows[0]
			if r.ItemID != c.ItemID || r.UserID != c.UserID || r.Quantity != c.Quantity {
				f.fail("store", "order %s stored as item %s user %s quantity %d, bought item %s user %s quantity %d",
					id, r.ItemID, r.UserID, r.Quantity, c.ItemID, c.UserID, c.Quantity)
			}
		default:
			f.fail("store", "order %s is stored %d times", id, len(rows))
		}
	}
	for _, id := range ev.Items {
		after, ok := ev.After[id]
		if !ok {
			continue
		}
		if got := ev.Store.SoldUnits[id]; got != after.Sold {
			f.fail("store", "item %s: order store holds %d units, server sold %d", id, got, after.Sold)
		}
	}
}
