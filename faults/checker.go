package faults

import (
	"cmp"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/orders"
)

// detailsMax bounds the anomaly lines kept per scenario.
const detailsMax = 40

// Op is one purchase (one request_id) as the history tells it.
type Op struct {
	Item      string
	User      string
	RequestID string
	Quantity  int
	// RunOutcome is the outcome when the sale ended; Outcome is the final
	// one, after settling: ok, fail (the sale refused it, or every attempt
	// was shed) or info (unknown).
	RunOutcome string
	Outcome    string
	// Order is the first order ID an ok attempt returned (sale or settle).
	Order string
	// Orders holds every distinct order ID the sale and the settling
	// returned for the request ID, in the order they came.
	Orders []string
	// Codes are the codes of the sale's refusals.
	Codes []string
	// Unknown is set when an attempt during the sale had an unknown
	// outcome (timeout, connection error, 503 unknown_outcome, other 5xx).
	Unknown bool

	runTally, tally tally
}

// tally counts the kinds of answers a purchase got.
type tally struct{ ok, fail, shed, info int }

func (t *tally) add(outcome string) {
	switch outcome {
	case OutcomeOK:
		t.ok++
	case OutcomeFail:
		t.fail++
	case OutcomeShed:
		t.shed++
	case OutcomeInfo:
		t.info++
	}
}

// outcome is what the answers tell: an order; else a refusal by the sale;
// else unknown if some attempt may have committed; else, every attempt shed,
// definitely not bought.
func (t tally) outcome() string {
	switch {
	case t.ok > 0:
		return OutcomeOK
	case t.fail > 0:
		return OutcomeFail
	case t.info > 0:
		return OutcomeInfo
	case t.shed > 0:
		return OutcomeFail
	}
	return OutcomeInfo
}

// Final is the state read after the sale and the settling.
type Final struct {
	Items []ItemSpec
	// Views are the items as each node reported them, read once every node
	// agreed or the wait ran out.
	Views []client.ItemReads
	// Store is what the order store held once it caught up with Raft or the
	// wait ran out; nil when it was not read.
	Store *client.StoreEvidence
	// RunStartMs and RunEndMs bound the sale.
	RunStartMs, RunEndMs float64
	// HotItem is the item whose confirmations measure availability.
	HotItem string
	// PayWindow is the nodes' --payment-window; 0: none, orders are final
	// when confirmed.
	PayWindow time.Duration
}

// RestockTally counts the restocks of a scenario: those sent; acknowledged
// (OK), of unknown outcome, definitely not applied (Failed: refused, or
// shed on every attempt); and their units per item.
type RestockTally struct {
	Sent         int              `json:"sent"`
	OK           int              `json:"ok"`
	Unknown      int              `json:"unknown"`
	Failed       int              `json:"failed"`
	Units        map[string]int64 `json:"units,omitempty"`         // acknowledged
	UnknownUnits map[string]int64 `json:"unknown_units,omitempty"` // of unknown outcome
}

// PaymentTally counts the orders the shoppers paid, by what they were
// told: paid, order_expired (too late), unknown (no decided answer), or
// not paid otherwise (Other: every attempt shed, or a refusal other than
// order_expired, an anomaly).
type PaymentTally struct {
	Orders  int `json:"orders"`
	Paid    int `json:"paid"`
	Expired int `json:"expired"`
	Unknown int `json:"unknown"`
	Other   int `json:"other,omitempty"`
}

