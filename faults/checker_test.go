package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/client"
)

// These tests check the evaluation of synthetic histories; they need no
// root. The invariants themselves are client.Check's, tested there: these
// check that a history reaches it as it should.

// sale builds a history and the matching final state.
type sale struct {
	events []Event
	final  Final
	ms     float64
}

func newSale() *sale {
	s := &sale{final: Final{
		Items:   []ItemSpec{{ID: "hot", Stock: 100, Limit: 3}, {ID: "lim", Stock: 4, Limit: 2}},
		HotItem: "hot", RunStartMs: 0, RunEndMs: 1000,
		Store: &client.StoreEvidence{Orders: map[string][]client.StoredOrder{}, SoldUnits: map[string]int64{}},
	}}
	for i := 0; i < nodes; i++ {
		s.final.Views = append(s.final.Views, client.ItemReads{Target: nodeName(i), Items: map[string]client.ItemState{
			"hot": {Stock: 100, Remaining: 100},
			"lim": {Stock: 4, Remaining: 4},
		}})
	}
	return s
}

// add records an attempt; its answer follows from its status and code.
func (s *sale) add(e Event) {
	if e.StartMs == 0 {
		s.ms += 10
		e.StartMs, e.EndMs = s.ms, s.ms+5
	}
	if e.Phase == "" {
		e.Phase = PhaseRun
	}
	if e.Answer == "" && e.Phase != PhaseNemesis {
		o := client.OutcomeNetError
		if e.Status != 0 {
			o = client.Classify(e.Status, e.Code)
		}
		e.Answer, e.Outcome = o.String(), historyOutcome(o)
	}
	s.events = append(s.events, e)
}

// buy records a confirmed purchase, applies it to every node's view and to
// the order store, and records its lookup on every node.
func (s *sale) buy(item, user, rid string, qty int, order string) {
	s.add(Event{Item: item, User: user, RequestID: rid, Quantity: qty, Attempt: 1, Status: 201, OrderID: order})
	for _, v := range s.final.Views {
		it := v.Items[item]
		it.Sold += int64(qty)
		it.Remaining -= int64(qty)
		v.Items[item] = it
	}
	s.final.Store.SoldUnits[item] += int64(qty)
	s.final.Store.Orders[order] = []client.StoredOrder{{OrderID: order, ItemID: item, UserID: user, RequestID: rid, Quantity: int64(qty)}}
	for i := 0; i < nodes; i++ {
		s.add(Event{Phase: PhaseVerify, Item: item, User: user, RequestID: rid, Quantity: qty, Node: i, Status: 200, OrderID: order})
	}
}

func (s *sale) evaluate() Result { return Evaluate("test", s.events, s.final) }

