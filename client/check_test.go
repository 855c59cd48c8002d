package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
)

// cleanEvidence is a correct history as the load generator gathers it: item
// "a" (stock 10, limit 1) sold 4 units to 4 users in this run after 2 sold
// before; item "b" sold 1 of 5. Replays are a sample; one read after.
func cleanEvidence() Evidence {
	var confirmed []ConfirmedOrder
	for i := 1; i <= 4; i++ {
		confirmed = append(confirmed, order("a", fmt.Sprintf("u%d", i), fmt.Sprintf("r%d", i), fmt.Sprint(100+i)))
	}
	confirmed = append(confirmed, order("b", "u9", "r9", "900"))
	yes := true
	return Evidence{
		Items: []string{"a", "b"},
		History: History{
			Confirmed:    confirmed,
			ConfirmedQty: map[string]int64{"a": 4, "b": 1},
			UnknownQty:   map[string]int64{},
			Replays: []Replay{
				{ItemID: "a", UserID: "u1", RequestID: "r1", OrderID: "101", Target: Any, Outcome: OutcomeReplayed, Status: 200, Got: confirmed[0].Got},
				{ItemID: "a", UserID: "u2", RequestID: "r2", OrderID: "102", Target: Any, Outcome: OutcomeTimeout},
			},
		},
		Before: map[string]ItemState{
			"a": {ID: "a", Stock: 10, Remaining: 8, Sold: 2, PerUserLimit: 1},
			"b": {ID: "b", Stock: 5, Remaining: 5, Sold: 0, PerUserLimit: 1},
		},
		After: []ItemReads{{Items: map[string]ItemState{
			"a": {ID: "a", Stock: 10, Remaining: 4, Sold: 6, PerUserLimit: 1, Status: "on_sale"},
			"b": {ID: "b", Stock: 5, Remaining: 4, Sold: 1, PerUserLimit: 1, Status: "on_sale"},
		}}},
		Lookups: []OrderLookup{
			{OrderID: "103", Found: true, Got: OrderView{OrderID: "103", ItemID: "a", UserID: "u3", Quantity: 1, Status: "confirmed", Persisted: &yes}},
			{OrderID: "104", Err: "timeout"},
		},
	}
}

// order is a confirmed purchase of one unit.
func order(item, user, req, id string) ConfirmedOrder {
	return ConfirmedOrder{ItemID: item, UserID: user, RequestID: req, Quantity: 1,
		Got: OrderView{OrderID: id, ItemID: item, UserID: user, Quantity: 1, Status: "confirmed"}}
}

