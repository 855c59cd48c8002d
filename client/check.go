package client

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Invariant names the promise a problem breaks.
type Invariant string

// The invariants Check holds a sale to.
const (
	// Oversell: more units confirmed or sold than the stock, units sold
	// that no shopper was told about, or counters that do not add up
	// (remaining != stock - sold, a stock that changed, an item that could
	// not be read back, so that nothing shows it was not oversold).
	Oversell Invariant = "oversell"
	// Lost: a confirmed order the server no longer has as confirmed: fewer
	// units sold than confirmed, a request_id whose replay does not return
	// its order, an order missing from the order store or stored, read back
	// or echoed as another purchase.
	Lost Invariant = "lost"
	// Duplicate: one purchase with two orders, one order for two
	// purchases, an order stored twice, more units stored than sold.
	Duplicate Invariant = "duplicate"
	// Limit: a user holding more units of an item than its per-user limit.
	Limit Invariant = "limit"
)

// ConfirmedOrder is a purchase the server confirmed: what was asked, and
// the order that came back.
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
	// Confirmed is the units the shoppers saw confirmed; Unknown the units
	// whose outcome they never learnt. A correct server has
	// Confirmed <= Sold-SoldBefore <= Confirmed+Unknown.
	Confirmed int64 `json:"confirmed_seen"`
	Unknown   int64 `json:"unknown"`
	Pass      bool  `json:"pass"`
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
func Check(ev Evidence) Verdict {
	var f findings
	var v Verdict
	for _, id := range ev.Items {
		if iv, ok := checkItem(&f, id, ev); ok {
			v.Items = append(v.Items, iv)
		}
	}
	byOrder, byRequest := checkOrders(&f, ev)
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

// checkItem checks one item's counters on every read; ok is false if no
// read has it.
func checkItem(f *findings, id string, ev Evidence) (ItemVerdict, bool) {
	agreed, ok := Agreed(ev.After, id)
	if !ok {
		f.fail(Oversell, "item %s: not read back after the run%s", id, readErrors(ev.After, id))
		return ItemVerdict{}, false
	}
	before, had := ev.Before[id]
	seen, unknown := ev.History.ConfirmedQty[id], ev.History.UnknownQty[id]
	stock := agreed.Stock
	if had {
		stock = before.Stock
	}
	n := f.total()
	if before.Sold+seen > stock {
		f.fail(Oversell, "item %s oversold: %d units confirmed in this run + %d sold before > stock %d", id, seen, before.Sold, stock)
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
		checkCounters(f, at, id, ev.Before, after, seen, unknown)
	}
	delta := agreed.Sold - before.Sold
	if unknown > 0 && delta >= seen && delta <= seen+unknown {
		f.note("item %s: %d of %d units with unknown outcome were sold", id, delta-seen, unknown)
	}
	return ItemVerdict{
		ID: id, Stock: agreed.Stock, PerUserLimit: agreed.PerUserLimit,
		SoldBefore: before.Sold, Sold: agreed.Sold, Remaining: agreed.Remaining, Status: agreed.Status,
		Confirmed: seen, Unknown: unknown, Pass: f.total() == n,
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
// before the load and what the shoppers saw; at names the target.
func checkCounters(f *findings, at, id string, before map[string]ItemState, after ItemState, seen, unknown int64) {
	b, had := before[id]
	delta := after.Sold - b.Sold
	if after.Sold > after.Stock || after.Remaining < 0 {
		f.fail(Oversell, "%sitem %s oversold: sold %d, remaining %d, stock %d", at, id, after.Sold, after.Remaining, after.Stock)
	}
	if after.Remaining != after.Stock-after.Sold {
		f.fail(Oversell, "%sitem %s: remaining %d != stock %d - sold %d", at, id, after.Remaining, after.Stock, after.Sold)
	}
	if had && b.Stock != after.Stock {
		f.fail(Oversell, "%sitem %s: stock changed during the run from %d to %d", at, id, b.Stock, after.Stock)
	}
	if delta < seen {
		f.fail(Lost, "%sitem %s: server sold %d units in this run but confirmed %d to the shoppers (confirmed orders lost)",
			at, id, delta, seen)
	}
	if delta > seen+unknown {
		f.fail(Oversell, "%sitem %s: server sold %d units in this run, the shoppers saw %d confirmed and %d unknown (%d sold without a confirmation)",
			at, id, delta, seen, unknown, delta-seen-unknown)
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
		userUnits[userKey{c.ItemID, c.UserID}] += c.Quantity
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
	case got.Status != "" && got.Status != "confirmed" && got.Status != "paid":
		return fmt.Sprintf("with status %q", got.Status)
	}
	return ""
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
	default:
		f.fail(Duplicate, "order %s is stored %d times", id, len(rows))
	}
}