func TestEvaluateCleanSale(t *testing.T) {
	s := newSale()
	s.buy("hot", "u1", "r1", 2, "1001")
	s.buy("hot", "u2", "r2", 1, "1002")
	s.buy("lim", "a", "r3", 2, "1003")
	s.add(Event{Item: "lim", User: "a", RequestID: "r4", Quantity: 1, Status: 409, Code: "limit_exceeded"})
	s.add(Event{Item: "lim", User: "b", RequestID: "r5", Quantity: 1, Status: 503, Code: "unknown_outcome"})
	s.add(Event{Phase: PhaseSettle, Item: "lim", User: "b", RequestID: "r5", Quantity: 1, Status: 409, Code: "sold_out"})
	// Shed on every attempt: definitely not bought, never unknown.
	s.add(Event{Item: "hot", User: "u6", RequestID: "r6", Quantity: 1, Status: 503, Code: "unavailable"})
	s.add(Event{Item: "hot", User: "u6", RequestID: "r6", Quantity: 1, Attempt: 2, Status: 503, Code: "overloaded"})
	r := s.evaluate()
	if !r.Passed() {
		t.Fatalf("Evaluate = %+v; want pass", r)
	}
	if r.Ops != 6 || r.OK != 3 || r.Failed != 2 || r.Unknown != 1 || r.Settled != 1 {
		t.Errorf("counts = ops %d ok %d failed %d unknown %d settled %d; want 6 3 2 1 1", r.Ops, r.OK, r.Failed, r.Unknown, r.Settled)
	}
	if r.Units["hot"] != 3 || r.Units["lim"] != 2 || r.Sold["hot"] != 3 || r.Sold["lim"] != 2 {
		t.Errorf("units = %v, sold = %v; want hot 3 lim 2 both", r.Units, r.Sold)
	}
	if len(r.Anomalies) != 0 {
		t.Errorf("anomalies = %v; want none", r.Anomalies)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name    string
		answers []string // phase:outcome
		run     string
		final   string
		unknown bool
	}{
		{"ok", []string{"run:ok"}, OutcomeOK, OutcomeOK, false},
		{"refused", []string{"run:fail"}, OutcomeFail, OutcomeFail, false},
		{"shed then ok", []string{"run:shed", "run:ok"}, OutcomeOK, OutcomeOK, false},
		{"shed only", []string{"run:shed", "run:shed"}, OutcomeFail, OutcomeFail, false},
		// A shed answer says nothing of an earlier attempt that may commit.
		{"unknown then shed", []string{"run:info", "run:shed"}, OutcomeInfo, OutcomeInfo, true},
		{"unknown, settled by a refusal", []string{"run:info", "settle:shed", "settle:fail"}, OutcomeInfo, OutcomeFail, true},
		{"unknown, settled by the order", []string{"run:info", "settle:ok"}, OutcomeInfo, OutcomeOK, true},
		{"lookups change nothing", []string{"run:info", "verify:ok"}, OutcomeInfo, OutcomeInfo, true},
		{"payments and final reads change nothing", []string{"run:info", "pay:ok", "final:ok"}, OutcomeInfo, OutcomeInfo, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []Event
			for i, a := range tt.answers {
				phase, outcome, _ := strings.Cut(a, ":")
				events = append(events, Event{Phase: phase, Item: "hot", User: "u", RequestID: "r", Quantity: 1, Attempt: i + 1, Outcome: outcome, OrderID: "7"})
			}
			op := Summarize(events)["r"]
			if op.RunOutcome != tt.run || op.Outcome != tt.final || op.Unknown != tt.unknown {
				t.Errorf("Summarize(%v) = run %s, final %s, unknown %v; want %s, %s, %v", tt.answers, op.RunOutcome, op.Outcome, op.Unknown, tt.run, tt.final, tt.unknown)
			}
		})
	}
}

func TestEvaluateViolations(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(s *sale)
		want  func(r Result) int
	}{
		{"sold without confirmation", func(s *sale) {
			v := s.final.Views[1].Items["hot"]
			v.Sold++
			v.Remaining--
			s.final.Views[1].Items["hot"] = v
		}, func(r Result) int { return r.Oversell }},
		{"node unreadable", func(s *sale) {
			delete(s.final.Views[0].Items, "hot")
			s.final.Views[0].Errs = map[string]string{"hot": "HTTP 503 unavailable"}
		}, func(r Result) int { return r.Oversell }},
		{"replica lost an order", func(s *sale) {
			v := s.final.Views[2].Items["hot"]
			v.Sold -= 2
			v.Remaining += 2
			s.final.Views[2].Items["hot"] = v
		}, func(r Result) int { return r.Lost }},
		{"lookup creates a new order", func(s *sale) {
			for i := range s.events {
				if e := &s.events[i]; e.Phase == PhaseVerify && e.RequestID == "r1" && e.Node == 1 {
					e.Status, e.OrderID, e.Answer = 201, "9999", client.OutcomeConfirmed.String()
				}
			}
		}, func(r Result) int { return r.Lost }},
		{"lookup never answered", func(s *sale) {
			for i := range s.events {
				if e := &s.events[i]; e.Phase == PhaseVerify && e.RequestID == "r1" && e.Node == 2 {
					e.Status, e.OrderID, e.Code, e.Outcome, e.Answer = 503, "", "unavailable", OutcomeShed, client.OutcomeUnavailable.String()
				}
			}
		}, func(r Result) int { return r.Lost }},
		{"not in the order store", func(s *sale) { delete(s.final.Store.Orders, "1001") }, func(r Result) int { return r.Lost }},
		{"order store unreadable", func(s *sale) { s.final.Store = &client.StoreEvidence{Err: "dial tcp: refused"} }, func(r Result) int { return r.Lost }},
		{"two orders for one request", func(s *sale) {
			s.add(Event{Item: "hot", User: "u1", RequestID: "r1", Quantity: 2, Attempt: 2, Status: 200, OrderID: "1009"})
		}, func(r Result) int { return r.Duplicate }},
		{"one order for two requests", func(s *sale) {
			s.add(Event{Item: "hot", User: "u9", RequestID: "r9", Quantity: 2, Status: 201, OrderID: "1001"})
		}, func(r Result) int { return r.Duplicate }},
		{"over the per-user limit", func(s *sale) { s.buy("lim", "a", "r6", 1, "1006") }, func(r Result) int { return r.Limit }},
		{"never settled", func(s *sale) {
			s.add(Event{Item: "hot", User: "u7", RequestID: "r7", Quantity: 1, Err: "timeout"})
		}, func(r Result) int { return r.Unsettled }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSale()
			s.buy("hot", "u1", "r1", 2, "1001")
			s.buy("lim", "a", "r3", 2, "1003")
			tt.spoil(s)
			r := s.evaluate()
			if tt.want(r) == 0 || r.Passed() {
				t.Fatalf("Evaluate = %+v; want the violation counted", r)
			}
			if len(r.Violations) == 0 {
				t.Errorf("no violation described")
			}
		})
	}
}

