package client

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/flashstock/flashstock/orders"
)

// Invariant names the promise a problem breaks.
type Invariant string

// The invariants Check holds a sale to.
const (
	// Oversell: more units held than the stock (with the restocks that may
	// have been applied), units sold that no shopper was told about, or
	// counters that do not add up (remaining != stock - sold, a stock that
	// grew by more than the restocks sent, an item that could not be read
	// back, so that nothing shows it was not oversold), or an order that
	// ended paid after its buyer was told it had expired.
	Oversell Invariant = "oversell"
	// Lost: a confirmed order the server no longer has as confirmed: fewer
	// units sold than held, a request_id whose replay does not return its
	// order, an order missing from the order store or stored, read back or
	// echoed as another purchase; an acknowledged payment whose order did
	// not end paid; an acknowledged restock missing from the stock.
	Lost Invariant = "lost"
	// Duplicate: one purchase with two orders, one order for two
	// purchases, an order stored twice, more units stored than sold.
	Duplicate Invariant = "duplicate"
	// Limit: a user holding more units of an item than its per-user limit
	// (orders that came back, expired or cancelled, hold none).
	Limit Invariant = "limit"
)

// PaymentOutcome is what the buyer of an order was told when paying it
// (POST /v1/orders/{id}/pay).
type PaymentOutcome uint8

// The payment outcomes. The zero value is an order that was not paid, or
// whose every payment attempt was refused before the sale decided it.
const (
	PaymentNone    PaymentOutcome = iota
	PaymentPaid                   // 200: the payment was acknowledged
	PaymentExpired                // 409 order_expired: too late, its units went back on sale
	PaymentUnknown                // no decided answer (a timeout, a 5xx): it may have been paid
)

var paymentNames = [...]string{"none", "paid", "expired", "unknown"}

// String returns the outcome's report name.
func (p PaymentOutcome) String() string {
	if int(p) < len(paymentNames) {
		return paymentNames[p]
	}
	return "invalid"
}

// ConfirmedOrder is a purchase the server confirmed: what was asked, and
// the order that came back.
type ConfirmedOrder struct {
	ItemID    string
	UserID    string
	RequestID string
	Quantity  int64
	Got       OrderView
	// Final is the order's status read after the run, once no payment or
	// expiry could change it any more; "" when it was not read: the order
	// counts as held, as every order does in a sale without a payment
	// window or cancellations. An order whose final status is expired or
	// cancelled gave its units back: it holds none. The units given back
	// are summed over History.Confirmed, so a history that sets Final must
	// hold every confirmed order (not Truncated).
	Final orders.Status
	// Payment is what its buyer was told when paying it.
	Payment PaymentOutcome
}

// returned reports whether the order is known to have given its units back.
func (c ConfirmedOrder) returned() bool { return c.Final.Returned() }

// Replay is a confirmed purchase sent again with the same request_id.
type Replay struct {
	ItemID    string
	UserID    string
	RequestID string
	OrderID   string    // the order the first confirmation carried
	Target    int       // the target asked (see Evidence.ReplayTargets)
	Outcome   Outcome   // the answer to the re-send
	Status    int       // its HTTP status; 0 for none
	Code      string    // its error code, if any
	Err       string    // why there was no answer, if none
	Got       OrderView // the order it carried, when Outcome is OK
}