// setAfter changes one item's state in every read after the load.
func setAfter(ev *Evidence, id string, sold, remaining int64) {
	for _, r := range ev.After {
		it := r.Items[id]
		it.Sold, it.Remaining = sold, remaining
		r.Items[id] = it
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		mod  func(ev *Evidence)
		want string    // "" for PASS, else a fragment of a problem
		kind Invariant // the invariant it breaks
	}{
		{"clean", func(*Evidence) {}, "", ""},
		{"unknown outcomes that sold", func(ev *Evidence) {
			ev.History.UnknownQty["a"] = 3
			setAfter(ev, "a", 8, 2) // 2 of the 3 unknown units sold
		}, "", ""},
		{"unknown outcomes that did not sell", func(ev *Evidence) { ev.History.UnknownQty["a"] = 3 }, "", ""},
		{"purchases without request_id", func(ev *Evidence) {
			for i := range ev.History.Confirmed {
				ev.History.Confirmed[i].RequestID = ""
			}
			ev.History.Replays = nil
		}, "", ""},
		{"oversell seen", func(ev *Evidence) {
			for i := 5; i <= 13; i++ {
				ev.History.Confirmed = append(ev.History.Confirmed, order("a", fmt.Sprintf("u%d", i), "r", fmt.Sprint(100+i)))
			}
			ev.History.ConfirmedQty["a"] = 13
			setAfter(ev, "a", 15, -5)
		}, "oversold", Oversell},
		{"oversell reported by server", func(ev *Evidence) { setAfter(ev, "a", 11, -1) }, "oversold", Oversell},
		{"user over limit", func(ev *Evidence) {
			ev.History.Confirmed = append(ev.History.Confirmed, order("a", "u1", "r1b", "199"))
			ev.History.ConfirmedQty["a"] = 5
			setAfter(ev, "a", 7, 3)
		}, "limit 1", Limit},
		{"duplicate order id", func(ev *Evidence) {
			ev.History.Confirmed[3].Got.OrderID = "101"
		}, "confirmed to two purchases", Duplicate},
		{"request_id confirmed twice", func(ev *Evidence) {
			dup := order("a", "u1", "r1", "150")
			ev.History.Confirmed = append(ev.History.Confirmed, dup)
		}, "confirmed as two orders", Duplicate},
		{"replay gets a new order", func(ev *Evidence) {
			ev.History.Replays[0].Outcome = OutcomeConfirmed
			ev.History.Replays[0].Got.OrderID = "777"
		}, "its replay as order 777", Duplicate},
		{"replay sold out", func(ev *Evidence) {
			ev.History.Replays[0].Outcome, ev.History.Replays[0].Code = OutcomeSoldOut, "sold_out"
			ev.History.Replays[0].Got = OrderView{}
		}, "instead of the order", Lost},
		{"lost confirmed orders", func(ev *Evidence) { setAfter(ev, "a", 4, 6) }, "confirmed orders lost", Lost},
		{"sold without confirmation", func(ev *Evidence) { setAfter(ev, "a", 7, 3) }, "sold without a confirmation", Oversell},
		{"sold beyond unknown", func(ev *Evidence) {
			ev.History.UnknownQty["a"] = 1
			setAfter(ev, "a", 8, 2)
		}, "1 sold without a confirmation", Oversell},
		{"remaining out of step", func(ev *Evidence) { setAfter(ev, "b", 1, 5) }, "remaining 5 != stock 5 - sold 1", Oversell},
		{"stock changed", func(ev *Evidence) {
			it := ev.After[0].Items["b"]
			it.Stock, it.Remaining = 6, 5
			ev.After[0].Items["b"] = it
		}, "stock changed during the run from 5 to 6", Oversell},
		{"item not read back", func(ev *Evidence) {
			delete(ev.After[0].Items, "b")
			ev.After[0].Errs = map[string]string{"b": "HTTP 503 unavailable"}
		}, "not read back after the run: HTTP 503 unavailable", Oversell},
		{"reply for another item", func(ev *Evidence) { ev.History.Confirmed[4].Got.ItemID = "a" }, "for item a, bought item b", Lost},
		{"reply without an order id", func(ev *Evidence) { ev.History.Confirmed[4].Got = OrderView{} }, "confirmation without an order_id", Lost},
		{"order lookup 404", func(ev *Evidence) {
			ev.Lookups = append(ev.Lookups, OrderLookup{OrderID: "102", NotFound: true})
		}, "answered 404", Lost},
		{"order lookup mismatch", func(ev *Evidence) { ev.Lookups[0].Got.Quantity = 2 }, "with quantity 2", Lost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := cleanEvidence()
			tt.mod(&ev)
			v := Check(ev)
			if tt.want == "" {
				if !v.Pass || len(v.Violations) != 0 {
					t.Fatalf("Check() = FAIL %q (%v); want PASS", v.Problems, v.Violations)
				}
				return
			}
			if v.Pass {
				t.Fatalf("Check() = PASS; want FAIL with %q", tt.want)
			}
			if !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Errorf("Check() problems = %q; want one mentioning %q", v.Problems, tt.want)
			}
			if v.Violations[tt.kind] == 0 {
				t.Errorf("Check() violations = %v; want %s counted", v.Violations, tt.kind)
			}
		})
	}
}

