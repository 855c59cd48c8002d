package faults

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// detailsMax bounds the violation and anomaly lines kept per scenario.
const detailsMax = 40

// Op is one purchase (one request_id) as the history tells it.
type Op struct {
	Item      string
	User      string
	RequestID string
	Quantity  int
	// RunOutcome is the outcome when the sale ended; Outcome is the final
	// one, after settling.
	RunOutcome string
	Outcome    string
	// Order is the first order ID an ok attempt returned (sale or settle).
	Order string
	// Orders counts every distinct order ID returned for the request ID
	// (sale, settle, and verification lookups that answered 200).
	Orders map[string]bool
	// Codes are the definite failure codes returned.
	Codes []string
	// Unknown is set when an attempt during the sale had an unknown
	// outcome (timeout, connection error, 503, 5xx).
	Unknown bool
}

// NodeView is an item as one node reports it (GET /v1/items/{id}).
type NodeView struct {
	Stock     int64  `json:"stock"`
	Remaining int64  `json:"remaining"`
	Sold      int64  `json:"sold"`
	Err       string `json:"err,omitempty"`
}

// StoredOrder is an order row in MySQL.
type StoredOrder struct {
	ItemID    string `json:"item_id"`
	UserID    string `json:"user_id"`
	RequestID string `json:"request_id"`
	Quantity  int    `json:"quantity"`
}