// History is what the shoppers of a run saw, as the checker needs it.
type History struct {
	// Confirmed holds the confirmations, up to a bound (see Truncated).
	// One purchase (item, user, request_id) may appear more than once: a
	// correct server confirmed it as the same order each time.
	Confirmed []ConfirmedOrder
	// Replays holds the idempotency probes.
	Replays []Replay
	// ConfirmedQty counts confirmed units per item, never truncated.
	ConfirmedQty map[string]int64
	// UnknownQty counts, per item, the units of purchases that ended
	// without an order after some send left the outcome open (a timeout,
	// a 5xx, 503 unknown_outcome): the server may have sold them.
	UnknownQty map[string]int64
	// UnknownPurchases is the number of such purchases.
	UnknownPurchases int64
	// RestockedQty counts, per item, the units of the restocks the server
	// acknowledged during the run; RestockUnknownQty those of restocks
	// whose outcome is unknown (a timeout, a broken connection, 503
	// unknown_outcome), which may or may not have been applied. Restocks
	// are positive deltas. Both nil: no restocks, and the stock must not
	// change.
	RestockedQty      map[string]int64
	RestockUnknownQty map[string]int64
	// Truncated is set when Confirmed stopped growing at its bound.
	Truncated bool
}

// OrderLookup is one GET /v1/orders/{id} of a confirmed order.
type OrderLookup struct {
	OrderID  string
	Found    bool      // 200
	NotFound bool      // 404
	Got      OrderView // when Found
	Err      string    // why it could not be read, when neither
}

// ItemReads are the items as one read of the targets showed them.
type ItemReads struct {
	// Target names who answered, in problems ("n0"); "" when any target
	// may have.
	Target string
	Items  map[string]ItemState
	// Errs says why an item is missing from Items.
	Errs map[string]string
}

// Evidence is everything Check judges.
type Evidence struct {
	History History
	// Items are the items of the run.
	Items []string
	// Before holds the items as they were before the load (or as they
	// were created). An item missing here counts as having sold 0, with
	// the stock it shows after the load.
	Before map[string]ItemState
	// After holds the items as read after the load: one ItemReads per
	// read (a harness may read any one target, or every node).
	After []ItemReads
	// ReplayTargets, when not empty, names the targets every confirmed
	// purchase must be replayed on: each must answer 200 with the original
	// order (Replay.Target indexes this list). When empty, replays are a
	// sample: those answered must carry the original order.
	ReplayTargets []string
	// Lookups are order reads by ID.
	Lookups []OrderLookup
	// Store is the order store's view; nil when there is none.
	Store *StoreEvidence
}

// ItemVerdict is one item's books, from the read most targets agree on.
type ItemVerdict struct {
	ID           string `json:"id"`
	Stock        int64  `json:"stock"`
	PerUserLimit int64  `json:"per_user_limit"`
	SoldBefore   int64  `json:"sold_before"`
	Sold         int64  `json:"sold"`
	Remaining    int64  `json:"remaining"`
	Status       string `json:"status"`
	// Confirmed is the units the shoppers saw confirmed; Returned those of
	// them whose orders gave them back (expired or cancelled); Unknown the
	// units whose outcome they never learnt. A correct server has
	// Confirmed-Returned <= Sold-SoldBefore <= Confirmed-Returned+Unknown.
	Confirmed int64 `json:"confirmed_seen"`
	Returned  int64 `json:"returned,omitempty"`
	Unknown   int64 `json:"unknown"`
	// Restocked is the units of acknowledged restocks, RestockUnknown those
	// of restocks whose outcome is unknown.
	Restocked      int64 `json:"restocked,omitempty"`
	RestockUnknown int64 `json:"restock_unknown,omitempty"`
	Pass           bool  `json:"pass"`
}

// Verdict is Check's answer.
type Verdict struct {
	Pass     bool     `json:"pass"`
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	// Violations counts the problems per invariant, including those not
	// listed in Problems.
	Violations map[Invariant]int `json:"violations,omitempty"`
	Items      []ItemVerdict     `json:"items"`
	// OrdersChecked orders were read back, OrdersPersisted of them marked
	// persisted.
	OrdersChecked   int `json:"orders_checked"`
	OrdersPersisted int `json:"orders_persisted"`
}

// problemsPerKindMax bounds the problems listed per invariant; the rest are
// counted.
const problemsPerKindMax = 10

// findings collects problems by invariant, keeping the first few of each.
type findings struct {
	problems []string
	notes    []string
	count    map[Invariant]int // violations
	listed   map[Invariant]int // problems listed
	omitted  map[Invariant]int // problems counted but not listed
}