func TestCheckReport(t *testing.T) {
	ev := cleanEvidence()
	v := Check(ev)
	if v.OrdersChecked != 1 || v.OrdersPersisted != 1 {
		t.Errorf("OrdersChecked, OrdersPersisted = %d, %d; want 1, 1", v.OrdersChecked, v.OrdersPersisted)
	}
	if len(v.Items) != 2 || v.Items[0].SoldBefore != 2 || v.Items[0].Confirmed != 4 || !v.Items[0].Pass {
		t.Errorf("Items = %+v; want a: sold before 2, confirmed 4, pass", v.Items)
	}
	if notes := strings.Join(v.Notes, "\n"); !strings.Contains(notes, "1 of 2 replays") || !strings.Contains(notes, "104") {
		t.Errorf("Notes = %q; want the unanswered replay and the unread order", v.Notes)
	}

	// Many problems of one kind are summarised: 25 users each over the limit.
	for i := range 25 {
		for j := range 2 {
			ev.History.Confirmed = append(ev.History.Confirmed,
				order("c", fmt.Sprintf("w%d", i), fmt.Sprintf("x%d-%d", i, j), fmt.Sprintf("%d", 2000+2*i+j)))
		}
	}
	ev.After[0].Items["c"] = ItemState{ID: "c", Stock: 100, Remaining: 50, Sold: 50, PerUserLimit: 1}
	v = Check(ev)
	var limits int
	for _, p := range v.Problems {
		if strings.Contains(p, "limit 1") {
			limits++
		}
	}
	if limits != problemsPerKindMax || !strings.Contains(strings.Join(v.Problems, "\n"), "... and 15 more limit problems") || v.Violations[Limit] != 25 {
		t.Errorf("Check() problems = %q, violations %v; want %d listed, 15 more, 25 counted", v.Problems, v.Violations, problemsPerKindMax)
	}
}

// storeOf returns store evidence holding every confirmed order once and
// the sold units of every item.
func storeOf(ev Evidence) *StoreEvidence {
	st := &StoreEvidence{Orders: make(map[string][]StoredOrder), SoldUnits: make(map[string]int64)}
	for _, c := range ev.History.Confirmed {
		st.Orders[c.Got.OrderID] = []StoredOrder{{OrderID: c.Got.OrderID, ItemID: c.ItemID, UserID: c.UserID, RequestID: c.RequestID, Quantity: c.Quantity}}
	}
	for _, id := range ev.Items {
		a, _ := Agreed(ev.After, id)
		st.SoldUnits[id] = a.Sold
	}
	return st
}

func TestCheckStore(t *testing.T) {
	tests := []struct {
		name string
		mod  func(st *StoreEvidence)
		want string
		kind Invariant
	}{
		{"complete", func(*StoreEvidence) {}, "", ""},
		{"rows without request_id", func(st *StoreEvidence) { st.Orders["102"][0].RequestID = "" }, "", ""},
		{"missing", func(st *StoreEvidence) { delete(st.Orders, "102") }, "missing from the order store", Lost},
		{"twice", func(st *StoreEvidence) { st.Orders["102"] = append(st.Orders["102"], st.Orders["102"][0]) }, "stored 2 times", Duplicate},
		{"wrong user", func(st *StoreEvidence) { st.Orders["900"][0].UserID = "u1" }, "stored as item b user u1", Lost},
		{"wrong request", func(st *StoreEvidence) { st.Orders["900"][0].RequestID = "r8" }, `request "r8"`, Lost},
		{"fewer units", func(st *StoreEvidence) { st.SoldUnits["a"] = 5 }, "holds 5 units, server sold 6", Lost},
		{"more units", func(st *StoreEvidence) { st.SoldUnits["a"] = 7 }, "holds 7 units, server sold 6", Duplicate},
		{"unreadable", func(st *StoreEvidence) { *st = StoreEvidence{Err: "dial tcp: refused"} }, "order store: dial tcp: refused", Lost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := cleanEvidence()
			ev.Store = storeOf(ev)
			tt.mod(ev.Store)
			v := Check(ev)
			got := strings.Join(v.Problems, "\n")
			if (tt.want == "") != v.Pass || !strings.Contains(got, tt.want) || (tt.kind != "" && v.Violations[tt.kind] == 0) {
				t.Errorf("Check() pass %v, problems %q, violations %v; want %q (%s)", v.Pass, v.Problems, v.Violations, tt.want, tt.kind)
			}
		})
	}
}

// suiteEvidence is a correct history as the fault suite gathers it: every
// node's view of "hot" (stock 100, limit 3) and "lim" (stock 4, limit 2),
// two purchases replayed on every node, and the order store.
func suiteEvidence() Evidence {
	ev := Evidence{
		Items: []string{"hot", "lim"},
		Before: map[string]ItemState{
			"hot": {ID: "hot", Stock: 100, Remaining: 100, PerUserLimit: 3},
			"lim": {ID: "lim", Stock: 4, Remaining: 4, PerUserLimit: 2},
		},
		History:       History{ConfirmedQty: map[string]int64{}, UnknownQty: map[string]int64{}},
		ReplayTargets: []string{"n0", "n1", "n2"},
	}
	for _, n := range ev.ReplayTargets {
		ev.After = append(ev.After, ItemReads{Target: n, Items: map[string]ItemState{
			"hot": {ID: "hot", Stock: 100, Remaining: 100}, "lim": {ID: "lim", Stock: 4, Remaining: 4},
		}})
	}
	buy(&ev, "hot", "u1", "r1", 2, "1001")
	buy(&ev, "lim", "a", "r3", 2, "1003")
	ev.Store = storeOf(ev)
	return ev
}