// restock records one restock attempt of item; a restock that applied
// (applied) adds delta to every node's view.
func (s *sale) restock(item, id string, delta int64, attempt, status int, code string, applied bool) {
	s.add(Event{Phase: PhaseRestock, Item: item, RequestID: id, Delta: delta, Attempt: attempt, Status: status, Code: code})
	if !applied {
		return
	}
	for _, v := range s.final.Views {
		it := v.Items[item]
		it.Stock += delta
		it.Remaining += delta
		v.Items[item] = it
	}
}

// pay records one payment attempt of order, afterMs after the last event
// (0: 10 ms).
func (s *sale) pay(item, user, rid, order string, attempt, status int, code string, afterMs float64) {
	e := Event{Phase: PhasePay, Item: item, User: user, RequestID: rid, OrderID: order, Attempt: attempt, Status: status, Code: code}
	if afterMs > 0 {
		s.ms += afterMs
		e.StartMs, e.EndMs = s.ms, s.ms+5
	}
	if status == 200 {
		e.OrderStatus = "paid"
	}
	s.add(e)
}

// finalRead records the final read of order in status; an expired order's
// units go back to every node's view and out of the order store's count.
func (s *sale) finalRead(item, order, status string, qty int) {
	s.add(Event{Phase: PhaseFinal, Item: item, OrderID: order, Status: 200, OrderStatus: status})
	if status != "expired" && status != "cancelled" {
		return
	}
	for _, v := range s.final.Views {
		it := v.Items[item]
		it.Sold -= int64(qty)
		it.Remaining += int64(qty)
		v.Items[item] = it
	}
	s.final.Store.SoldUnits[item] -= int64(qty)
}

// stockBackSale is a sale with a payment window and restocks: lim sells
// out, one order expires and its units are sold again, one restock of each
// item is acknowledged (hot's after a shed attempt), one of lim's outcome
// is unknown and did not apply, and one was refused.
func stockBackSale() *sale {
	s := newSale()
	s.final.PayWindow = 2 * time.Second
	s.buy("hot", "u1", "r1", 2, "1001")
	s.buy("lim", "a", "r3", 2, "1003")
	s.buy("lim", "b", "r4", 2, "1004")
	s.restock("hot", "R1-hot", 10, 1, 503, "overloaded", false)
	s.restock("hot", "R1-hot", 10, 2, 200, "", true)
	s.restock("lim", "R1-lim", 2, 1, 200, "", true)
	s.restock("lim", "R2-lim", 2, 1, 503, "unknown_outcome", false)
	s.restock("lim", "R3-lim", 2, 1, 400, "invalid_argument", false)
	s.pay("hot", "u1", "r1", "1001", 1, 0, "", 0)   // a timeout...
	s.pay("hot", "u1", "r1", "1001", 2, 200, "", 0) // ...then paid
	s.pay("lim", "a", "r3", "1003", 1, 409, "order_expired", 2100)
	s.pay("lim", "b", "r4", "1004", 1, 0, "", 0) // unknown: it was paid
	s.finalRead("hot", "1001", "paid", 2)
	s.finalRead("lim", "1003", "expired", 2)
	s.finalRead("lim", "1004", "paid", 2)
	s.buy("lim", "c", "r5", 2, "1005") // 1003's units sold again, with the restock
	s.finalRead("lim", "1005", "expired", 2)
	s.buy("lim", "a", "r6", 2, "1006") // a buys again: 1003 holds nothing
	s.finalRead("lim", "1006", "confirmed", 2)
	return s
}