// Result is the checked outcome of one scenario.
type Result struct {
	Fault string   `json:"fault"`
	About string   `json:"about"`
	Notes []string `json:"notes,omitempty"`
	// Purchases of the sale and their outcomes when the sale ended: OK,
	// Failed (definite), or neither. Unknown purchases had at least one
	// attempt with an unknown outcome; Settled of those got a decided
	// answer by a retry with the same request_id (during the sale or after
	// it), Unsettled never did.
	Ops       int `json:"ops"`
	OK        int `json:"ok"`
	Failed    int `json:"failed"`
	Unknown   int `json:"unknown"`
	Settled   int `json:"settled"`
	Unsettled int `json:"unsettled"`
	// Units confirmed and units sold (as most nodes report), per item.
	Units map[string]int64 `json:"units"`
	Sold  map[string]int64 `json:"sold"`
	// Stock that came back. PayWindow is the nodes' payment window (0:
	// none); Restocks and Payments count what the admin and the shoppers
	// sent; Returned is, per item, the units of confirmed orders that gave
	// them back (expired or cancelled); Resold is, per item, the units of
	// those sold again, at least: the units confirmed beyond the final
	// stock. Unexpired counts the orders still confirmed, neither paid nor
	// expired, when read after their payment window (an anomaly).
	PayWindow time.Duration    `json:"pay_window,omitempty"`
	Restocks  RestockTally     `json:"restocks"`
	Payments  PaymentTally     `json:"payments"`
	Returned  map[string]int64 `json:"returned_units,omitempty"`
	Resold    map[string]int64 `json:"resold_units,omitempty"`
	Unexpired int              `json:"unexpired,omitempty"`
	// Violations per invariant (client.Check's).
	Oversell  int `json:"oversell"`
	Lost      int `json:"lost"`
	Duplicate int `json:"duplicate"`
	Limit     int `json:"limit"`
	// Availability of the hot item: the longest time without a confirmed
	// purchase during the sale; from the (first) fault to the first
	// confirmed purchase that started after it; from the (last) heal to the
	// first confirmed purchase that started after it. Negative: none.
	MaxGap     time.Duration `json:"max_gap"`
	AfterFault time.Duration `json:"after_fault"`
	AfterHeal  time.Duration `json:"after_heal"`
	NoRecovery bool          `json:"no_recovery"`
	// Violations and Anomalies describe what went wrong; anomalies
	// (unexpected status codes) do not fail the run.
	Violations []string      `json:"violations,omitempty"`
	Anomalies  []string      `json:"anomalies,omitempty"`
	Error      string        `json:"error,omitempty"`
	Elapsed    time.Duration `json:"elapsed"`
}

// Passed reports whether the scenario ran and kept every invariant.
func (r *Result) Passed() bool {
	return r.Error == "" && r.Oversell == 0 && r.Lost == 0 && r.Duplicate == 0 && r.Limit == 0 &&
		r.Unsettled == 0 && !r.NoRecovery
}

func (r *Result) anomaly(format string, args ...any) {
	if len(r.Anomalies) < detailsMax {
		r.Anomalies = append(r.Anomalies, fmt.Sprintf(format, args...))
	}
}

// purchasePhase reports whether the events of a phase are purchase
// attempts that may decide a purchase: the sale's and the settling's.
// Lookups (verify), payments, final reads, restocks and faults are not.
func purchasePhase(phase string) bool { return phase == PhaseRun || phase == PhaseSettle }

// Summarize groups a history's purchase attempts by request ID. Lookups
// (the verify phase) do not change a purchase's outcome.
func Summarize(events []Event) map[string]*Op {
	ops := map[string]*Op{}
	for _, e := range events {
		if !purchasePhase(e.Phase) || e.RequestID == "" {
			continue
		}
		op := ops[e.RequestID]
		if op == nil {
			op = &Op{Item: e.Item, User: e.User, RequestID: e.RequestID, Quantity: e.Quantity}
			ops[e.RequestID] = op
		}
		op.tally.add(e.Outcome)
		if e.Phase == PhaseRun {
			op.runTally.add(e.Outcome)
			op.Unknown = op.Unknown || e.Outcome == OutcomeInfo
		}
		switch e.Outcome {
		case OutcomeOK:
			if op.Order == "" {
				op.Order = e.OrderID
			}
			if !contains(op.Orders, e.OrderID) {
				op.Orders = append(op.Orders, e.OrderID)
			}
		case OutcomeFail:
			op.Codes = append(op.Codes, e.Code)
		}
	}
	for _, op := range ops {
		op.RunOutcome, op.Outcome = op.runTally.outcome(), op.tally.outcome()
	}
	return ops
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// sortedOps returns the purchases by request ID.
func sortedOps(ops map[string]*Op) []*Op {
	out := make([]*Op, 0, len(ops))
	for _, op := range ops {
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RequestID < out[j].RequestID })
	return out
}

