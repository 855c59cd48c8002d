package faults

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests check the checker on synthetic histories; they need no root.

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
		MySQLSold: map[string]int64{}, Copies: map[string][]StoredOrder{}, RaftSold: map[string]int64{},
	}}
	for i := range s.final.Views {
		s.final.Views[i] = map[string]NodeView{
			"hot": {Stock: 100, Remaining: 100},
			"lim": {Stock: 4, Remaining: 4},
		}
	}
	return s
}

func (s *sale) add(e Event) {
	if e.StartMs == 0 {
		s.ms += 10
		e.StartMs, e.EndMs = s.ms, s.ms+5
	}
	if e.Phase == "" {
		e.Phase = PhaseRun
	}
	s.events = append(s.events, e)
}

// buy records a confirmed purchase, applies it to every node's view and to
// MySQL, and records its verification on every node.
func (s *sale) buy(item, user, rid string, qty int, order string) {
	s.add(Event{Item: item, User: user, RequestID: rid, Quantity: qty, Attempt: 1, Status: 201, OrderID: order, Outcome: OutcomeOK})
	for i := range s.final.Views {
		v := s.final.Views[i][item]
		v.Sold += int64(qty)
		v.Remaining -= int64(qty)
		s.final.Views[i][item] = v
	}
	s.final.MySQLSold[item] += int64(qty)
	s.final.RaftSold = raftSold(s.final.Items, s.final.Views)
	s.final.Copies[order] = []StoredOrder{{ItemID: item, UserID: user, RequestID: rid, Quantity: qty}}
	for i := 0; i < nodes; i++ {
		s.add(Event{Phase: PhaseVerify, Item: item, User: user, RequestID: rid, Quantity: qty, Node: i, Status: 200, OrderID: order, Outcome: OutcomeOK})
	}
}

func (s *sale) check() Result { return Check("test", s.events, s.final) }

func TestCheckCleanSale(t *testing.T) {
	s := newSale()
	s.buy("hot", "u1", "r1", 2, "1001")
	s.buy("hot", "u2", "r2", 1, "1002")
	s.buy("lim", "a", "r3", 2, "1003")
	s.add(Event{Item: "lim", User: "a", RequestID: "r4", Quantity: 1, Status: 409, Code: "limit_exceeded", Outcome: OutcomeFail})
	s.add(Event{Item: "lim", User: "b", RequestID: "r5", Quantity: 1, Status: 503, Code: "unavailable", Outcome: OutcomeInfo})
	s.add(Event{Phase: PhaseSettle, Item: "lim", User: "b", RequestID: "r5", Quantity: 1, Status: 409, Code: "sold_out", Outcome: OutcomeFail})
	r := s.check()
	if !r.Passed() {
		t.Fatalf("Check = %+v; want pass", r)
	}
	if r.Ops != 5 || r.OK != 3 || r.Failed != 1 || r.Unknown != 1 || r.Settled != 1 {
		t.Errorf("counts = ops %d ok %d failed %d unknown %d settled %d; want 5 3 1 1 1", r.Ops, r.OK, r.Failed, r.Unknown, r.Settled)
	}
	if r.Units["hot"] != 3 || r.Units["lim"] != 2 {
		t.Errorf("units = %v; want hot 3 lim 2", r.Units)
	}
	if len(r.Anomalies) != 0 {
		t.Errorf("anomalies = %v; want none", r.Anomalies)
	}
}

func TestCheckViolations(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(s *sale)
		want  func(r Result) int
	}{
		{"sold without confirmation", func(s *sale) {
			v := s.final.Views[1]["hot"]
			v.Sold++
			v.Remaining--
			s.final.Views[1]["hot"] = v
		}, func(r Result) int { return r.Oversell }},
		{"remaining != stock - sold", func(s *sale) {
			v := s.final.Views[2]["lim"]
			v.Remaining++
			s.final.Views[2]["lim"] = v
		}, func(r Result) int { return r.Oversell }},
		{"confirmed more than stock", func(s *sale) {
			s.buy("lim", "b", "x1", 2, "2001")
			s.buy("lim", "c", "x2", 2, "2002")
		}, func(r Result) int { return r.Oversell }},
		{"node unreadable", func(s *sale) {
			s.final.Views[0]["hot"] = NodeView{Err: "503 unavailable"}
		}, func(r Result) int { return r.Oversell }},
		{"replica lost an order", func(s *sale) {
			v := s.final.Views[2]["hot"]
			v.Sold -= 2
			v.Remaining += 2
			s.final.Views[2]["hot"] = v
		}, func(r Result) int { return r.Lost }},
		{"lookup creates a new order", func(s *sale) {
			for i := range s.events {
				if e := &s.events[i]; e.Phase == PhaseVerify && e.RequestID == "r1" && e.Node == 1 {
					e.Status, e.OrderID = 201, "9999"
				}
			}
		}, func(r Result) int { return r.Lost }},
		{"lookup never answered", func(s *sale) {
			for i := range s.events {
				if e := &s.events[i]; e.Phase == PhaseVerify && e.RequestID == "r1" && e.Node == 2 {
					e.Status, e.OrderID, e.Code, e.Outcome = 503, "", "unavailable", OutcomeInfo
				}
			}
		}, func(r Result) int { return r.Lost }},
		{"not in MySQL", func(s *sale) { delete(s.final.Copies, "1001") }, func(r Result) int { return r.Lost }},
		{"twice in MySQL", func(s *sale) { s.final.Copies["1001"] = append(s.final.Copies["1001"], s.final.Copies["1001"][0]) },
			func(r Result) int { return r.Duplicate }},
		{"MySQL behind", func(s *sale) { s.final.MySQLSold["hot"]-- }, func(r Result) int { return r.Lost }},
		{"MySQL unreadable", func(s *sale) { s.final.MySQLErr = "dial tcp: refused" }, func(r Result) int { return r.Lost }},
		{"two orders for one request", func(s *sale) {
			s.add(Event{Item: "hot", User: "u1", RequestID: "r1", Quantity: 2, Attempt: 2, Status: 200, OrderID: "1009", Outcome: OutcomeOK})
		}, func(r Result) int { return r.Duplicate }},
		{"one order for two requests", func(s *sale) {
			s.add(Event{Item: "hot", User: "u9", RequestID: "r9", Quantity: 2, Status: 201, OrderID: "1001", Outcome: OutcomeOK})
		}, func(r Result) int { return r.Duplicate }},
		{"over the per-user limit", func(s *sale) { s.buy("lim", "a", "r6", 1, "1006") }, func(r Result) int { return r.Limit }},
		{"never settled", func(s *sale) {
			s.add(Event{Item: "hot", User: "u7", RequestID: "r7", Quantity: 1, Err: "timeout", Outcome: OutcomeInfo})
		}, func(r Result) int { return r.Unsettled }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSale()
			s.buy("hot", "u1", "r1", 2, "1001")
			s.buy("lim", "a", "r3", 2, "1003")
			tt.spoil(s)
			r := s.check()
			if tt.want(r) == 0 || r.Passed() {
				t.Fatalf("Check = %+v; want the violation counted", r)
			}
			if len(r.Violations) == 0 {
				t.Errorf("no violation described")
			}
		})
	}
}