func TestEvaluateStockComesBack(t *testing.T) {
	r := stockBackSale().evaluate()
	if !r.Passed() {
		t.Fatalf("Evaluate = %+v; want pass", r)
	}
	want := RestockTally{Sent: 4, OK: 2, Unknown: 1, Failed: 1,
		Units: map[string]int64{"hot": 10, "lim": 2}, UnknownUnits: map[string]int64{"lim": 2}}
	if fmt.Sprint(r.Restocks) != fmt.Sprint(want) {
		t.Errorf("Restocks = %+v; want %+v", r.Restocks, want)
	}
	if want := (PaymentTally{Orders: 3, Paid: 1, Expired: 1, Unknown: 1}); r.Payments != want {
		t.Errorf("Payments = %+v; want %+v", r.Payments, want)
	}
	if r.Returned["lim"] != 4 || r.Resold["lim"] != 2 || r.Unexpired != 1 || r.Sold["lim"] != 4 {
		t.Errorf("Returned %v, Resold %v, Unexpired %d, Sold %v; want lim 4, lim 2, 1, lim 4", r.Returned, r.Resold, r.Unexpired, r.Sold)
	}
	if len(r.Anomalies) != 2 { // the refused restock, the order that never expired
		t.Errorf("anomalies = %q; want the refused restock and the order never expired", r.Anomalies)
	}
	// Answers the clock contradicts (the nodes share it): expired before the
	// window could close, paid after it closed for sure.
	s := stockBackSale()
	s.buy("hot", "u8", "r8", 1, "1008")
	s.pay("hot", "u8", "r8", "1008", 1, 409, "order_expired", 0)
	s.finalRead("hot", "1008", "expired", 1)
	s.buy("hot", "u9", "r9", 1, "1009")
	s.pay("hot", "u9", "r9", "1009", 1, 200, "", 2500)
	s.finalRead("hot", "1009", "paid", 1)
	got := strings.Join(s.evaluate().Anomalies, "\n")
	for _, want := range []string{"pay 1008 attempt 1 on n0: order_expired", "pay 1009 on n0: paid, sent 2.5"} {
		if !strings.Contains(got, want) {
			t.Errorf("anomalies = %q; want one mentioning %q", got, want)
		}
	}

	rep := &Report{Results: []Result{r}}
	for _, want := range []string{
		"restocks 4 sent, 2 acknowledged (hot +10, lim +2), 1 unknown (lim +2), 1 not applied",
		"payment window 2s: 3 orders paid for, 1 paid, 1 expired, 1 unknown",
		"units returned by expired orders lim 4, sold again at least lim 2; 1 orders never expired",
	} {
		if md := rep.Markdown(); !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q:\n%s", want, md)
		}
	}
}