// restocks tallies the restock events by restock (RequestID): one
// acknowledged attempt makes it OK; else an unknown one makes it unknown
// (it is never sent again); else it was not applied.
func restocks(events []Event) RestockTally {
	type restock struct {
		item   string
		delta  int64
		answer tally
	}
	byID := map[string]*restock{}
	var ids []string
	for _, e := range events {
		if e.Phase != PhaseRestock {
			continue
		}
		r := byID[e.RequestID]
		if r == nil {
			r = &restock{item: e.Item, delta: e.Delta}
			byID[e.RequestID] = r
			ids = append(ids, e.RequestID)
		}
		r.answer.add(e.Outcome)
	}
	t := RestockTally{Units: map[string]int64{}, UnknownUnits: map[string]int64{}}
	for _, id := range ids {
		r := byID[id]
		t.Sent++
		switch {
		case r.answer.ok > 0:
			t.OK++
			t.Units[r.item] += r.delta
		case r.answer.info > 0:
			t.Unknown++
			t.UnknownUnits[r.item] += r.delta
		default:
			t.Failed++
		}
	}
	return t
}

// payments returns what each paid order's buyer was told, by order ID: an
// acknowledged attempt makes it paid; else order_expired makes it expired;
// else an unknown attempt makes it unknown; else (shed or refused
// otherwise) it was not paid.
func payments(events []Event) map[string]client.PaymentOutcome {
	answers := map[string]*tally{}
	expired := map[string]bool{}
	for _, e := range events {
		if e.Phase != PhasePay {
			continue
		}
		if answers[e.OrderID] == nil {
			answers[e.OrderID] = &tally{}
		}
		answers[e.OrderID].add(e.Outcome)
		expired[e.OrderID] = expired[e.OrderID] || e.Code == "order_expired"
	}
	out := make(map[string]client.PaymentOutcome, len(answers))
	for id, t := range answers {
		switch {
		case t.ok > 0:
			out[id] = client.PaymentPaid
		case expired[id]:
			out[id] = client.PaymentExpired
		case t.info > 0:
			out[id] = client.PaymentUnknown
		default:
			out[id] = client.PaymentNone
		}
	}
	return out
}

// evidence turns a scenario's history and final state into what
// client.Check judges: every confirmed purchase must be returned by its
// request ID on every node; with a payment window, each confirmed order
// carries its final status and what its buyer was told when paying it.
func evidence(ops []*Op, events []Event, f Final) client.Evidence {
	ev := client.Evidence{
		History:       client.History{ConfirmedQty: map[string]int64{}, UnknownQty: map[string]int64{}},
		Before:        map[string]client.ItemState{},
		After:         f.Views,
		ReplayTargets: make([]string, nodes),
		Store:         f.Store,
	}
	rs := restocks(events)
	ev.History.RestockedQty, ev.History.RestockUnknownQty = rs.Units, rs.UnknownUnits
	finals, paid := finalStatuses(events), payments(events)
	for _, it := range f.Items {
		ev.Items = append(ev.Items, it.ID)
		ev.Before[it.ID] = client.ItemState{ID: it.ID, Stock: it.Stock, Remaining: it.Stock, PerUserLimit: int64(it.Limit)}
	}
	for i := range ev.ReplayTargets {
		ev.ReplayTargets[i] = nodeName(i)
	}
	order := map[string]string{} // request ID -> the order it was confirmed as
	for _, op := range ops {
		switch op.Outcome {
		case OutcomeOK:
			ev.History.ConfirmedQty[op.Item] += int64(op.Quantity)
			order[op.RequestID] = op.Order
			for _, o := range op.Orders {
				ev.History.Confirmed = append(ev.History.Confirmed, client.ConfirmedOrder{
					ItemID: op.Item, UserID: op.User, RequestID: op.RequestID, Quantity: int64(op.Quantity),
					Got: client.OrderView{OrderID: o}, Final: orders.Status(finals[o].status), Payment: paid[o],
				})
			}
		case OutcomeInfo:
			ev.History.UnknownQty[op.Item] += int64(op.Quantity)
			ev.History.UnknownPurchases++
		}
	}
	for _, e := range events {
		if e.Phase == PhaseVerify {
			ev.History.Replays = append(ev.History.Replays, replayOf(e, order[e.RequestID]))
		}
	}
	return ev
}

// replayOf is a lookup event as client.Check reads it.
func replayOf(e Event, orderID string) client.Replay {
	o, ok := client.ParseOutcome(e.Answer)
	if !ok {
		o = client.OutcomeBadResponse // a history without answers: unknown
	}
	return client.Replay{
		ItemID: e.Item, UserID: e.User, RequestID: e.RequestID, OrderID: orderID, Target: e.Node,
		Outcome: o, Status: e.Status, Code: e.Code, Err: e.Err, Got: client.OrderView{OrderID: e.OrderID},
	}
}