func TestCheckAvailability(t *testing.T) {
	s := newSale()
	s.final.RunEndMs = 5000
	ok := func(start, end float64, rid string) {
		s.add(Event{Item: "hot", User: rid, RequestID: rid, Quantity: 1, StartMs: start, EndMs: end, Status: 201, OrderID: "o" + rid, Outcome: OutcomeOK})
	}
	ok(0, 100, "a")
	ok(100, 200, "b")
	s.events = append(s.events, Event{Phase: PhaseNemesis, Node: -1, StartMs: 250, EndMs: 260, Outcome: "inject"})
	ok(150, 300, "c")  // started before the fault
	ok(400, 1700, "d") // first to start after it
	s.events = append(s.events, Event{Phase: PhaseNemesis, Node: -1, StartMs: 2000, EndMs: 2100, Outcome: "heal"})
	ok(2150, 2400, "e") // first after the heal
	ok(2400, 4900, "f")
	r := Check("avail", s.events, s.final)
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
	if r := Check("stuck", s2.events, s2.final); !r.NoRecovery || r.Passed() || r.MaxGap != 5*time.Second {
		t.Errorf("Check(stuck) = NoRecovery %v, MaxGap %v; want true, 5s", r.NoRecovery, r.MaxGap)
	}
}

func TestCheckAnomalies(t *testing.T) {
	s := newSale()
	s.add(Event{Item: "hot", User: "u", RequestID: "r", Quantity: 1, Status: 500, Code: "internal", Outcome: OutcomeInfo})
	s.buy("hot", "u", "r", 1, "1")
	s.add(Event{Item: "hot", User: "v", RequestID: "s", Quantity: 1, Status: 409, Code: "limit_exceeded", Outcome: OutcomeFail})
	r := s.check()
	if len(r.Anomalies) != 2 {
		t.Errorf("anomalies = %q; want the 500 and the hot limit_exceeded", r.Anomalies)
	}
	if !r.Passed() {
		t.Errorf("anomalies failed the check: %v", r.Violations)
	}
}

func TestClassify(t *testing.T) {
	body := func(code string) map[string]any { return map[string]any{"error": map[string]any{"code": code}} }
	tests := []struct {
		r    reply
		want string
	}{
		{reply{status: 201, body: map[string]any{"order_id": "7"}}, OutcomeOK},
		{reply{status: 200, body: map[string]any{"order_id": "7"}}, OutcomeOK},
		{reply{status: 200, body: map[string]any{}}, OutcomeInfo},
		{reply{status: 409, body: body("sold_out")}, OutcomeFail},
		{reply{status: 409, body: body("limit_exceeded")}, OutcomeFail},
		{reply{status: 503, body: body("unavailable")}, OutcomeInfo},
		{reply{status: 500, body: body("internal")}, OutcomeInfo},
		{reply{err: errors.New("EOF")}, OutcomeInfo},
		{reply{err: syscall.ECONNREFUSED}, OutcomeInfo},
	}
	for _, tt := range tests {
		if got := classify(tt.r); got != tt.want {
			t.Errorf("classify(%d %v %v) = %s; want %s", tt.r.status, tt.r.body, tt.r.err, got, tt.want)
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
	want := []string{"kill-leader", "kill-follower", "pause-leader", "partition-leader", "raft-cut-leader", "split-1-2", "delay-loss", "mariadb-restart"}
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

func TestRaftSold(t *testing.T) {
	items := []ItemSpec{{ID: "hot"}, {ID: "lim"}}
	var views [nodes]map[string]NodeView
	views[0] = map[string]NodeView{"hot": {Err: "503 unavailable"}, "lim": {Sold: 3}}
	views[1] = map[string]NodeView{"hot": {Sold: 7}, "lim": {Sold: 4}}
	views[2] = map[string]NodeView{"hot": {Sold: 7}, "lim": {Sold: 5}}
	got := raftSold(items, views)
	if got["hot"] != 7 || got["lim"] != 3 {
		t.Errorf("raftSold = %v; want hot 7 (the readable majority), lim 3 (lowest of a three-way tie)", got)
	}
}