// buy records a confirmed purchase, applies it to every node's view and
// replays it on every node.
func buy(ev *Evidence, item, user, rid string, qty int64, id string) {
	ev.History.Confirmed = append(ev.History.Confirmed, ConfirmedOrder{ItemID: item, UserID: user, RequestID: rid, Quantity: qty, Got: OrderView{OrderID: id}})
	ev.History.ConfirmedQty[item] += qty
	for _, r := range ev.After {
		it := r.Items[item]
		it.Sold += qty
		it.Remaining -= qty
		r.Items[item] = it
	}
	for t := range ev.ReplayTargets {
		ev.History.Replays = append(ev.History.Replays, Replay{ItemID: item, UserID: user, RequestID: rid, OrderID: id,
			Target: t, Outcome: OutcomeReplayed, Status: 200, Got: OrderView{OrderID: id}})
	}
}

// replayOn returns the replay of request rid on node target.
func replayOn(ev *Evidence, rid string, target int) *Replay {
	for i := range ev.History.Replays {
		if rp := &ev.History.Replays[i]; rp.RequestID == rid && rp.Target == target {
			return rp
		}
	}
	return nil
}

// TestCheckEveryTarget holds the fault suite's histories to the same
// invariants: every node's counters, and every confirmed request_id
// returned by every node.
func TestCheckEveryTarget(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(ev *Evidence)
		want  string
		kind  Invariant
	}{
		{"clean", func(*Evidence) {}, "", ""},
		{"a later attempt on the same node answered", func(ev *Evidence) {
			ev.History.Replays = append([]Replay{{ItemID: "hot", UserID: "u1", RequestID: "r1", OrderID: "1001", Target: 1,
				Outcome: OutcomeUnavailable, Status: 503, Code: "unavailable"}}, ev.History.Replays...)
		}, "", ""},
		{"sold without confirmation", func(ev *Evidence) {
			it := ev.After[1].Items["hot"]
			it.Sold++
			it.Remaining--
			ev.After[1].Items["hot"] = it
		}, "n1: item hot: server sold 3 units in this run, the shoppers saw 2 confirmed", Oversell},
		{"remaining != stock - sold", func(ev *Evidence) {
			it := ev.After[2].Items["lim"]
			it.Remaining++
			ev.After[2].Items["lim"] = it
		}, "n2: item lim: remaining 3 != stock 4 - sold 2", Oversell},
		{"confirmed more than stock", func(ev *Evidence) {
			buy(ev, "lim", "b", "x1", 2, "2001")
			buy(ev, "lim", "c", "x2", 2, "2002")
		}, "6 units confirmed in this run + 0 sold before > stock 4", Oversell},
		{"node unreadable", func(ev *Evidence) {
			delete(ev.After[0].Items, "hot")
			ev.After[0].Errs = map[string]string{"hot": "HTTP 503 unavailable"}
		}, "n0: item hot unreadable: HTTP 503 unavailable", Oversell},
		{"replica lost an order", func(ev *Evidence) {
			it := ev.After[2].Items["hot"]
			it.Sold -= 2
			it.Remaining += 2
			ev.After[2].Items["hot"] = it
		}, "n2: item hot: server sold 0 units in this run but confirmed 2", Lost},
		{"replay creates a new order", func(ev *Evidence) {
			rp := replayOn(ev, "r1", 1)
			rp.Outcome, rp.Status, rp.Got.OrderID = OutcomeConfirmed, 201, "9999"
		}, "n1: 1 of 2 confirmed purchases not returned by their request_id: 1 answered 201: a new order", Lost},
		{"replay never answered", func(ev *Evidence) {
			rp := replayOn(ev, "r1", 2)
			rp.Outcome, rp.Status, rp.Code, rp.Got = OutcomeUnavailable, 503, "unavailable", OrderView{}
		}, "n2: 1 of 2 confirmed purchases not returned by their request_id: 1 answered 503 unavailable", Lost},
		{"replay failed", func(ev *Evidence) {
			rp := replayOn(ev, "r3", 0)
			rp.Outcome, rp.Status, rp.Err, rp.Got = OutcomeNetError, 0, "Post http://n0/v1: dial tcp: connection refused", OrderView{}
		}, "1 failed: connection refused", Lost},
		{"not replayed", func(ev *Evidence) {
			ev.History.Replays = ev.History.Replays[:len(ev.History.Replays)-1]
		}, "n2: 1 of 2 confirmed purchases not returned by their request_id: 1 not replayed there", Lost},
		{"not in the store", func(ev *Evidence) { delete(ev.Store.Orders, "1001") }, "order 1001 (item hot, user u1) is missing", Lost},
		{"twice in the store", func(ev *Evidence) {
			ev.Store.Orders["1001"] = append(ev.Store.Orders["1001"], ev.Store.Orders["1001"][0])
		},
			"order 1001 is stored 2 times", Duplicate},
		{"store behind", func(ev *Evidence) { ev.Store.SoldUnits["hot"]-- }, "order store holds 1 units, server sold 2", Lost},
		{"two orders for one request", func(ev *Evidence) {
			ev.History.Confirmed = append(ev.History.Confirmed, ConfirmedOrder{ItemID: "hot", UserID: "u1", RequestID: "r1", Quantity: 2, Got: OrderView{OrderID: "1009"}})
		}, "confirmed as two orders: 1001 and 1009", Duplicate},
		{"one order for two requests", func(ev *Evidence) {
			ev.History.Confirmed = append(ev.History.Confirmed, ConfirmedOrder{ItemID: "hot", UserID: "u9", RequestID: "r9", Quantity: 2, Got: OrderView{OrderID: "1001"}})
		}, "order 1001 confirmed to two purchases", Duplicate},
		{"over the per-user limit", func(ev *Evidence) { buy(ev, "lim", "a", "r6", 1, "1006") }, "user a holds 3 units of item lim, limit 2", Limit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := suiteEvidence()
			tt.spoil(&ev)
			v := Check(ev)
			if tt.want == "" {
				if !v.Pass {
					t.Fatalf("Check() = FAIL %q; want PASS", v.Problems)
				}
				return
			}
			if v.Pass || v.Violations[tt.kind] == 0 || !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Fatalf("Check() pass %v, violations %v, problems %q; want %s mentioning %q", v.Pass, v.Violations, v.Problems, tt.kind, tt.want)
			}
		})
	}
}