func TestEvaluateStockComesBackViolations(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(s *sale)
		want  func(r Result) int
	}{
		{"paid order expired", func(s *sale) {
			s.pay("lim", "c", "r5", "1005", 1, 200, "", 0)
		}, func(r Result) int { return r.Lost }},
		{"acknowledged restock not applied", func(s *sale) {
			for _, v := range s.final.Views {
				it := v.Items["hot"]
				it.Stock -= 10
				it.Remaining -= 10
				v.Items["hot"] = it
			}
		}, func(r Result) int { return r.Lost }},
		{"expired units still counted as sold", func(s *sale) {
			for _, v := range s.final.Views {
				it := v.Items["lim"]
				it.Sold += 2
				it.Remaining -= 2
				v.Items["lim"] = it
			}
			s.final.Store.SoldUnits["lim"] += 2
		}, func(r Result) int { return r.Oversell }},
		{"restock lost, units sold beyond the stock", func(s *sale) {
			s.restock("lim", "R4-lim", 1, 1, 200, "", true)
			s.buy("lim", "d", "r7", 1, "1007")
			s.buy("lim", "e", "r8", 2, "1008")
			for i := range s.final.Views { // the acknowledged restock never applied: stock 6, 7 held
				v := s.final.Views[i].Items["lim"]
				v.Stock--
				v.Remaining--
				s.final.Views[i].Items["lim"] = v
			}
		}, func(r Result) int { return r.Oversell }},
		{"user over the limit on held units", func(s *sale) {
			s.finalRead("lim", "1006", "paid", 2)
			s.buy("lim", "a", "r9", 1, "1009")
			s.restock("lim", "R4-lim", 1, 1, 200, "", true)
		}, func(r Result) int { return r.Limit }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := stockBackSale()
			tt.spoil(s)
			r := s.evaluate()
			if tt.want(r) == 0 || r.Passed() {
				t.Fatalf("Evaluate = %+v; want the violation counted", r)
			}
		})
	}
}

func TestEvaluateAvailability(t *testing.T) {
	s := newSale()
	s.final.RunEndMs = 5000
	s.final.Store = nil
	ok := func(start, end float64, rid string) {
		s.add(Event{Item: "hot", User: rid, RequestID: rid, Quantity: 1, StartMs: start, EndMs: end, Status: 201, OrderID: "o" + rid})
	}
	ok(0, 100, "a")
	ok(100, 200, "b")
	s.events = append(s.events, Event{Phase: PhaseNemesis, Node: -1, StartMs: 250, EndMs: 260, Outcome: "inject"})
	ok(150, 300, "c")  // started before the fault
	ok(400, 1700, "d") // first to start after it
	s.events = append(s.events, Event{Phase: PhaseNemesis, Node: -1, StartMs: 2000, EndMs: 2100, Outcome: "heal"})
	ok(2150, 2400, "e") // first after the heal
	ok(2400, 4900, "f")
	r := Evaluate("avail", s.events, s.final)
	if want := 2500 * time.Millisecond; r.MaxGap != want {
		t.Errorf("MaxGap = %v; want %v", r.MaxGap, want)
	}
	if want := 1450 * time.Millisecond; r.AfterFault != want {
		t.Errorf("AfterFault = %v; want %v", r.AfterFault, want)
	}
	if want := 300 * time.Millisecond; r.AfterHeal != want {
		t.Errorf("AfterHeal = %v; want %v", r.AfterHeal, want)
	}
	if r.NoRecovery {
		t.Error("NoRecovery set")
	}

	// Nothing after the heal: no recovery.
	s2 := newSale()
	s2.final.RunEndMs = 5000
	s2.events = append(s2.events, Event{Phase: PhaseNemesis, Node: -1, StartMs: 2000, EndMs: 2100, Outcome: "heal"})
	if r := Evaluate("stuck", s2.events, s2.final); !r.NoRecovery || r.Passed() || r.MaxGap != 5*time.Second {
		t.Errorf("Evaluate(stuck) = NoRecovery %v, MaxGap %v; want true, 5s", r.NoRecovery, r.MaxGap)
	}
}

func TestEvaluateAnomalies(t *testing.T) {
	s := newSale()
	s.add(Event{Item: "hot", User: "u", RequestID: "r", Quantity: 1, Status: 500, Code: "internal"})
	s.buy("hot", "u", "r", 1, "1")
	s.add(Event{Item: "hot", User: "v", RequestID: "s", Quantity: 1, Status: 409, Code: "limit_exceeded"})
	s.add(Event{Item: "lim", User: "w", RequestID: "t", Quantity: 1, Status: 503, Code: "overloaded"})
	r := s.evaluate()
	if len(r.Anomalies) != 2 {
		t.Errorf("anomalies = %q; want the 500 and the hot limit_exceeded", r.Anomalies)
	}
	if !r.Passed() {
		t.Errorf("anomalies failed the check: %v", r.Violations)
	}
}