// failN records n violations of kind, described by one problem.
func (f *findings) failN(kind Invariant, n int, problem string) {
	if f.count == nil {
		f.count, f.listed, f.omitted = make(map[Invariant]int), make(map[Invariant]int), make(map[Invariant]int)
	}
	f.count[kind] += n
	if f.listed[kind] >= problemsPerKindMax {
		f.omitted[kind]++
		return
	}
	f.listed[kind]++
	f.problems = append(f.problems, problem)
}

func (f *findings) fail(kind Invariant, format string, args ...any) {
	f.failN(kind, 1, fmt.Sprintf(format, args...))
}

func (f *findings) note(format string, args ...any) {
	f.notes = append(f.notes, fmt.Sprintf(format, args...))
}

// total returns the violations so far.
func (f *findings) total() int {
	n := 0
	for _, c := range f.count {
		n += c
	}
	return n
}

// finish appends the "and N more" lines, in a stable order.
func (f *findings) finish() {
	kinds := make([]Invariant, 0, len(f.omitted))
	for k := range f.omitted {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		f.problems = append(f.problems, fmt.Sprintf("... and %d more %s problems", f.omitted[k], k))
	}
}

// purchaseKey names one purchase: a request_id is scoped to the shopper
// and the item.
type purchaseKey struct{ item, user, requestID string }

// Check judges the evidence. It is a pure function: a harness gathers the
// evidence, tests can feed it any history.
//
// Stock comes back in two ways, both judged here when the history says so
// (zero values mean neither happened): restocks (History.RestockedQty,
// RestockUnknownQty) and orders that gave their units back, expired or
// cancelled (ConfirmedOrder.Final). The units an item holds for this run's
// shoppers are then those of its confirmed orders that did not come back,
// and every bound is on them: held <= stock before + restocks, held <=
// sold after - before <= held + unknown purchases, the stock grown by the
// acknowledged restocks and at most the unknown ones, and the per-user
// limit on what each user still holds.
func Check(ev Evidence) Verdict {
	var f findings
	var v Verdict
	back := returnedUnits(ev.History.Confirmed)
	for _, id := range ev.Items {
		if iv, ok := checkItem(&f, id, ev, back[id]); ok {
			v.Items = append(v.Items, iv)
		}
	}
	byOrder, byRequest := checkOrders(&f, ev)
	checkPayments(&f, byOrder)
	checkReplays(&f, ev.History.Replays, len(ev.ReplayTargets) > 0)
	if len(ev.ReplayTargets) > 0 {
		checkEveryTarget(&f, ev, byRequest)
	}
	v.OrdersChecked, v.OrdersPersisted = checkLookups(&f, ev.Lookups, byOrder)
	if ev.Store != nil {
		checkStore(&f, ev, byOrder)
	}
	f.finish()
	v.Problems, v.Notes, v.Violations = f.problems, f.notes, f.count
	v.Pass = len(v.Problems) == 0
	return v
}

// Agreed returns item id as most reads that could read it agree on its
// sold count (the lowest count on a tie), so that one broken or lagging
// target does not set the figure; false if no read has it.
func Agreed(reads []ItemReads, id string) (ItemState, bool) {
	votes := make(map[int64]int)
	first := make(map[int64]ItemState)
	for _, r := range reads {
		if it, ok := r.Items[id]; ok {
			if votes[it.Sold]++; votes[it.Sold] == 1 {
				first[it.Sold] = it
			}
		}
	}
	best, bestVotes := int64(0), 0
	for sold, n := range votes {
		if n > bestVotes || (n == bestVotes && sold < best) {
			best, bestVotes = sold, n
		}
	}
	return first[best], bestVotes > 0
}