// restock records restocks of item in the history, acknowledged and of
// unknown outcome, and applies the given units to every node's view.
func restock(ev *Evidence, item string, acked, unknown, applied int64) {
	if ev.History.RestockedQty == nil {
		ev.History.RestockedQty, ev.History.RestockUnknownQty = map[string]int64{}, map[string]int64{}
	}
	ev.History.RestockedQty[item] += acked
	ev.History.RestockUnknownQty[item] += unknown
	for _, r := range ev.After {
		it := r.Items[item]
		it.Stock += applied
		it.Remaining += applied
		r.Items[item] = it
	}
}

// settle gives order id its final status; an expired or cancelled order's
// units go back to every node's view.
func settle(ev *Evidence, id string, final orders.Status, paid PaymentOutcome) {
	for i := range ev.History.Confirmed {
		c := &ev.History.Confirmed[i]
		if c.Got.OrderID != id {
			continue
		}
		c.Final, c.Payment = final, paid
		if !final.Returned() {
			return
		}
		for _, r := range ev.After {
			it := r.Items[c.ItemID]
			it.Sold -= c.Quantity
			it.Remaining += c.Quantity
			r.Items[c.ItemID] = it
		}
		return
	}
}

// TestCheckStockComesBack holds a sale with restocks, a payment window and
// cancellations to the invariants on the units still held: each rule has a
// history that keeps it and one that breaks it.
func TestCheckStockComesBack(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(ev *Evidence)
		want  string // "" for PASS
		kind  Invariant
	}{
		// Oversell: held <= stock before + acknowledged + unknown restocks.
		{"restocked units sold", func(ev *Evidence) {
			restock(ev, "lim", 2, 0, 2)
			buy(ev, "lim", "b", "x1", 2, "2001")
			buy(ev, "lim", "c", "x2", 2, "2002")
		}, "", ""},
		{"units of an unknown restock that applied, sold", func(ev *Evidence) {
			restock(ev, "lim", 0, 2, 2)
			buy(ev, "lim", "b", "x1", 2, "2001")
			buy(ev, "lim", "c", "x2", 2, "2002")
		}, "", ""},
		{"held beyond stock and restocks", func(ev *Evidence) {
			restock(ev, "lim", 1, 0, 1)
			buy(ev, "lim", "b", "x1", 2, "2001")
			buy(ev, "lim", "c", "x2", 2, "2002")
		}, "6 units confirmed in this run + 0 sold before > stock 5 (restocks acknowledged +1, unknown up to +0)", Oversell},
		{"expired units sold again", func(ev *Evidence) {
			settle(ev, "1003", orders.StatusExpired, PaymentNone)
			buy(ev, "lim", "b", "x1", 2, "2001")
			buy(ev, "lim", "c", "x2", 2, "2002")
		}, "", ""},
		{"held beyond stock, some came back", func(ev *Evidence) {
			buy(ev, "lim", "b", "x1", 2, "2001")
			settle(ev, "1003", orders.StatusExpired, PaymentNone)
			buy(ev, "lim", "c", "x2", 2, "2002")
			buy(ev, "lim", "d", "x3", 1, "2003")
		}, "5 units held (7 confirmed, 2 came back) in this run + 0 sold before > stock 4", Oversell},
		// Lost and oversell: held <= sold after - before <= held + unknown.
		{"sold counts what came back as sold", func(ev *Evidence) {
			settle(ev, "1001", orders.StatusCancelled, PaymentNone)
			for _, r := range ev.After { // the units never returned
				it := r.Items["hot"]
				it.Sold, it.Remaining = 2, 98
				r.Items["hot"] = it
			}
		}, "server sold 2 units in this run, the shoppers saw 2 (held 0, 2 came back) confirmed and 0 unknown (2 sold without a confirmation)", Oversell},
		{"held order missing from sold", func(ev *Evidence) {
			buy(ev, "hot", "u2", "r2", 1, "1002")
			settle(ev, "1001", orders.StatusExpired, PaymentNone)
			settle(ev, "1002", orders.StatusPaid, PaymentPaid)
			for _, r := range ev.After { // 1002 returned as well
				it := r.Items["hot"]
				it.Sold, it.Remaining = 0, 100
				r.Items["hot"] = it
			}
		}, "server sold 0 units in this run but confirmed 3 (held 1, 2 came back) to the shoppers", Lost},
		// The stock grows by the acknowledged restocks, and at most the
		// unknown ones.
		{"unknown restock not applied", func(ev *Evidence) { restock(ev, "hot", 10, 5, 10) }, "", ""},
		{"unknown restock applied", func(ev *Evidence) { restock(ev, "hot", 10, 5, 15) }, "", ""},
		{"acknowledged restock missing", func(ev *Evidence) { restock(ev, "hot", 10, 5, 9) },
			"stock changed during the run from 100 to 109 (restocks acknowledged +10, unknown up to +5): acknowledged restocks lost", Lost},
		{"stock grew beyond the restocks", func(ev *Evidence) { restock(ev, "hot", 10, 5, 16) },
			"stock changed during the run from 100 to 116 (restocks acknowledged +10, unknown up to +5)", Oversell},
		// An acknowledged payment ends paid.
		{"paid order ends paid", func(ev *Evidence) { settle(ev, "1001", orders.StatusPaid, PaymentPaid) }, "", ""},
		{"unknown payment, order expired", func(ev *Evidence) { settle(ev, "1001", orders.StatusExpired, PaymentUnknown) }, "", ""},
		{"payment too late, order expired", func(ev *Evidence) { settle(ev, "1001", orders.StatusExpired, PaymentExpired) }, "", ""},
		{"paid order final status not read", func(ev *Evidence) { settle(ev, "1001", "", PaymentPaid) }, "", ""},
		{"paid order ends expired", func(ev *Evidence) { settle(ev, "1001", orders.StatusExpired, PaymentPaid) },
			"order 1001 (item hot, user u1): payment acknowledged, but the order ended expired", Lost},
		{"paid order ends cancelled", func(ev *Evidence) { settle(ev, "1003", orders.StatusCancelled, PaymentPaid) },
			"order 1003 (item lim, user a): payment acknowledged, but the order ended cancelled", Lost},
		{"paid order left unpaid", func(ev *Evidence) { settle(ev, "1001", orders.StatusConfirmed, PaymentPaid) },
			"payment acknowledged, but the order ended confirmed", Lost},
		{"told expired, ends paid", func(ev *Evidence) { settle(ev, "1001", orders.StatusPaid, PaymentExpired) },
			"order 1001 (item hot, user u1): payment answered order_expired (its units back on sale), but the order ended paid", Oversell},
		// The per-user limit counts the units still held.
		{"user buys again after an expiry", func(ev *Evidence) {
			settle(ev, "1003", orders.StatusExpired, PaymentNone)
			buy(ev, "lim", "a", "r6", 2, "1006")
		}, "", ""},
		{"user over the limit on held units", func(ev *Evidence) {
			settle(ev, "1003", orders.StatusPaid, PaymentPaid)
			buy(ev, "lim", "a", "r6", 2, "1006")
		}, "user a holds 4 units of item lim, limit 2", Limit},
		// A lookup may show the final status, and only that one.
		{"lookup shows the expiry", func(ev *Evidence) {
			settle(ev, "1001", orders.StatusExpired, PaymentNone)
			ev.Lookups = []OrderLookup{{OrderID: "1001", Found: true, Got: OrderView{OrderID: "1001", Status: "expired"}}}
		}, "", ""},
		{"lookup shows an expiry nobody read", func(ev *Evidence) {
			ev.Lookups = []OrderLookup{{OrderID: "1001", Found: true, Got: OrderView{OrderID: "1001", Status: "expired"}}}
		}, `order 1001 read back with status "expired"`, Lost},
		{"lookup contradicts the final status", func(ev *Evidence) {
			settle(ev, "1001", orders.StatusPaid, PaymentPaid)
			ev.Lookups = []OrderLookup{{OrderID: "1001", Found: true, Got: OrderView{OrderID: "1001", Status: "expired"}}}
		}, `with status "expired", final status "paid"`, Lost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := suiteEvidence()
			tt.spoil(&ev)
			ev.Store = storeOf(ev)
			v := Check(ev)
			if tt.want == "" {
				if !v.Pass || len(v.Violations) != 0 {
					t.Fatalf("Check() = FAIL %q (%v); want PASS", v.Problems, v.Violations)
				}
				return
			}
			if v.Pass || v.Violations[tt.kind] == 0 || !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Fatalf("Check() pass %v, violations %v, problems %q; want %s mentioning %q", v.Pass, v.Violations, v.Problems, tt.kind, tt.want)
			}
		})
	}
}