// Evaluate checks a scenario's history and final state against the
// invariants (client.Check), and measures the hot item's availability.
func Evaluate(fault string, events []Event, f Final) Result {
	r := Result{Fault: fault, Units: map[string]int64{}, Sold: map[string]int64{}, AfterFault: -1, AfterHeal: -1}
	ops := sortedOps(Summarize(events))
	r.count(ops)
	anomalies(&r, events, f.HotItem)

	ev := evidence(ops, events, f)
	v := client.Check(ev)
	r.Oversell, r.Lost = v.Violations[client.Oversell], v.Violations[client.Lost]
	r.Duplicate, r.Limit = v.Violations[client.Duplicate], v.Violations[client.Limit]
	r.Violations = append(r.Violations, v.Problems...)
	r.Notes = append(r.Notes, v.Notes...)
	for id, n := range ev.History.ConfirmedQty {
		r.Units[id] = n
	}
	for _, it := range v.Items {
		r.Sold[it.ID] = it.Sold
	}
	stockBack(&r, ev, v, events, f)
	availability(&r, events, f)
	return r
}

// stockBack counts the stock that came back: restocks, payments, the units
// of orders that expired and how many were sold again. With a payment
// window, an order whose final status was never read, or read still
// confirmed past its deadline, or read in two final statuses, is an
// anomaly; so is a lookup, after the final reads, that shows another final
// status than they did, and a payment whose answer the clock contradicts
// (payWindowAnomalies).
func stockBack(r *Result, ev client.Evidence, v client.Verdict, events []Event, f Final) {
	r.PayWindow = f.PayWindow
	r.Restocks = restocks(events)
	for _, p := range payments(events) {
		r.Payments.Orders++
		switch p {
		case client.PaymentPaid:
			r.Payments.Paid++
		case client.PaymentExpired:
			r.Payments.Expired++
		case client.PaymentUnknown:
			r.Payments.Unknown++
		default:
			r.Payments.Other++
		}
	}
	r.Returned, r.Resold = map[string]int64{}, map[string]int64{}
	for _, it := range v.Items {
		if it.Returned > 0 {
			r.Returned[it.ID] = it.Returned
		}
		if n := it.Confirmed - it.Stock; it.Returned > 0 && n > 0 {
			r.Resold[it.ID] = n
		}
	}
	if f.PayWindow <= 0 {
		return
	}
	finals := finalStatuses(events)
	unread := 0
	for _, c := range ev.History.Confirmed {
		fr := finals[c.Got.OrderID]
		switch {
		case fr.status == "":
			unread++
		case fr.status == string(orders.StatusConfirmed):
			r.Unexpired++
		}
		if fr.conflict != "" {
			r.anomaly("order %s read %s and %s after its payment window", c.Got.OrderID, fr.status, fr.conflict)
		}
	}
	if unread > 0 {
		r.anomaly("%d confirmed orders' final status could not be read: they count as held", unread)
	}
	if r.Unexpired > 0 {
		r.anomaly("%d confirmed orders were neither paid nor expired %v past their payment window", r.Unexpired, finalMargin)
	}
	for _, e := range events {
		if fr := finals[e.OrderID]; e.Phase == PhaseVerify && e.Outcome == OutcomeOK && settledStatus(e.OrderStatus) &&
			settledStatus(fr.status) && e.OrderStatus != fr.status {
			r.anomaly("verify %s on n%d: order %s %s, read %s after its window", e.RequestID, e.Node, e.OrderID, e.OrderStatus, fr.status)
		}
	}
	payWindowAnomalies(r, events, f.PayWindow)
}

// payWindowAnomalies notes payments whose answer the suite's clock
// contradicts (the nodes share it): order_expired although the payment was
// answered before the window could have closed (counted from the start of
// the purchase, before the leader stamped it), or paid although it was sent
// after the window had closed for sure (counted from the confirmation).
func payWindowAnomalies(r *Result, events []Event, window time.Duration) {
	type span struct{ start, end float64 }
	confirmed := map[string]span{}
	for _, e := range events {
		if purchasePhase(e.Phase) && e.Outcome == OutcomeOK {
			if _, ok := confirmed[e.OrderID]; !ok {
				confirmed[e.OrderID] = span{e.StartMs, e.EndMs}
			}
		}
	}
	windowMs := float64(window) / float64(time.Millisecond)
	for _, e := range events {
		c, ok := confirmed[e.OrderID]
		switch {
		case e.Phase != PhasePay || !ok:
		case e.Code == "order_expired" && e.EndMs-c.start < windowMs:
			r.anomaly("pay %s attempt %d on n%d: order_expired %v after the purchase was sent (window %v)",
				e.OrderID, e.Attempt, e.Node, msDuration(e.EndMs-c.start).Round(time.Millisecond), window)
		case e.Outcome == OutcomeOK && e.Attempt == 1 && e.StartMs-c.end > windowMs:
			r.anomaly("pay %s on n%d: paid, sent %v after the confirmation (window %v)",
				e.OrderID, e.Node, msDuration(e.StartMs-c.end).Round(time.Millisecond), window)
		}
	}
}