// returnedUnits sums, per item, the units of the confirmed orders that
// gave them back (expired or cancelled), each order once.
func returnedUnits(confirmed []ConfirmedOrder) map[string]int64 {
	seen := make(map[string]bool)
	out := make(map[string]int64)
	for _, c := range confirmed {
		if !c.returned() || seen[c.Got.OrderID] {
			continue
		}
		seen[c.Got.OrderID] = true
		out[c.ItemID] += c.Quantity
	}
	return out
}

// units is what the shoppers hold of one item from this run: seen units
// confirmed, returned of them given back, unknown whose outcome they never
// learnt; and the restocks sent, acknowledged or of unknown outcome.
type units struct {
	seen, returned, unknown   int64
	restocked, restockUnknown int64
}

// held is the units of confirmed orders that did not come back.
func (u units) held() int64 { return u.seen - u.returned }

// heldText describes the held units: the confirmed ones, and how many came
// back if any did.
func (u units) heldText() string {
	if u.returned == 0 {
		return fmt.Sprint(u.seen)
	}
	return fmt.Sprintf("%d (held %d, %d came back)", u.seen, u.held(), u.returned)
}

// restockText describes the restocks, if any.
func (u units) restockText() string {
	if u.restocked == 0 && u.restockUnknown == 0 {
		return ""
	}
	return fmt.Sprintf(" (restocks acknowledged %+d, unknown up to %+d)", u.restocked, u.restockUnknown)
}

// checkItem checks one item's counters on every read; returned is the
// units of its confirmed orders that came back. ok is false if no read has
// it.
func checkItem(f *findings, id string, ev Evidence, returned int64) (ItemVerdict, bool) {
	agreed, ok := Agreed(ev.After, id)
	if !ok {
		f.fail(Oversell, "item %s: not read back after the run%s", id, readErrors(ev.After, id))
		return ItemVerdict{}, false
	}
	before, had := ev.Before[id]
	u := units{
		seen: ev.History.ConfirmedQty[id], returned: returned, unknown: ev.History.UnknownQty[id],
		restocked: ev.History.RestockedQty[id], restockUnknown: ev.History.RestockUnknownQty[id],
	}
	stock := agreed.Stock // the restocks applied included
	if had {
		stock = before.Stock + u.restocked + u.restockUnknown
	}
	n := f.total()
	if before.Sold+u.held() > stock {
		what := "confirmed"
		if u.returned > 0 {
			what = fmt.Sprintf("held (%d confirmed, %d came back)", u.seen, u.returned)
		}
		f.fail(Oversell, "item %s oversold: %d units %s in this run + %d sold before > stock %d%s",
			id, u.held(), what, before.Sold, stock, u.restockText())
	}
	for _, r := range ev.After {
		at := ""
		if r.Target != "" {
			at = r.Target + ": "
		}
		after, ok := r.Items[id]
		if !ok {
			f.fail(Oversell, "%sitem %s unreadable: %s", at, id, r.Errs[id])
			continue
		}
		checkCounters(f, at, id, ev.Before, after, u)
	}
	delta := agreed.Sold - before.Sold
	if u.unknown > 0 && delta >= u.held() && delta <= u.held()+u.unknown {
		f.note("item %s: %d of %d units with unknown outcome were sold", id, delta-u.held(), u.unknown)
	}
	if u.restockUnknown > 0 && had {
		if grew := agreed.Stock - before.Stock; grew >= u.restocked && grew <= u.restocked+u.restockUnknown {
			f.note("item %s: %d of %d restocked units with unknown outcome were added", id, grew-u.restocked, u.restockUnknown)
		}
	}
	return ItemVerdict{
		ID: id, Stock: agreed.Stock, PerUserLimit: agreed.PerUserLimit,
		SoldBefore: before.Sold, Sold: agreed.Sold, Remaining: agreed.Remaining, Status: agreed.Status,
		Confirmed: u.seen, Returned: u.returned, Unknown: u.unknown,
		Restocked: u.restocked, RestockUnknown: u.restockUnknown, Pass: f.total() == n,
	}, true
}