// TestCheckStockComesBackReport: the verdict counts what came back.
func TestCheckStockComesBackReport(t *testing.T) {
	ev := suiteEvidence()
	restock(&ev, "lim", 2, 3, 4)
	settle(&ev, "1003", orders.StatusExpired, PaymentExpired)
	buy(&ev, "lim", "b", "x1", 2, "2001")
	ev.Store = storeOf(ev)
	v := Check(ev)
	if !v.Pass {
		t.Fatalf("Check() = FAIL %q; want PASS", v.Problems)
	}
	lim := v.Items[1]
	if lim.ID != "lim" || lim.Confirmed != 4 || lim.Returned != 2 || lim.Restocked != 2 || lim.RestockUnknown != 3 || lim.Sold != 2 || lim.Stock != 8 {
		t.Errorf("Items[lim] = %+v; want confirmed 4, returned 2, restocked 2 and 3 unknown, sold 2, stock 8", lim)
	}
	if notes := strings.Join(v.Notes, "\n"); !strings.Contains(notes, "item lim: 2 of 3 restocked units with unknown outcome were added") {
		t.Errorf("Notes = %q; want the unknown restock that applied", v.Notes)
	}
}

func TestAgreed(t *testing.T) {
	reads := []ItemReads{
		{Target: "n0", Items: map[string]ItemState{"lim": {Sold: 3}}, Errs: map[string]string{"hot": "HTTP 503 unavailable"}},
		{Target: "n1", Items: map[string]ItemState{"hot": {Sold: 7}, "lim": {Sold: 4}}},
		{Target: "n2", Items: map[string]ItemState{"hot": {Sold: 7}, "lim": {Sold: 5}}},
	}
	if got, ok := Agreed(reads, "hot"); !ok || got.Sold != 7 {
		t.Errorf("Agreed(hot) = %+v, %v; want sold 7 (the readable majority)", got, ok)
	}
	if got, ok := Agreed(reads, "lim"); !ok || got.Sold != 3 {
		t.Errorf("Agreed(lim) = %+v, %v; want sold 3 (lowest of a three-way tie)", got, ok)
	}
	if _, ok := Agreed(reads, "gone"); ok {
		t.Error("Agreed(gone) found an item no read has")
	}
}