func TestHistoryOutcome(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   string
	}{
		{201, "", OutcomeOK},
		{200, "", OutcomeOK},
		{409, "sold_out", OutcomeFail},
		{409, "limit_exceeded", OutcomeFail},
		{400, "invalid_argument", OutcomeFail},
		{429, "rate_limited", OutcomeShed},
		{503, "overloaded", OutcomeShed},
		{503, "unavailable", OutcomeShed},
		{503, "unknown_outcome", OutcomeInfo},
		{500, "internal", OutcomeInfo},
	}
	for _, tt := range tests {
		if got := historyOutcome(client.Classify(tt.status, tt.code)); got != tt.want {
			t.Errorf("historyOutcome(%d %s) = %s; want %s", tt.status, tt.code, got, tt.want)
		}
	}
	for _, o := range []client.Outcome{client.OutcomeTimeout, client.OutcomeNetError, client.OutcomeBadResponse} {
		if got := historyOutcome(o); got != OutcomeInfo {
			t.Errorf("historyOutcome(%v) = %s; want info", o, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []func(c *Config){
		func(c *Config) { c.Duration = time.Second },
		func(c *Config) { c.Rate = 0 },
		func(c *Config) { c.Shoppers = 0 },
		func(c *Config) { c.Subnet = "8.8.8" },
		func(c *Config) { c.Subnet = "10.77.0.0/24" },
		func(c *Config) { c.Prefix = "Bad-Prefix" },
		func(c *Config) { c.Delay = "tbf" },
		func(c *Config) { c.Faults = []string{"meteor"} },
		func(c *Config) { c.StateDir = "" },
	}
	for i, spoil := range tests {
		c := DefaultConfig()
		spoil(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: Validate() = %v; want ErrInvalidConfig", i, err)
		}
	}
}

func TestFaultsListed(t *testing.T) {
	want := []string{"kill-leader", "kill-follower", "pause-leader", "partition-leader", "raft-cut-leader", "split-1-2", "delay-loss", "mariadb-restart",
		"disk-full-leader", "slow-disk-leader"}
	if got := Faults(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Faults() = %v; want %v", got, want)
	}
}

func TestReportDoc(t *testing.T) {
	rep := &Report{Duration: 24 * time.Second, Rate: 250, Shoppers: 24, Delay: "netem", Firewall: "iptables",
		Results: []Result{
			{Fault: "kill-leader", Ops: 10, OK: 9, Failed: 1, MaxGap: 1200 * time.Millisecond, AfterFault: time.Second, AfterHeal: 5 * time.Millisecond},
			{Fault: "split-1-2", Ops: 10, OK: 10, Lost: 1, Violations: []string{"n1: lost"}, AfterFault: -1, AfterHeal: -1},
		}}
	if !rep.Failed() {
		t.Error("Failed() = false with a violation")
	}
	table := rep.Table()
	for _, want := range []string{"| kill-leader | 10 | 9 | 1 | 0 → 0 | 0 | 0 | 0 | 0 | 1.2s | 1s | 5ms | pass |", "**FAIL**"} {
		if !strings.Contains(table, want) {
			t.Errorf("Table() lacks %q:\n%s", want, table)
		}
	}
	path := filepath.Join(t.TempDir(), "reliability.md")
	doc := "# Reliability\n\nintro\n\n" + docBegin + "\nold table\n" + docEnd + "\n\nafter\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteDoc(path); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	if strings.Contains(got, "old table") || !strings.Contains(got, "| split-1-2 |") ||
		!strings.HasPrefix(got, "# Reliability\n\nintro") || !strings.HasSuffix(got, docEnd+"\n\nafter\n") {
		t.Errorf("WriteDoc wrote:\n%s", got)
	}
	if err := rep.WriteDoc(filepath.Join(t.TempDir(), "missing.md")); err == nil {
		t.Error("WriteDoc to a missing file succeeded")
	}
}