// readErrors says why no read has item id.
func readErrors(reads []ItemReads, id string) string {
	var why []string
	for _, r := range reads {
		if e := r.Errs[id]; e != "" {
			why = append(why, strings.TrimSpace(r.Target+" "+e))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return ": " + strings.Join(why, "; ")
}

// checkCounters checks one read of one item against itself, its state
// before the load and what the shoppers saw (u); at names the target.
func checkCounters(f *findings, at, id string, before map[string]ItemState, after ItemState, u units) {
	b, had := before[id]
	delta := after.Sold - b.Sold
	if after.Sold > after.Stock || after.Remaining < 0 {
		f.fail(Oversell, "%sitem %s oversold: sold %d, remaining %d, stock %d", at, id, after.Sold, after.Remaining, after.Stock)
	}
	if after.Remaining != after.Stock-after.Sold {
		f.fail(Oversell, "%sitem %s: remaining %d != stock %d - sold %d", at, id, after.Remaining, after.Stock, after.Sold)
	}
	if grew := after.Stock - b.Stock; had && (grew < u.restocked || grew > u.restocked+u.restockUnknown) {
		// An acknowledged restock missing from the stock is a lost write;
		// any other change is stock nobody sent.
		kind, why := Oversell, ""
		if grew < u.restocked && u.restocked > 0 {
			kind, why = Lost, ": acknowledged restocks lost"
		}
		f.fail(kind, "%sitem %s: stock changed during the run from %d to %d%s%s", at, id, b.Stock, after.Stock, u.restockText(), why)
	}
	if delta < u.held() {
		f.fail(Lost, "%sitem %s: server sold %d units in this run but confirmed %s to the shoppers (confirmed orders lost)",
			at, id, delta, u.heldText())
	}
	if delta > u.held()+u.unknown {
		f.fail(Oversell, "%sitem %s: server sold %d units in this run, the shoppers saw %s confirmed and %d unknown (%d sold without a confirmation)",
			at, id, delta, u.heldText(), u.unknown, delta-u.held()-u.unknown)
	}
}

// checkOrders checks the confirmations: each echoes its purchase, an order
// ID belongs to one purchase, a purchase has one order, no user goes over
// the limit. It returns the confirmations by order ID and the order ID of
// each purchase that has a request_id.
func checkOrders(f *findings, ev Evidence) (map[string]ConfirmedOrder, map[purchaseKey]string) {
	h := ev.History
	byOrder := make(map[string]ConfirmedOrder, len(h.Confirmed))
	byRequest := make(map[purchaseKey]string, len(h.Confirmed))
	type userKey struct{ item, user string }
	userUnits := make(map[userKey]int64)
	for _, c := range h.Confirmed {
		id := c.Got.OrderID
		checkEcho(f, c)
		if k := (purchaseKey{c.ItemID, c.UserID, c.RequestID}); c.RequestID != "" {
			if prev, ok := byRequest[k]; ok {
				if prev != id {
					f.fail(Duplicate, "request_id %q of user %s confirmed as two orders: %s and %s", c.RequestID, c.UserID, prev, id)
				}
				continue // the same purchase recorded twice holds one order
			}
			byRequest[k] = id
		}
		if prev, ok := byOrder[id]; ok {
			f.fail(Duplicate, "order %s confirmed to two purchases: user %s request %q and user %s request %q",
				id, prev.UserID, prev.RequestID, c.UserID, c.RequestID)
			continue
		}
		byOrder[id] = c
		if !c.returned() {
			userUnits[userKey{c.ItemID, c.UserID}] += c.Quantity
		}
	}
	users := make([]userKey, 0, len(userUnits))
	for k := range userUnits {
		users = append(users, k)
	}
	slices.SortFunc(users, func(a, b userKey) int {
		return cmp.Or(cmp.Compare(a.item, b.item), cmp.Compare(a.user, b.user))
	})
	for _, k := range users {
		if limit := perUserLimit(ev, k.item); limit > 0 && userUnits[k] > limit {
			f.fail(Limit, "user %s holds %d units of item %s, limit %d", k.user, userUnits[k], k.item, limit)
		}
	}
	if h.Truncated {
		f.note("per-order checks covered the first %d confirmed orders only (recorder bound)", len(h.Confirmed))
	}
	return byOrder, byRequest
}

// perUserLimit returns item's per-user limit as it was before the load, or
// as read after it; 0 if unknown.
func perUserLimit(ev Evidence, item string) int64 {
	if b, ok := ev.Before[item]; ok && b.PerUserLimit > 0 {
		return b.PerUserLimit
	}
	a, _ := Agreed(ev.After, item)
	return a.PerUserLimit
}

// checkPayments holds the payments to the orders' final statuses: an
// acknowledged payment must leave its order paid, never expired or
// cancelled (the payment was lost), and an order whose buyer was told it
// had expired must not end paid (its units were back on sale).
func checkPayments(f *findings, byOrder map[string]ConfirmedOrder) {
	ids := make([]string, 0, len(byOrder))
	for id, c := range byOrder {
		if c.Payment == PaymentPaid || c.Payment == PaymentExpired {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	unread := 0
	for _, id := range ids {
		c := byOrder[id]
		switch {
		case c.Final == "":
			unread++
		case c.Payment == PaymentPaid && c.Final != orders.StatusPaid:
			f.fail(Lost, "order %s (item %s, user %s): payment acknowledged, but the order ended %s", id, c.ItemID, c.UserID, c.Final)
		case c.Payment == PaymentExpired && c.Final == orders.StatusPaid:
			f.fail(Oversell, "order %s (item %s, user %s): payment answered order_expired (its units back on sale), but the order ended paid",
				id, c.ItemID, c.UserID)
		}
	}
	if unread > 0 {
		f.note("%d orders with a decided payment have no final status: their payments are not judged", unread)
	}
}

// checkEcho checks that a confirmation describes the purchase that was made.
func checkEcho(f *findings, c ConfirmedOrder) {
	if c.Got.OrderID == "" {
		f.fail(Lost, "user %s request %q: confirmation without an order_id", c.UserID, c.RequestID)
	}
	if diff := orderDiff(c, c.Got); diff != "" {
		f.fail(Lost, "order %s confirmed %s", c.Got.OrderID, diff)
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
	case got.RequestID != "" && c.RequestID != "" && got.RequestID != c.RequestID:
		return fmt.Sprintf("for request_id %q, sent %q", got.RequestID, c.RequestID)
	case got.Quantity != 0 && got.Quantity != c.Quantity:
		return fmt.Sprintf("with quantity %d, bought %d", got.Quantity, c.Quantity)
	case got.Status != "" && !statusFits(orders.Status(got.Status), c.Final):
		if c.Final != "" {
			return fmt.Sprintf("with status %q, final status %q", got.Status, c.Final)
		}
		return fmt.Sprintf("with status %q", got.Status)
	}
	return ""
}

// statusFits reports whether an order read in status got may be the order
// whose final status is final ("" not known): statuses only move forward,
// from confirmed to paid, expired or cancelled. Without a final status
// only confirmed and paid fit: an order that gave its units back must be
// known to have.
func statusFits(got, final orders.Status) bool {
	switch got {
	case orders.StatusConfirmed:
		return true
	case orders.StatusPaid:
		return final == "" || final == orders.StatusPaid
	case orders.StatusExpired, orders.StatusCancelled:
		return final == got
	}
	return false
}

// checkReplays checks that a replay answered with an order carries the
// original one. With every target required (everyTarget), refusals and
// unanswered replays are judged per target by checkEveryTarget; otherwise
// a refusal is a lost order and an unanswered replay a note.
func checkReplays(f *findings, replays []Replay, everyTarget bool) {
	unanswered, created := 0, 0
	for _, rp := range replays {
		switch {
		case rp.Outcome.OK():
			if rp.Outcome == OutcomeConfirmed {
				created++
			}
			if rp.Got.OrderID != rp.OrderID {
				f.fail(Duplicate, "request_id %q of user %s confirmed as order %s, its replay as order %s",
					rp.RequestID, rp.UserID, rp.OrderID, rp.Got.OrderID)
			}
		case everyTarget:
		case rp.Outcome.Unknown() || rp.Outcome.Rejected():
			unanswered++
		default:
			f.fail(Lost, "replay of request_id %q of user %s (order %s) answered %s %s instead of the order",
				rp.RequestID, rp.UserID, rp.OrderID, rp.Outcome, rp.Code)
		}
	}
	if unanswered > 0 {
		f.note("%d of %d replays got no definitive answer", unanswered, len(replays))
	}
	if created > 0 && !everyTarget {
		f.note("%d replays were answered 201 rather than 200", created)
	}
}

// examplesMax bounds the examples given per target of checkEveryTarget.
const examplesMax = 3

// targetMisses are the confirmed purchases one target did not return.
type targetMisses struct {
	n        int
	reasons  map[string]int
	examples []string
}

// checkEveryTarget checks that every confirmed purchase with a request_id
// was returned, 200 with its original order, by some replay on each of
// ev.ReplayTargets. Each purchase a target did not return is a lost order;
// the problems are one line per target, with the reasons counted.
func checkEveryTarget(f *findings, ev Evidence, byRequest map[purchaseKey]string) {
	type key struct {
		p      purchaseKey
		target int
	}
	why := make(map[key]string) // "" returned; else the last answer that did not
	for _, rp := range ev.History.Replays {
		if rp.Target < 0 || rp.Target >= len(ev.ReplayTargets) {
			continue
		}
		k := key{purchaseKey{rp.ItemID, rp.UserID, rp.RequestID}, rp.Target}
		if prev, seen := why[k]; !seen || prev != "" {
			why[k] = replayMiss(rp, byRequest[k.p])
		}
	}
	purchases := make([]purchaseKey, 0, len(byRequest))
	for p := range byRequest {
		purchases = append(purchases, p)
	}
	slices.SortFunc(purchases, func(a, b purchaseKey) int {
		return cmp.Or(cmp.Compare(a.item, b.item), cmp.Compare(a.user, b.user), cmp.Compare(a.requestID, b.requestID))
	})
	misses := make([]targetMisses, len(ev.ReplayTargets))
	for _, p := range purchases {
		for t := range misses {
			got, seen := why[key{p, t}]
			if seen && got == "" {
				continue
			}
			reason := "not replayed there"
			if seen {
				reason = missReason(got)
			}
			m := &misses[t]
			if m.reasons == nil {
				m.reasons = make(map[string]int)
			}
			m.n++
			m.reasons[reason]++
			if len(m.examples) < examplesMax {
				m.examples = append(m.examples, fmt.Sprintf("%s (order %s): %s", p.requestID, byRequest[p], cmp.Or(got, reason)))
			}
		}
	}
	for t, m := range misses {
		if m.n > 0 {
			f.failN(Lost, m.n, fmt.Sprintf("%s: %d of %d confirmed purchases not returned by their request_id: %s; e.g. %s",
				ev.ReplayTargets[t], m.n, len(purchases), countReasons(m.reasons), strings.Join(m.examples, "; ")))
		}
	}
}

// replayMiss returns "" if rp returned order want with a 200, else what it
// answered.
func replayMiss(rp Replay, want string) string {
	switch {
	case rp.Outcome == OutcomeReplayed && rp.Got.OrderID == want:
		return ""
	case rp.Outcome.OK():
		return fmt.Sprintf("%d order %s", rp.Status, rp.Got.OrderID)
	case rp.Err != "":
		return rp.Err
	}
	return fmt.Sprintf("%d %s", rp.Status, rp.Code)
}

// missReason groups what a target answered to the replay of a confirmed
// purchase.
func missReason(got string) string {
	switch {
	case strings.HasPrefix(got, "201 "):
		return "answered 201: a new order (the target had forgotten the request)"
	case strings.HasPrefix(got, "200 "):
		return "answered 200 with another order"
	case len(got) > 3 && got[3] == ' ' && got[0] >= '1' && got[0] <= '5':
		return "answered " + got
	}
	if i := strings.LastIndex(got, ": "); i >= 0 {
		got = got[i+2:]
	}
	return "failed: " + got
}

// countReasons lists reasons with their counts, in a stable order.
func countReasons(reasons map[string]int) string {
	keys := make([]string, 0, len(reasons))
	for r := range reasons {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, r := range keys {
		parts[i] = fmt.Sprintf("%d %s", reasons[r], r)
	}
	return strings.Join(parts, ", ")
}

// checkLookups checks the orders read back by ID; it returns how many were
// checked and how many of those were marked persisted.
func checkLookups(f *findings, lookups []OrderLookup, byOrder map[string]ConfirmedOrder) (checked, persisted int) {
	for _, l := range lookups {
		c, known := byOrder[l.OrderID]
		switch {
		case l.NotFound:
			f.fail(Lost, "confirmed order %s: GET /v1/orders answered 404", l.OrderID)
		case !l.Found:
			f.note("order %s could not be read: %s", l.OrderID, l.Err)
		case !known:
			f.note("order %s was read back but is not in the history", l.OrderID)
		default:
			checked++
			if l.Got.Persisted != nil && *l.Got.Persisted {
				persisted++
			}
			if diff := orderDiff(c, l.Got); diff != "" {
				f.fail(Lost, "order %s read back %s", l.OrderID, diff)
			}
		}
	}
	return checked, persisted
}

// checkStore checks the order store against the confirmed orders and the
// items' sold counts.
func checkStore(f *findings, ev Evidence, byOrder map[string]ConfirmedOrder) {
	st := ev.Store
	if st.Err != "" {
		f.fail(Lost, "order store: %s", st.Err)
		return
	}
	ids := make([]string, 0, len(byOrder))
	for id := range byOrder {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		checkStoredRows(f, byOrder[id], st.Orders[id])
	}
	for _, id := range ev.Items {
		after, ok := Agreed(ev.After, id)
		if !ok {
			continue
		}
		switch got := st.SoldUnits[id]; {
		case got < after.Sold:
			f.fail(Lost, "item %s: order store holds %d units, server sold %d", id, got, after.Sold)
		case got > after.Sold:
			f.fail(Duplicate, "item %s: order store holds %d units, server sold %d", id, got, after.Sold)
		}
	}
}

// checkStoredRows checks the stored copies of one confirmed order.
func checkStoredRows(f *findings, c ConfirmedOrder, rows []StoredOrder) {
	id := c.Got.OrderID
	switch len(rows) {
	case 0:
		f.fail(Lost, "order %s (item %s, user %s) is missing from the order store", id, c.ItemID, c.UserID)
	case 1:
		r := rows[0]
		if r.ItemID != c.ItemID || r.UserID != c.UserID || r.Quantity != c.Quantity ||
			(r.RequestID != "" && c.RequestID != "" && r.RequestID != c.RequestID) {
			f.fail(Lost, "order %s stored as item %s user %s request %q quantity %d, bought item %s user %s request %q quantity %d",
				id, r.ItemID, r.UserID, r.RequestID, r.Quantity, c.ItemID, c.UserID, c.RequestID, c.Quantity)
		}
		// The store must end with the order's final status: a payment,
		// expiry or cancel that never reached it is lost there.
		if c.Final != "" && r.Status != "" && r.Status != string(c.Final) {
			f.fail(Lost, "order %s is %s in the order store, %s in the sale", id, r.Status, c.Final)
		}
	default:
		f.fail(Duplicate, "order %s is stored %d times", id, len(rows))
	}
}