// count tallies the purchases' outcomes; a purchase left unknown after the
// settling is a violation.
func (r *Result) count(ops []*Op) {
	for _, op := range ops {
		r.Ops++
		switch op.RunOutcome {
		case OutcomeOK:
			r.OK++
		case OutcomeFail:
			r.Failed++
		}
		if !op.Unknown && op.RunOutcome != OutcomeInfo {
			continue
		}
		r.Unknown++
		if op.Outcome != OutcomeInfo {
			r.Settled++
			continue
		}
		r.Unsettled++
		r.Violations = append(r.Violations, fmt.Sprintf("request %s (%s, user %s) never got a definite answer", op.RequestID, op.Item, op.User))
	}
}

// anomalies notes answers a correct cluster under these faults does not
// give: a 5xx other than 503, a refusal other than sold out or the limit
// (order_expired for a payment), any refusal of a hot purchase (every one
// has a user of its own, within the limit: a refusal means a retry did not
// find its own earlier order), and any refusal of a restock or of a final
// read.
func anomalies(r *Result, events []Event, hot string) {
	for _, e := range events {
		switch {
		case e.Phase == PhaseNemesis:
		case e.Status >= 500 && e.Status != 503,
			e.Outcome == OutcomeFail && !expectedCode(e.Phase, e.Code):
			r.anomaly("%s %s attempt %d on n%d: %d %s", e.Phase, cmp.Or(e.OrderID, e.RequestID), e.Attempt, e.Node, e.Status, e.Code)
		case e.Outcome == OutcomeFail && e.Item == hot && purchasePhase(e.Phase):
			r.anomaly("%s %s (hot, a user of its own) attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		}
	}
}

// expectedCode reports whether a refusal is one a sale produces in phase.
func expectedCode(phase, code string) bool {
	switch phase {
	case PhasePay:
		return code == "order_expired"
	case PhaseRestock, PhaseFinal:
		return false
	}
	return code == "sold_out" || code == "limit_exceeded"
}

// availability measures the hot item's confirmations around the faults; no
// confirmation after the last heal is a violation.
func availability(r *Result, events []Event, f Final) {
	var confirms, injects, heals []float64
	for _, e := range events {
		switch {
		case e.Phase == PhaseNemesis && e.Outcome == "inject":
			injects = append(injects, e.StartMs)
		case e.Phase == PhaseNemesis && e.Outcome == "heal":
			heals = append(heals, e.EndMs)
		case e.Phase == PhaseRun && e.Item == f.HotItem && e.Outcome == OutcomeOK:
			confirms = append(confirms, e.EndMs)
		}
	}
	sort.Float64s(confirms)
	prev, gap := f.RunStartMs, 0.0
	for _, t := range confirms {
		gap = math.Max(gap, t-prev)
		prev = t
	}
	r.MaxGap = msDuration(math.Max(gap, f.RunEndMs-prev))
	firstAfter := func(t float64) time.Duration {
		best := -1.0
		for _, e := range events {
			if e.Phase == PhaseRun && e.Item == f.HotItem && e.Outcome == OutcomeOK && e.StartMs >= t &&
				(best < 0 || e.EndMs < best) {
				best = e.EndMs
			}
		}
		if best < 0 {
			return -1
		}
		return msDuration(best - t)
	}
	if len(injects) > 0 {
		r.AfterFault = firstAfter(injects[0])
	}
	if len(heals) > 0 {
		last := heals[len(heals)-1]
		if r.AfterHeal = firstAfter(last); r.AfterHeal < 0 {
			r.NoRecovery = true
			r.Violations = append(r.Violations, fmt.Sprintf("no confirmed %s purchase in the %v between the last heal and the end of the sale",
				f.HotItem, msDuration(f.RunEndMs-last).Round(time.Millisecond)))
		}
	}
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