// slowStore holds an order back for its first reads, as a flusher that
// lags behind the confirmations does.
type slowStore struct {
	reads int
	err   error
}

func (s *slowStore) Orders(_ context.Context, ids []string) (map[string][]StoredOrder, error) {
	s.reads++
	if s.err != nil {
		return nil, s.err
	}
	out := make(map[string][]StoredOrder)
	for _, id := range ids {
		if id != "2" || s.reads > 2 {
			out[id] = []StoredOrder{{OrderID: id, ItemID: "a"}}
		}
	}
	return out, nil
}

func (s *slowStore) SoldUnits(_ context.Context, items []string) (map[string]int64, error) {
	return map[string]int64{"a": 2}, nil
}

func TestReadStore(t *testing.T) {
	ctx := context.Background()
	st := &slowStore{}
	got := ReadStore(ctx, st, []string{"1", "2"}, map[string]int64{"a": 2}, time.Millisecond)
	if st.reads != 3 || len(got.Orders["2"]) != 1 || got.Err != "" {
		t.Errorf("ReadStore() after %d reads = %+v; want order 2 on the third read", st.reads, got)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	got = ReadStore(short, &slowStore{}, []string{"1", "2"}, map[string]int64{"a": 3}, time.Millisecond)
	if got.Err != "" || len(got.Orders["1"]) != 1 {
		t.Errorf("ReadStore(never caught up) = %+v; want the last read", got)
	}

	short2, cancel2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel2()
	got = ReadStore(short2, &slowStore{err: errors.New("dial tcp: refused")}, []string{"1"}, nil, time.Millisecond)
	if got.Err != "dial tcp: refused" {
		t.Errorf("ReadStore(unreadable) = %+v; want Err from the store", got)
	}
}

// TestCheckStoredStatus: an order whose final status the history knows
// must end in the store with it: a payment, expiry or cancel that never
// reached the store is lost there. A store that does not say, or an order
// whose final status was not read, is not judged.
func TestCheckStoredStatus(t *testing.T) {
	for _, tt := range []struct {
		name, final, stored, want string
	}{
		{"paid in both", "paid", "paid", ""},
		{"payment never stored", "paid", "confirmed", "order 102 is confirmed in the order store, paid in the sale"},
		{"expiry never stored", "expired", "confirmed", "order 102 is confirmed in the order store, expired in the sale"},
		{"store does not say", "paid", "", ""},
		{"final not read", "", "confirmed", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := cleanEvidence()
			for i := range ev.History.Confirmed {
				if ev.History.Confirmed[i].Got.OrderID == "102" {
					ev.History.Confirmed[i].Final = orders.Status(tt.final)
				}
			}
			ev.Store = storeOf(ev)
			ev.Store.Orders["102"][0].Status = tt.stored
			if tt.final == "expired" { // its unit came back everywhere
				for _, r := range ev.After {
					for id, it := range r.Items {
						if id == ev.Store.Orders["102"][0].ItemID {
							it.Sold--
							it.Remaining++
							r.Items[id] = it
						}
					}
				}
				ev.Store.SoldUnits[ev.Store.Orders["102"][0].ItemID]--
			}
			v := Check(ev)
			got := strings.Join(v.Problems, "\n")
			if (tt.want == "") != v.Pass || !strings.Contains(got, tt.want) || (tt.want != "" && v.Violations[Lost] == 0) {
				t.Errorf("Check() pass %v, problems %q; want %q", v.Pass, v.Problems, tt.want)
			}
		})
	}
}
