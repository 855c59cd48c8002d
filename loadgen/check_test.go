package loadgen

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// cleanEvidence is a correct history: item "a" (stock 10, limit 1) sold 4
// units to 4 users in this run after 2 sold before; item "b" sold 1 of 5.
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
				{ItemID: "a", UserID: "u1", RequestID: "r1", OrderID: "101", Outcome: OutcomeReplayed, Got: confirmed[0].Got},
				{ItemID: "a", UserID: "u2", RequestID: "r2", OrderID: "102", Outcome: OutcomeTimeout},
			},
		},
		Before: map[string]ItemState{
			"a": {ID: "a", Stock: 10, Remaining: 8, Sold: 2, PerUserLimit: 1},
			"b": {ID: "b", Stock: 5, Remaining: 5, Sold: 0, PerUserLimit: 1},
		},
		After: map[string]ItemState{
			"a": {ID: "a", Stock: 10, Remaining: 4, Sold: 6, PerUserLimit: 1, Status: "on_sale"},
			"b": {ID: "b", Stock: 5, Remaining: 4, Sold: 1, PerUserLimit: 1, Status: "on_sale"},
		},
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

// setAfter changes one item's after-state.
func setAfter(ev *Evidence, id string, sold, remaining int64) {
	it := ev.After[id]
	it.Sold, it.Remaining = sold, remaining
	ev.After[id] = it
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		mod  func(ev *Evidence)
		want string // "" for PASS, else a fragment of a problem
	}{
		{"clean", func(*Evidence) {}, ""},
		{"unknown outcomes that sold", func(ev *Evidence) {
			ev.History.UnknownQty["a"] = 3
			setAfter(ev, "a", 8, 2) // 2 of the 3 unknown units sold
		}, ""},
		{"unknown outcomes that did not sell", func(ev *Evidence) { ev.History.UnknownQty["a"] = 3 }, ""},
		{"oversell seen", func(ev *Evidence) {
			for i := 5; i <= 13; i++ {
				ev.History.Confirmed = append(ev.History.Confirmed, order("a", fmt.Sprintf("u%d", i), "r", fmt.Sprint(100+i)))
			}
			ev.History.ConfirmedQty["a"] = 13
			setAfter(ev, "a", 15, -5)
		}, "oversold"},
		{"oversell reported by server", func(ev *Evidence) { setAfter(ev, "a", 11, -1) }, "oversold"},
		{"user over limit", func(ev *Evidence) {
			ev.History.Confirmed = append(ev.History.Confirmed, order("a", "u1", "r1b", "199"))
			ev.History.ConfirmedQty["a"] = 5
			setAfter(ev, "a", 7, 3)
		}, "limit 1"},
		{"duplicate order id", func(ev *Evidence) {
			ev.History.Confirmed[3].Got.OrderID = "101"
		}, "confirmed to two purchases"},
		{"request_id confirmed twice", func(ev *Evidence) {
			dup := order("a", "u1", "r1", "150")
			ev.History.Confirmed = append(ev.History.Confirmed, dup)
		}, "confirmed as two orders"},
		{"replay gets a new order", func(ev *Evidence) {
			ev.History.Replays[0].Outcome = OutcomeConfirmed
			ev.History.Replays[0].Got.OrderID = "777"
		}, "its replay as order 777"},
		{"replay sold out", func(ev *Evidence) {
			ev.History.Replays[0].Outcome, ev.History.Replays[0].Code = OutcomeSoldOut, "sold_out"
			ev.History.Replays[0].Got = OrderView{}
		}, "instead of the order"},
		{"lost confirmed orders", func(ev *Evidence) { setAfter(ev, "a", 4, 6) }, "confirmed orders lost"},
		{"sold without confirmation", func(ev *Evidence) { setAfter(ev, "a", 7, 3) }, "sold without a confirmation"},
		{"sold beyond unknown", func(ev *Evidence) {
			ev.History.UnknownQty["a"] = 1
			setAfter(ev, "a", 8, 2)
		}, "1 sold without a confirmation"},
		{"remaining out of step", func(ev *Evidence) { setAfter(ev, "b", 1, 5) }, "remaining 5 != stock 5 - sold 1"},
		{"item not read back", func(ev *Evidence) { delete(ev.After, "b") }, "not read back"},
		{"reply for another item", func(ev *Evidence) { ev.History.Confirmed[4].Got.ItemID = "a" }, "for item a, bought item b"},
		{"order lookup 404", func(ev *Evidence) {
			ev.Lookups = append(ev.Lookups, OrderLookup{OrderID: "102", NotFound: true})
		}, "answered 404"},
		{"order lookup mismatch", func(ev *Evidence) { ev.Lookups[0].Got.Quantity = 2 }, "with quantity 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := cleanEvidence()
			tt.mod(&ev)
			v := Check(ev)
			if tt.want == "" {
				if !v.Pass {
					t.Fatalf("Check() = FAIL %q; want PASS", v.Problems)
				}
				return
			}
			if v.Pass {
				t.Fatalf("Check() = PASS; want FAIL with %q", tt.want)
			}
			if !strings.Contains(strings.Join(v.Problems, "\n"), tt.want) {
				t.Errorf("Check() problems = %q; want one mentioning %q", v.Problems, tt.want)
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
	ev.After["c"] = ItemState{ID: "c", Stock: 100, Remaining: 50, Sold: 50, PerUserLimit: 1}
	v = Check(ev)
	var limits int
	for _, p := range v.Problems {
		if strings.Contains(p, "limit 1") {
			limits++
		}
	}
	if limits != problemsPerKindMax || !strings.Contains(strings.Join(v.Problems, "\n"), "... and 15 more per_user_limit problems") {
		t.Errorf("Check() problems = %q; want %d listed and 15 more", v.Problems, problemsPerKindMax)
	}
}

func TestCheckStore(t *testing.T) {
	rows := func(ev Evidence) map[string][]StoredOrder {
		m := make(map[string][]StoredOrder)
		for _, c := range ev.History.Confirmed {
			m[c.Got.OrderID] = []StoredOrder{{OrderID: c.Got.OrderID, ItemID: c.ItemID, UserID: c.UserID, Quantity: c.Quantity}}
		}
		return m
	}
	tests := []struct {
		name string
		mod  func(st *StoreEvidence)
		want string
	}{
		{"complete", func(*StoreEvidence) {}, ""},
		{"missing", func(st *StoreEvidence) { delete(st.Orders, "102") }, "missing from the order store"},
		{"twice", func(st *StoreEvidence) { st.Orders["102"] = append(st.Orders["102"], st.Orders["102"][0]) }, "stored 2 times"},
		{"wrong user", func(st *StoreEvidence) { st.Orders["900"][0].UserID = "u1" }, "stored as item b user u1"},
		{"units", func(st *StoreEvidence) { st.SoldUnits["a"] = 5 }, "holds 5 units, server sold 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := cleanEvidence()
			ev.Store = &StoreEvidence{Orders: rows(ev), SoldUnits: map[string]int64{"a": 6, "b": 1}}
			tt.mod(ev.Store)
			v := Check(ev)
			got := strings.Join(v.Problems, "\n")
			if (tt.want == "") != v.Pass || !strings.Contains(got, tt.want) {
				t.Errorf("Check() pass %v, problems %q; want %q", v.Pass, v.Problems, tt.want)
			}
		})
	}
}

// memStore is an OrderStore over a map, for the hook's tests.
type memStore struct {
	rows  map[string][]StoredOrder
	units map[string]int64
}

func (m memStore) Orders(ctx context.Context, ids []string) (map[string][]StoredOrder, error) {
	out := make(map[string][]StoredOrder)
	for _, id := range ids {
		if r, ok := m.rows[id]; ok {
			out[id] = r
		}
	}
	return out, ctx.Err()
}

func (m memStore) SoldUnits(ctx context.Context, items []string) (map[string]int64, error) {
	out := make(map[string]int64)
	for _, id := range items {
		out[id] = m.units[id]
	}
	return out, ctx.Err()
}

var _ OrderStore = memStore{}