// Final is the state read after the sale and the settling.
type Final struct {
	Items []ItemSpec
	// Views[i][item] is node i's view, read once every node agreed or the
	// wait ran out.
	Views [nodes]map[string]NodeView
	// RaftSold is the units sold per item as most readable nodes report
	// them (see raftSold).
	RaftSold map[string]int64
	// MySQLSold is SoldByItem once it matched or the wait ran out.
	MySQLSold map[string]int64
	MySQLErr  string
	// Copies[order_id] are the rows stored for each confirmed order.
	Copies map[string][]StoredOrder
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
	// attempt with an unknown outcome; Settled of those got a definite
	// answer by a retry with the same request_id (during the sale or
	// after it), Unsettled never did.
	Ops       int `json:"ops"`
	OK        int `json:"ok"`
	Failed    int `json:"failed"`
	Unknown   int `json:"unknown"`
	Settled   int `json:"settled"`
	Unsettled int `json:"unsettled"`
	// Units confirmed and units sold (as node 0 reports), per item.
	Units map[string]int64 `json:"units"`
	Sold  map[string]int64 `json:"sold"`
	// Violations per invariant.
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

func (r *Result) violation(format string, args ...any) {
	if len(r.Violations) < detailsMax {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

func (r *Result) anomaly(format string, args ...any) {
	if len(r.Anomalies) < detailsMax {
		r.Anomalies = append(r.Anomalies, fmt.Sprintf(format, args...))
	}
}

// Summarize groups a history's purchase attempts by request ID.
func Summarize(events []Event) map[string]*Op {
	ops := map[string]*Op{}
	for _, e := range events {
		if e.Phase == PhaseNemesis || e.RequestID == "" {
			continue
		}
		op := ops[e.RequestID]
		if op == nil {
			op = &Op{Item: e.Item, User: e.User, RequestID: e.RequestID, Quantity: e.Quantity,
				RunOutcome: OutcomeInfo, Outcome: OutcomeInfo, Orders: map[string]bool{}}
			ops[e.RequestID] = op
		}
		if e.Outcome == OutcomeOK && !(e.Phase == PhaseVerify && e.Status != 200) {
			op.Orders[e.OrderID] = true
		}
		if e.Phase == PhaseVerify {
			continue
		}
		if e.Phase == PhaseRun && e.Outcome == OutcomeInfo {
			op.Unknown = true
		}
		switch e.Outcome {
		case OutcomeOK:
			if op.Order == "" {
				op.Order = e.OrderID
			}
			op.Outcome = OutcomeOK
		case OutcomeFail:
			op.Codes = append(op.Codes, e.Code)
			if op.Outcome != OutcomeOK {
				op.Outcome = OutcomeFail
			}
		}
		if e.Phase == PhaseRun {
			op.RunOutcome = op.Outcome
		}
	}
	return ops
}

// Check checks a scenario's history and final state against the
// invariants.
func Check(fault string, events []Event, f Final) Result {
	r := Result{Fault: fault, Units: map[string]int64{}, Sold: map[string]int64{}, AfterFault: -1, AfterHeal: -1}
	ops := Summarize(events)
	ids := make([]string, 0, len(ops))
	for id := range ops {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	items := map[string]ItemSpec{}
	for _, it := range f.Items {
		items[it.ID] = it
	}

	// Outcomes and anomalies.
	for _, e := range events {
		switch {
		case e.Phase == PhaseNemesis:
		case e.Status >= 500 && e.Status != 503:
			r.anomaly("%s %s attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		case e.Outcome == OutcomeFail && !expectedCode(e.Code):
			r.anomaly("%s %s attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		case e.Outcome == OutcomeFail && e.Item == f.HotItem:
			// Every hot purchase has a user of its own, within the limit:
			// a refusal means a retry did not find its own earlier order.
			r.anomaly("%s %s (hot, a user of its own) attempt %d on n%d: %d %s", e.Phase, e.RequestID, e.Attempt, e.Node, e.Status, e.Code)
		}
	}
	for _, id := range ids {
		op := ops[id]
		r.Ops++
		switch op.RunOutcome {
		case OutcomeOK:
			r.OK++
		case OutcomeFail:
			r.Failed++
		}
		if op.Unknown || op.RunOutcome == OutcomeInfo {
			r.Unknown++
			if op.Outcome == OutcomeInfo {
				r.Unsettled++
				r.violation("request %s (%s, user %s) never got a definite answer", id, op.Item, op.User)
			} else {
				r.Settled++
			}
		}
	}

	// 3. No duplicate: one order per request ID, one request ID per order.
	byOrder := map[string]string{}
	for _, id := range ids {
		op := ops[id]
		if len(op.Orders) > 1 {
			r.Duplicate++
			r.violation("request %s returned %d different orders: %s", id, len(op.Orders), strings.Join(sortedKeys(op.Orders), ", "))
		}
		for o := range op.Orders {
			if prev, ok := byOrder[o]; ok && prev != id {
				r.Duplicate++
				r.violation("order %s returned for requests %s and %s", o, prev, id)
			}
			byOrder[o] = id
		}
	}

	// 4. Per-user limits.
	perUser := map[[2]string]int64{}
	for _, id := range ids {
		if op := ops[id]; op.Outcome == OutcomeOK {
			r.Units[op.Item] += int64(op.Quantity)
			perUser[[2]string{op.Item, op.User}] += int64(op.Quantity)
		}
	}
	for k, n := range perUser {
		if it, ok := items[k[0]]; ok && n > int64(it.Limit) {
			r.Limit++
			r.violation("user %s confirmed %d units of %s; limit %d", k[1], n, k[0], it.Limit)
		}
	}

	// 1. No oversell: confirmed <= stock; on every node remaining = stock -
	// sold and sold = confirmed.
	for _, it := range f.Items {
		units := r.Units[it.ID]
		if units > it.Stock {
			r.Oversell++
			r.violation("%s: %d units confirmed; stock %d", it.ID, units, it.Stock)
		}
		for i := 0; i < nodes; i++ {
			v, ok := f.Views[i][it.ID]
			switch {
			case !ok || v.Err != "":
				r.Oversell++
				r.violation("n%d: %s unreadable: %s", i, it.ID, v.Err)
				continue
			case v.Stock != it.Stock || v.Remaining != v.Stock-v.Sold || v.Sold > v.Stock || v.Remaining < 0:
				r.Oversell++
				r.violation("n%d: %s stock %d remaining %d sold %d (created with stock %d)", i, it.ID, v.Stock, v.Remaining, v.Sold, it.Stock)
			case v.Sold > units:
				r.Oversell++
				r.violation("n%d: %s sold %d; %d units confirmed to shoppers (sold without a confirmation)", i, it.ID, v.Sold, units)
			case v.Sold < units:
				r.Lost++
				r.violation("n%d: %s sold %d; %d units confirmed to shoppers", i, it.ID, v.Sold, units)
			}
		}
		r.Sold[it.ID] = f.RaftSold[it.ID]
	}

	// 2. No lost order: every confirmed request ID returns its order on
	// every node; every confirmed order is in MySQL exactly once.
	type key struct {
		rid  string
		node int
	}
	verified := map[key]string{} // "" ok; else what the node answered
	for _, e := range events {
		if e.Phase != PhaseVerify {
			continue
		}
		k := key{e.RequestID, e.Node}
		op := ops[e.RequestID]
		var got string
		switch {
		case e.Outcome == OutcomeOK && e.Status == 200 && op != nil && e.OrderID == op.Order:
			got = ""
		case e.Outcome == OutcomeOK:
			got = fmt.Sprintf("%d order %s", e.Status, e.OrderID)
		case e.Err != "":
			got = e.Err
		default:
			got = fmt.Sprintf("%d %s", e.Status, e.Code)
		}
		if prev, seen := verified[k]; !seen || prev != "" {
			verified[k] = got
		}
	}
	type loss struct {
		n        int
		reasons  map[string]int
		examples []string
	}
	var losses [nodes]loss
	confirmed := 0
	for _, id := range ids {
		op := ops[id]
		if op.Outcome != OutcomeOK {
			continue
		}
		confirmed++
		for i := 0; i < nodes; i++ {
			got, seen := verified[key{id, i}]
			if seen && got == "" {
				continue
			}
			reason := "not looked up (the node had stopped answering)"
			if seen {
				reason = lookupReason(got)
			}
			r.Lost++
			l := &losses[i]
			if l.reasons == nil {
				l.reasons = map[string]int{}
			}
			l.n++
			l.reasons[reason]++
			if len(l.examples) < 3 {
				l.examples = append(l.examples, fmt.Sprintf("%s (order %s): %s", id, op.Order, got))
			}
		}
	}
	for i, l := range losses {
		if l.n == 0 {
			continue
		}
		var parts []string
		for _, reason := range sortedKeys(boolKeys(l.reasons)) {
			parts = append(parts, fmt.Sprintf("%d %s", l.reasons[reason], reason))
		}
		r.violation("n%d: %d of %d confirmed requests not returned by their request_id: %s; e.g. %s",
			i, l.n, confirmed, strings.Join(parts, ", "), strings.Join(l.examples, "; "))
	}
	for _, id := range ids {
		op := ops[id]
		if op.Outcome != OutcomeOK {
			continue
		}
		rows := f.Copies[op.Order]
		switch {
		case f.Copies == nil:
		case len(rows) == 0:
			r.Lost++
			r.violation("MySQL: confirmed order %s (request %s) not stored", op.Order, id)
		case len(rows) > 1:
			r.Duplicate++
			r.violation("MySQL: order %s stored %d times", op.Order, len(rows))
		case rows[0].RequestID != id || rows[0].UserID != op.User || rows[0].ItemID != op.Item || rows[0].Quantity != op.Quantity:
			r.Lost++
			r.violation("MySQL: order %s stored as %+v; confirmed as %s/%s/%s/%d", op.Order, rows[0], op.Item, op.User, id, op.Quantity)
		}
	}
	if f.MySQLErr != "" {
		r.Lost++
		r.violation("MySQL: %s", f.MySQLErr)
	} else if f.MySQLSold != nil {
		for _, it := range f.Items {
			if got, want := f.MySQLSold[it.ID], r.Sold[it.ID]; got != want {
				if got < want {
					r.Lost++
				} else {
					r.Duplicate++
				}
				r.violation("MySQL: %s SoldByItem %d; sold %d in Raft", it.ID, got, want)
			}
		}
	}

	// 5. Availability of the hot item.
	var confirms []float64
	var injects, heals []float64
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
	gap = math.Max(gap, f.RunEndMs-prev)
	r.MaxGap = msDuration(gap)
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
		r.AfterHeal = firstAfter(last)
		if r.AfterHeal < 0 {
			r.NoRecovery = true
			r.violation("no confirmed %s purchase in the %v between the last heal and the end of the sale",
				f.HotItem, msDuration(f.RunEndMs-last).Round(time.Millisecond))
		}
	}
	return r
}

// raftSold returns, per item, the sold count most nodes that could be read
// agree on (the lowest on a tie), so that one broken node does not set the
// figure MySQL is compared with.
func raftSold(items []ItemSpec, views [nodes]map[string]NodeView) map[string]int64 {
	out := map[string]int64{}
	for _, it := range items {
		votes := map[int64]int{}
		for i := 0; i < nodes; i++ {
			if v, ok := views[i][it.ID]; ok && v.Err == "" {
				votes[v.Sold]++
			}
		}
		best, bestVotes := int64(0), 0
		for sold, n := range votes {
			if n > bestVotes || (n == bestVotes && sold < best) {
				best, bestVotes = sold, n
			}
		}
		out[it.ID] = best
	}
	return out
}

// lookupReason groups what a node answered to a lookup of a confirmed
// request.
func lookupReason(got string) string {
	switch {
	case strings.HasPrefix(got, "201 "):
		return "answered 201: a new order (the node had forgotten the request)"
	case strings.HasPrefix(got, "200 "):
		return "answered 200 with another order"
	case strings.HasPrefix(got, "503 "):
		return "answered " + got
	case len(got) > 3 && got[3] == ' ':
		return "answered " + got
	}
	if i := strings.LastIndex(got, ": "); i >= 0 {
		got = got[i+2:]
	}
	return "failed: " + got
}

func boolKeys(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
