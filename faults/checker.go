package faults

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/flashstock/flashstock/client"
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

// Summarize groups a history's purchase attempts by request ID. Lookups
// (the verify phase) do not change a purchase's outcome.
func Summarize(events []Event) map[string]*Op {
	ops := map[string]*Op{}
	for _, e := range events {
		if e.Phase == PhaseNemesis || e.Phase == PhaseVerify || e.RequestID == "" {
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

// evidence turns a scenario's history and final state into what
// client.Check judges: every confirmed purchase must be returned by its
// request ID on every node.
func evidence(ops []*Op, events []Event, f Final) client.Evidence {
	ev := client.Evidence{
		History:       client.History{ConfirmedQty: map[string]int64{}, UnknownQty: map[string]int64{}},
		Before:        map[string]client.ItemState{},
		After:         f.Views,
		ReplayTargets: make([]string, nodes),
		Store:         f.Store,
	}
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
					Got: client.OrderView{OrderID: o},
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
	availability(&r, events, f)
	return r
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
// give: a 5xx other than 503, a refusal other than sold out or the limit,
// and any refusal of a hot purchase (every one has a user of its own, within
// the limit: a refusal means a retry did not find its own earlier order).
func anomalies(r *Result, events []Event, hot string) {
	for _, e := range events {
		switch {
		case e.Phase == PhaseNemesis:
		case e.Status >= 500 && e.Status != 503,
			e.Outcome == OutcomeFail && !expectedCode(e.Code):
			r.anomaly("%s %s attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		case e.Outcome == OutcomeFail && e.Item == hot:
			r.anomaly("%s %s (hot, a user of its own) attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		}
	}
}

// expectedCode reports whether a refusal is one a sale produces.
func expectedCode(code string) bool { return code == "sold_out" || code == "limit_exceeded" }

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
