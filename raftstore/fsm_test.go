package raftstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

var testFSMConfig = raftstore.FSMConfig{DedupRetention: time.Hour, DedupMax: 1000}

// fsmRig applies commands to an FSM as consecutive Raft log entries, without
// Raft, and remembers command time the way the FSM should.
type fsmRig struct {
	t     testing.TB
	shard int
	f     *raftstore.FSM
	index uint64
	now   int64 // the largest stamp applied so far
}

func newFSMRig(t testing.TB, shard int, cfg raftstore.FSMConfig) *fsmRig {
	return &fsmRig{t: t, shard: shard, f: raftstore.NewFSM(shard, cfg)}
}

func stampOf(cmd encoder) int64 {
	switch c := cmd.(type) {
	case *raftstore.CreateItem:
		return c.Stamp
	case *raftstore.PurchaseBatch:
		return c.Stamp
	case *raftstore.PurchaseEntry:
		return c.Stamp
	case *raftstore.MarkFlushed:
		return c.Stamp
	case *raftstore.Restock:
		return c.Stamp
	case *raftstore.SetPaused:
		return c.Stamp
	case *raftstore.Pay:
		return c.Stamp
	case *raftstore.Expire:
		return c.Stamp
	case *raftstore.Cancel:
		return c.Stamp
	case *raftstore.EndSale:
		return c.Stamp
	case *raftstore.OutboxAppend:
		return c.Stamp
	}
	panic(fmt.Sprintf("unknown command %T", cmd))
}

func logEntry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func (r *fsmRig) apply(cmd encoder) any {
	r.index++
	r.now = max(r.now, stampOf(cmd))
	return r.f.Apply(logEntry(r.index, must(cmd.Encode(nil))))
}

func (r *fsmRig) create(c raftstore.CreateItem) sale.Item {
	r.t.Helper()
	resp := r.apply(&c)
	it, ok := resp.(sale.Item)
	if !ok {
		r.t.Fatalf("CreateItem(%q) = %v; want an Item", c.ID, resp)
	}
	return it
}

func (r *fsmRig) buy(stamp int64, item string, ps ...raftstore.Purchase) []raftstore.PurchaseResult {
	r.t.Helper()
	resp := r.apply(&raftstore.PurchaseBatch{Stamp: stamp, ItemID: item, Purchases: ps})
	res, ok := resp.([]raftstore.PurchaseResult)
	if !ok || len(res) != len(ps) {
		r.t.Fatalf("PurchaseBatch(%q) = %#v; want %d results", item, resp, len(ps))
	}
	return res
}

func p(user, request string, qty int32) raftstore.Purchase {
	return raftstore.Purchase{UserID: user, RequestID: request, Quantity: qty}
}

func batch(stamp int64, item string, ps ...raftstore.Purchase) *raftstore.PurchaseBatch {
	return &raftstore.PurchaseBatch{Stamp: stamp, ItemID: item, Purchases: ps}
}

func item(id string, stock int64, limit int32) *raftstore.CreateItem {
	return &raftstore.CreateItem{Stamp: 1, ID: id, Name: "item " + id, Stock: stock, PerUserLimit: limit}
}

const (
	C   = sale.OutcomeConfirmed
	D   = sale.OutcomeDuplicate
	S   = sale.OutcomeSoldOut
	L   = sale.OutcomeLimitExceeded
	N   = sale.OutcomeNotOnSale
	NF  = sale.OutcomeItemNotFound
	INV = sale.OutcomeInvalidQuantity
)

func TestFSMCreateItem(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	c := raftstore.CreateItem{Stamp: 42, ID: "sku-1", Name: "Phone", Stock: 7, PerUserLimit: 2, StartsAt: 10, EndsAt: 50}
	want := sale.Item{ID: "sku-1", Name: "Phone", Stock: 7, Remaining: 7, PerUserLimit: 2, StartsAt: 10, EndsAt: 50, CreatedAt: 42}
	if got := r.apply(&c); got != want {
		t.Errorf("CreateItem(%q) = %+v; want %+v", c.ID, got, want)
	}
	dup := raftstore.CreateItem{Stamp: 43, ID: "sku-1", Name: "Other", Stock: 1, PerUserLimit: 1}
	if got := r.apply(&dup); got != sale.ErrItemExists {
		t.Errorf("CreateItem(%q) again = %v; want %v", dup.ID, got, sale.ErrItemExists)
	}
	if got, ok := r.f.Item("sku-1"); !ok || got != want {
		t.Errorf("Item(%q) = %+v, %v; want the first item %+v, true", "sku-1", got, ok, want)
	}
	if got := r.f.Items(); len(got) != 1 {
		t.Errorf("Items() = %+v; want one item", got)
	}
	if _, ok := r.f.Item("nope"); ok {
		t.Errorf("Item(%q) found; want not found", "nope")
	}
	if got, ok := r.f.Remaining("nope"); ok || got != 0 {
		t.Errorf("Remaining(%q) = %d, %v; want 0, false", "nope", got, ok)
	}
	if got := r.f.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex() = %d; want 2", got)
	}
}

type step struct {
	cmd     encoder
	want    []sale.Outcome // for a PurchaseBatch
	wantErr error          // for the other commands: nil means an Item
}

func TestFSMPurchase(t *testing.T) {
	tests := []struct {
		name      string
		steps     []step
		remaining map[string]int64
		bought    map[string]int32 // "item/user"
	}{
		{
			name:      "confirmed",
			steps:     []step{{cmd: item("a", 3, 1)}, {cmd: batch(10, "a", p("u1", "", 1)), want: []sale.Outcome{C}}},
			remaining: map[string]int64{"a": 2},
			bought:    map[string]int32{"a/u1": 1, "a/u2": 0},
		},
		{
			name: "sold out at the boundary",
			steps: []step{{cmd: item("a", 3, 1)}, {
				cmd:  batch(10, "a", p("u1", "", 1), p("u2", "", 1), p("u3", "", 1), p("u4", "", 1), p("u5", "", 1)),
				want: []sale.Outcome{C, C, C, S, S},
			}, {cmd: batch(11, "a", p("u6", "", 1)), want: []sale.Outcome{S}}},
			remaining: map[string]int64{"a": 0},
			bought:    map[string]int32{"a/u3": 1, "a/u4": 0, "a/u5": 0, "a/u6": 0},
		},
		{
			name: "a smaller purchase fits after a sold-out one",
			steps: []step{{cmd: item("a", 3, 5)}, {
				cmd:  batch(10, "a", p("u1", "", 2), p("u2", "", 2), p("u3", "", 1)),
				want: []sale.Outcome{C, S, C},
			}},
			remaining: map[string]int64{"a": 0},
			bought:    map[string]int32{"a/u1": 2, "a/u2": 0, "a/u3": 1},
		},
		{
			name: "per-user limit within a batch",
			steps: []step{{cmd: item("a", 10, 2)}, {
				cmd:  batch(10, "a", p("u1", "", 1), p("u1", "", 1), p("u1", "", 1), p("u2", "", 2)),
				want: []sale.Outcome{C, C, L, C},
			}},
			remaining: map[string]int64{"a": 6},
			bought:    map[string]int32{"a/u1": 2, "a/u2": 2},
		},
		{
			name: "per-user limit across batches",
			steps: []step{
				{cmd: item("a", 10, 3)},
				{cmd: batch(10, "a", p("u1", "", 2)), want: []sale.Outcome{C}},
				{cmd: batch(11, "a", p("u1", "", 2), p("u1", "", 1)), want: []sale.Outcome{L, C}},
				{cmd: batch(12, "a", p("u1", "", 1), p("u2", "", 3)), want: []sale.Outcome{L, C}},
			},
			remaining: map[string]int64{"a": 4},
			bought:    map[string]int32{"a/u1": 3, "a/u2": 3},
		},
		{
			name: "limits are per item",
			steps: []step{
				{cmd: item("a", 10, 1)}, {cmd: item("b", 10, 1)},
				{cmd: batch(10, "a", p("u1", "", 1)), want: []sale.Outcome{C}},
				{cmd: batch(11, "b", p("u1", "", 1)), want: []sale.Outcome{C}},
			},
			remaining: map[string]int64{"a": 9, "b": 9},
			bought:    map[string]int32{"a/u1": 1, "b/u1": 1},
		},
		{
			name: "quantity over the limit or below one is invalid",
			steps: []step{{cmd: item("a", 10, 2)}, {
				cmd:  batch(10, "a", p("u1", "", 3), p("u1", "", 0), p("u1", "", -1), p("u1", "", math.MaxInt32), p("u1", "", math.MinInt32)),
				want: []sale.Outcome{INV, INV, INV, INV, INV},
			}},
			remaining: map[string]int64{"a": 10},
			bought:    map[string]int32{"a/u1": 0},
		},
		{
			name: "sale window by command stamp",
			steps: []step{
				{cmd: &raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 10, PerUserLimit: 10, StartsAt: 100, EndsAt: 200}},
				{cmd: batch(99, "a", p("u1", "", 1)), want: []sale.Outcome{N}},
				{cmd: batch(100, "a", p("u1", "", 1)), want: []sale.Outcome{C}},
				{cmd: batch(199, "a", p("u1", "", 1)), want: []sale.Outcome{C}},
				{cmd: batch(200, "a", p("u1", "", 1)), want: []sale.Outcome{N}},
				{cmd: batch(150, "a", p("u1", "", 1)), want: []sale.Outcome{N}}, // time does not go back
			},
			remaining: map[string]int64{"a": 8},
			bought:    map[string]int32{"a/u1": 2},
		},
		{
			name: "paused and resumed",
			steps: []step{
				{cmd: item("a", 10, 1)},
				{cmd: &raftstore.SetPaused{Stamp: 5, ItemID: "a", Paused: true}},
				{cmd: batch(10, "a", p("u1", "r1", 1)), want: []sale.Outcome{N}},
				{cmd: &raftstore.SetPaused{Stamp: 11, ItemID: "a", Paused: false}},
				{cmd: batch(12, "a", p("u1", "r1", 1)), want: []sale.Outcome{C}},
				{cmd: &raftstore.SetPaused{Stamp: 13, ItemID: "nope", Paused: true}, wantErr: sale.ErrItemNotFound},
			},
			remaining: map[string]int64{"a": 9},
			bought:    map[string]int32{"a/u1": 1},
		},
		{
			name: "unknown item",
			steps: []step{
				{cmd: item("a", 10, 1)},
				{cmd: batch(10, "nope", p("u1", "r1", 1), p("u2", "", 1)), want: []sale.Outcome{NF, NF}},
				{cmd: batch(11, "a", p("u1", "r1", 1)), want: []sale.Outcome{C}}, // r1 was not remembered
			},
			remaining: map[string]int64{"a": 9},
			bought:    map[string]int32{"nope/u1": 0, "a/u1": 1},
		},
		{
			name: "request id deduplicated within a batch",
			steps: []step{{cmd: item("a", 10, 1)}, {
				cmd:  batch(10, "a", p("u1", "r1", 1), p("u1", "r1", 1), p("u1", "r2", 1)),
				want: []sale.Outcome{C, D, L},
			}},
			remaining: map[string]int64{"a": 9},
			bought:    map[string]int32{"a/u1": 1},
		},
		{
			name: "request id deduplicated across batches, even sold out",
			steps: []step{
				{cmd: item("a", 1, 1)},
				{cmd: batch(10, "a", p("u1", "r1", 1)), want: []sale.Outcome{C}},
				{cmd: batch(11, "a", p("u1", "r1", 1), p("u2", "r1", 1)), want: []sale.Outcome{D, S}},
				{cmd: batch(12, "a", p("u1", "r1", 5)), want: []sale.Outcome{D}}, // the original answer, whatever the retry says
			},
			remaining: map[string]int64{"a": 0},
			bought:    map[string]int32{"a/u1": 1, "a/u2": 0},
		},
		{
			name: "request id is scoped to the user",
			steps: []step{{cmd: item("a", 10, 1)}, {
				cmd:  batch(10, "a", p("u1", "r1", 1), p("u2", "r1", 1)),
				want: []sale.Outcome{C, C},
			}},
			remaining: map[string]int64{"a": 8},
			bought:    map[string]int32{"a/u1": 1, "a/u2": 1},
		},
		{
			name: "request ids are scoped to the item: reuse for another item is a new purchase",
			steps: []step{
				{cmd: item("a", 10, 1)}, {cmd: item("b", 10, 2)},
				{cmd: batch(10, "a", p("u1", "r1", 1)), want: []sale.Outcome{C}},
				{cmd: batch(11, "b", p("u1", "r1", 1), p("u1", "r2", 1)), want: []sale.Outcome{C, C}},
				{cmd: batch(12, "b", p("u1", "r1", 1)), want: []sale.Outcome{D}},
				{cmd: batch(13, "nope", p("u1", "r1", 1)), want: []sale.Outcome{NF}},
			},
			remaining: map[string]int64{"a": 9, "b": 8},
			bought:    map[string]int32{"a/u1": 1, "b/u1": 2},
		},
		{
			name: "a rejected request id is not remembered",
			steps: []step{
				{cmd: item("a", 1, 1)},
				{cmd: batch(10, "a", p("u1", "r1", 1), p("u2", "r1", 1)), want: []sale.Outcome{C, S}},
				{cmd: &raftstore.Restock{Stamp: 11, ItemID: "a", Delta: 1}},
				{cmd: batch(12, "a", p("u2", "r1", 1)), want: []sale.Outcome{C}},
			},
			remaining: map[string]int64{"a": 0},
			bought:    map[string]int32{"a/u1": 1, "a/u2": 1},
		},
		{
			name: "an empty batch",
			steps: []step{
				{cmd: item("a", 1, 1)},
				{cmd: batch(10, "a"), want: []sale.Outcome{}},
			},
			remaining: map[string]int64{"a": 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const shard = 3
			r := newFSMRig(t, shard, testFSMConfig)
			seen := map[[3]string]orders.Order{}
			confirmed := map[string]int64{} // item -> units confirmed
			stock := map[string]int64{}
			ids := map[uint64]bool{}
			for i, st := range tc.steps {
				resp := r.apply(st.cmd)
				b, isBatch := st.cmd.(*raftstore.PurchaseBatch)
				if !isBatch {
					if err, _ := resp.(error); err != st.wantErr {
						t.Fatalf("step %d: Apply(%T) = %v; want %v", i, st.cmd, resp, st.wantErr)
					}
					if it, ok := resp.(sale.Item); ok {
						stock[it.ID] = it.Stock
					}
					continue
				}
				res, ok := resp.([]raftstore.PurchaseResult)
				if !ok || len(res) != len(st.want) {
					t.Fatalf("step %d: Purchase(%q) = %#v; want %d results", i, b.ItemID, resp, len(st.want))
				}
				for j, pr := range res {
					pu := b.Purchases[j]
					key := [3]string{b.ItemID, pu.UserID, pu.RequestID}
					if pr.Outcome != st.want[j] {
						t.Errorf("step %d: Purchase(%q) #%d %+v = %v (%v); want %v (%v)", i, b.ItemID, j, pu, pr.Outcome, pr.Outcome.Err(), st.want[j], st.want[j].Err())
						continue
					}
					switch pr.Outcome {
					case C:
						want := orders.Order{
							ID: orders.MakeID(shard, r.index, j), ItemID: b.ItemID, UserID: pu.UserID, RequestID: pu.RequestID,
							Quantity: pu.Quantity, Status: orders.StatusConfirmed, CreatedAt: time.Unix(0, r.now).UTC(),
							Shard: shard, LogIndex: r.index,
						}
						if !reflect.DeepEqual(pr.Order, want) {
							t.Errorf("step %d: Purchase(%q) #%d order = %+v; want %+v", i, b.ItemID, j, pr.Order, want)
						}
						if ids[pr.Order.ID] {
							t.Errorf("step %d: order ID %d issued twice", i, pr.Order.ID)
						}
						ids[pr.Order.ID] = true
						if pu.RequestID != "" {
							seen[key] = pr.Order
						}
						confirmed[b.ItemID] += int64(pu.Quantity)
					case D:
						if want, ok := seen[key]; !ok || !reflect.DeepEqual(pr.Order, want) {
							t.Errorf("step %d: Purchase(%q) #%d duplicate order = %+v; want the original %+v", i, b.ItemID, j, pr.Order, want)
						}
					default:
						if pr.Order != (orders.Order{}) {
							t.Errorf("step %d: rejected purchase #%d carries order %+v; want none", i, j, pr.Order)
						}
						if pr.Outcome.Err() == nil {
							t.Errorf("sale.Outcome(%d).Err() = nil; want an error", pr.Outcome)
						}
					}
				}
			}
			for id, want := range tc.remaining {
				if got, ok := r.f.Remaining(id); !ok || got != want {
					t.Errorf("Remaining(%q) = %d, %v; want %d, true", id, got, ok, want)
				}
				if got := stock[id] - want; got != confirmed[id] {
					t.Errorf("item %q: stock - remaining = %d; want %d units confirmed", id, got, confirmed[id])
				}
			}
			for k, want := range tc.bought {
				itemID, user, _ := strings.Cut(k, "/")
				if got := r.f.Bought(itemID, user); got != want {
					t.Errorf("Bought(%q, %q) = %d; want %d", itemID, user, got, want)
				}
			}
			for key, want := range seen {
				if got, ok := r.f.LookupRequest(key[0], key[1], key[2]); !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("LookupRequest(%q, %q, %q) = %+v, %v; want %+v, true", key[0], key[1], key[2], got, ok, want)
				}
			}
			if got := r.f.PendingCount(); got != len(ids) {
				t.Errorf("PendingCount() = %d; want %d confirmed orders", got, len(ids))
			}
		})
	}
}

func TestFSMOrderIDs(t *testing.T) {
	const shard = 5
	r := newFSMRig(t, shard, testFSMConfig)
	r.create(*item("a", 1000, 1000))
	ids := map[uint64]bool{}
	var all []uint64
	for b := 0; b < 5; b++ {
		ps := make([]raftstore.Purchase, 50)
		for i := range ps {
			ps[i] = p(fmt.Sprintf("u%d", i%7), "", int32(1+i%2))
			if i%10 == 9 {
				ps[i].Quantity = 0 // rejected: its position is skipped, not reused
			}
		}
		res := r.buy(int64(10+b), "a", ps...)
		for i, pr := range res {
			if pr.Outcome != C {
				continue
			}
			want := orders.MakeID(shard, r.index, i)
			if pr.Order.ID != want {
				t.Errorf("batch %d #%d: order ID = %d; want MakeID(%d, %d, %d) = %d", b, i, pr.Order.ID, shard, r.index, i, want)
			}
			if got := orders.ShardOfID(pr.Order.ID); got != shard {
				t.Errorf("ShardOfID(%d) = %d; want %d", pr.Order.ID, got, shard)
			}
			if ids[pr.Order.ID] {
				t.Errorf("order ID %d issued twice", pr.Order.ID)
			}
			ids[pr.Order.ID] = true
			all = append(all, pr.Order.ID)
		}
	}
	if len(all) != 5*45 {
		t.Fatalf("confirmed %d orders; want %d", len(all), 5*45)
	}
	pending := r.f.Unflushed(1 << 20)
	if len(pending) != len(all) {
		t.Fatalf("Unflushed() has %d orders; want %d", len(pending), len(all))
	}
	for i, o := range pending {
		if o.ID != all[i] {
			t.Fatalf("Unflushed()[%d].ID = %d; want %d (ascending, in confirmation order)", i, o.ID, all[i])
		}
		if got, ok := r.f.PendingOrder(o.ID); !ok || !reflect.DeepEqual(got, o) {
			t.Errorf("PendingOrder(%d) = %+v, %v; want %+v, true", o.ID, got, ok, o)
		}
	}
	if got := r.f.Unflushed(3); len(got) != 3 || got[0].ID != all[0] {
		t.Errorf("Unflushed(3) = %d orders starting %v; want the 3 oldest", len(got), got)
	}
	if _, ok := r.f.PendingOrder(all[len(all)-1] + 1); ok {
		t.Errorf("PendingOrder(%d) found; want not found", all[len(all)-1]+1)
	}
}

func TestFSMDedupExpiry(t *testing.T) {
	const sec = int64(time.Second)
	t.Run("by command time", func(t *testing.T) {
		r := newFSMRig(t, 0, raftstore.FSMConfig{DedupRetention: 10 * time.Second, DedupMax: 1000})
		r.create(raftstore.CreateItem{Stamp: 1 * sec, ID: "a", Stock: 10, PerUserLimit: 5})
		first := r.buy(100*sec, "a", p("u1", "r1", 1))[0]
		if got := r.buy(109*sec, "a", p("u1", "r1", 1))[0]; got.Outcome != D || got.Order.ID != first.Order.ID {
			t.Errorf("Purchase(%q) 9s later = %v order %d; want duplicate of %d", "r1", got.Outcome, got.Order.ID, first.Order.ID)
		}
		// Any command moves time; at retention the key is forgotten.
		r.apply(&raftstore.MarkFlushed{Stamp: 110 * sec})
		if o, ok := r.f.LookupRequest("a", "u1", "r1"); ok {
			t.Errorf("LookupRequest(%q, %q) at expiry = %+v, true; want forgotten", "u1", "r1", o)
		}
		if got := r.buy(111*sec, "a", p("u1", "r1", 1))[0]; got.Outcome != C || got.Order.ID == first.Order.ID {
			t.Errorf("Purchase(%q) after expiry = %v order %d; want a new confirmed order", "r1", got.Outcome, got.Order.ID)
		}
		if got := r.f.Stats().DedupKeys; got != 1 {
			t.Errorf("Stats().DedupKeys = %d; want 1", got)
		}
	})
	t.Run("a stale stamp does not expire", func(t *testing.T) {
		r := newFSMRig(t, 0, raftstore.FSMConfig{DedupRetention: 10 * time.Second, DedupMax: 1000})
		r.create(raftstore.CreateItem{Stamp: 1 * sec, ID: "a", Stock: 10, PerUserLimit: 5})
		r.buy(100*sec, "a", p("u1", "r1", 1))
		r.apply(&raftstore.MarkFlushed{Stamp: 109 * sec})
		r.apply(&raftstore.MarkFlushed{Stamp: 50 * sec})
		if _, ok := r.f.LookupRequest("a", "u1", "r1"); !ok {
			t.Errorf("LookupRequest(%q, %q) = false; want remembered until 110s", "u1", "r1")
		}
	})
	t.Run("by DedupMax, oldest first", func(t *testing.T) {
		r := newFSMRig(t, 0, raftstore.FSMConfig{DedupRetention: time.Hour, DedupMax: 2})
		r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 10, PerUserLimit: 10})
		for i, req := range []string{"r1", "r2", "r3"} {
			r.buy(int64(10+i), "a", p("u1", req, 1))
		}
		r.apply(&raftstore.MarkFlushed{Stamp: 20}) // the next command trims
		for req, want := range map[string]bool{"r1": false, "r2": true, "r3": true} {
			if _, ok := r.f.LookupRequest("a", "u1", req); ok != want {
				t.Errorf("LookupRequest(%q, %q) = %v; want %v", "u1", req, ok, want)
			}
		}
		if got := r.f.Stats().DedupKeys; got != 2 {
			t.Errorf("Stats().DedupKeys = %d; want 2", got)
		}
		// Forgotten means a retry buys again.
		if got := r.buy(21, "a", p("u1", "r1", 1))[0]; got.Outcome != C {
			t.Errorf("Purchase(%q) after eviction = %v; want %v", "r1", got.Outcome, C)
		}
	})
	t.Run("many expire at once", func(t *testing.T) {
		r := newFSMRig(t, 0, raftstore.FSMConfig{DedupRetention: 10 * time.Second, DedupMax: 1 << 20})
		r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 1 << 20, PerUserLimit: 1})
		for b := 0; b < 3; b++ {
			ps := make([]raftstore.Purchase, 1000)
			for i := range ps {
				ps[i] = p(fmt.Sprintf("u%d-%d", b, i), "r", 1)
			}
			r.buy(int64(b)*sec, "a", ps...)
		}
		r.apply(&raftstore.MarkFlushed{Stamp: 11 * sec}) // expires batches 0 and 1
		if got := r.f.Stats().DedupKeys; got != 1000 {
			t.Errorf("Stats().DedupKeys = %d; want 1000", got)
		}
		if _, ok := r.f.LookupRequest("a", "u2-999", "r"); !ok {
			t.Errorf("LookupRequest(%q) = false; want true", "u2-999")
		}
		if _, ok := r.f.LookupRequest("a", "u1-0", "r"); ok {
			t.Errorf("LookupRequest(%q) = true; want expired", "u1-0")
		}
	})
}

func TestFSMMarkFlushed(t *testing.T) {
	r := newFSMRig(t, 1, testFSMConfig)
	r.create(*item("a", 100, 100))
	var ids []uint64
	for b := 0; b < 3; b++ {
		for _, pr := range r.buy(int64(10+b), "a", p("u1", "", 1), p("u2", "", 1)) {
			ids = append(ids, pr.Order.ID)
		}
	}
	tests := []struct {
		upTo        uint64
		wantPending []uint64
		wantMark    uint64
	}{
		// The watermark is an outbox Seq: orders ids[i] got Seq i+1.
		{3, ids[3:], 3},
		{3, ids[3:], 3}, // idempotent
		{2, ids[3:], 3}, // never backwards
		{4, ids[4:], 4},
		{0, ids[4:], 4},
		{math.MaxUint64, nil, math.MaxUint64},
		{6, nil, math.MaxUint64},
	}
	for i, tc := range tests {
		if got := r.apply(&raftstore.MarkFlushed{Stamp: 20, UpTo: tc.upTo}); got != nil {
			t.Fatalf("MarkFlushed(%d) = %v; want nil", tc.upTo, got)
		}
		var got []uint64
		for _, o := range r.f.Unflushed(100) {
			got = append(got, o.ID)
		}
		if !reflect.DeepEqual(got, tc.wantPending) {
			t.Errorf("#%d MarkFlushed(%d): Unflushed() = %v; want %v", i, tc.upTo, got, tc.wantPending)
		}
		if got := r.f.FlushedUpTo(); got != tc.wantMark {
			t.Errorf("#%d MarkFlushed(%d): FlushedUpTo() = %d; want %d", i, tc.upTo, got, tc.wantMark)
		}
		if got := r.f.PendingCount(); got != len(tc.wantPending) {
			t.Errorf("#%d MarkFlushed(%d): PendingCount() = %d; want %d", i, tc.upTo, got, len(tc.wantPending))
		}
	}
	if _, ok := r.f.PendingOrder(ids[0]); ok {
		t.Errorf("PendingOrder(%d) found after flush; want not found", ids[0])
	}
	// Flushing keeps stock, limits and dedup: only the order copy goes.
	if got := r.f.Bought("a", "u1"); got != 3 {
		t.Errorf("Bought(%q, %q) = %d; want 3", "a", "u1", got)
	}
}

func TestFSMRestock(t *testing.T) {
	tests := []struct {
		name          string
		id            string
		delta         int64
		want          error
		wantStock     int64
		wantRemaining int64
	}{
		{"add", "a", 5, nil, 15, 12},
		{"remove", "a", -2, nil, 8, 5},
		{"remove all remaining", "a", -7, nil, 3, 0},
		{"remove beyond remaining", "a", -8, sale.ErrInvalidStock, 10, 7},
		{"unknown item", "nope", 5, sale.ErrItemNotFound, 10, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newFSMRig(t, 0, testFSMConfig)
			r.create(*item("a", 10, 3))
			r.buy(5, "a", p("u1", "", 3))
			resp := r.apply(&raftstore.Restock{Stamp: 6, ItemID: tc.id, Delta: tc.delta})
			if tc.want != nil {
				if resp != tc.want {
					t.Errorf("Restock(%q, %d) = %v; want %v", tc.id, tc.delta, resp, tc.want)
				}
			} else if it, ok := resp.(sale.Item); !ok || it.Stock != tc.wantStock || it.Remaining != tc.wantRemaining {
				t.Errorf("Restock(%q, %d) = %+v; want stock %d remaining %d", tc.id, tc.delta, resp, tc.wantStock, tc.wantRemaining)
			}
			it, _ := r.f.Item("a")
			if it.Stock != tc.wantStock || it.Remaining != tc.wantRemaining {
				t.Errorf("after Restock(%q, %d): Item = stock %d remaining %d; want %d, %d", tc.id, tc.delta, it.Stock, it.Remaining, tc.wantStock, tc.wantRemaining)
			}
			if it.Sold() != 3 {
				t.Errorf("after Restock(%q, %d): Sold() = %d; want 3", tc.id, tc.delta, it.Sold())
			}
		})
	}
}

func TestFSMTimeNeverGoesBackwards(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1000, ID: "a", Stock: 10, PerUserLimit: 10, EndsAt: 5000})
	first := r.buy(3000, "a", p("u1", "", 1))[0]
	// A new leader whose clock is behind stamps an earlier time.
	second := r.buy(2000, "a", p("u1", "", 1))[0]
	if want := time.Unix(0, 3000).UTC(); !second.Order.CreatedAt.Equal(want) {
		t.Errorf("order stamped 2000 after 3000: CreatedAt = %v; want %v", second.Order.CreatedAt, want)
	}
	if !second.Order.CreatedAt.Equal(first.Order.CreatedAt) || second.Order.ID <= first.Order.ID {
		t.Errorf("second order = %+v; want the same time as the first and a larger ID", second.Order)
	}
	r.apply(&raftstore.MarkFlushed{Stamp: 5000})
	// Once the sale has ended at command time, an earlier stamp cannot reopen it.
	if got := r.buy(4000, "a", p("u2", "", 1))[0].Outcome; got != N {
		t.Errorf("Purchase stamped 4000 after time reached 5000 = %v; want %v", got, N)
	}
}

func TestFSMApplyMalformedPanics(t *testing.T) {
	for _, data := range [][]byte{nil, {0}, {99, 1, 2}, {2, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%x) did not panic; want a panic (replicas must not drift)", data)
				}
			}()
			raftstore.NewFSM(0, testFSMConfig).Apply(logEntry(1, data))
		}()
	}
}

func TestFSMIgnoresOtherEntryTypes(t *testing.T) {
	f := raftstore.NewFSM(0, testFSMConfig)
	for i, typ := range []raft.LogType{raft.LogNoop, raft.LogBarrier, raft.LogConfiguration} {
		if got := f.Apply(&raft.Log{Index: uint64(i + 1), Type: typ, Data: []byte{0xff}}); got != nil {
			t.Errorf("Apply(%v) = %v; want nil", typ, got)
		}
	}
	if got := f.AppliedIndex(); got != 3 {
		t.Errorf("AppliedIndex() = %d; want 3", got)
	}
}

// memSink is an in-memory raft.SnapshotSink.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func snapshotBytes(t testing.TB, f *raftstore.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot() = %v; want nil", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || sink.cancelled {
		t.Fatalf("Persist() = %v (cancelled %v); want nil", err, sink.cancelled)
	}
	return sink.Bytes()
}

func restored(t testing.TB, shard int, cfg raftstore.FSMConfig, data []byte) *raftstore.FSM {
	t.Helper()
	f := raftstore.NewFSM(shard, cfg)
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore() = %v; want nil", err)
	}
	return f
}

// observed is the state of an FSM as its readers see it.
type observed struct {
	Items       []sale.Item
	Bought      map[string]int32
	Requests    map[string]orders.Order
	Unflushed   []orders.Order
	FlushedUpTo uint64
	Stats       raftstore.Stats
}

func observe(f *raftstore.FSM, items, users, requests []string) observed {
	o := observed{
		Items:       f.Items(),
		Bought:      map[string]int32{},
		Requests:    map[string]orders.Order{},
		Unflushed:   f.Unflushed(math.MaxInt),
		FlushedUpTo: f.FlushedUpTo(),
		Stats:       f.Stats(),
	}
	o.Stats.Applied = 0 // the applied index is Raft's, not the snapshot's
	for _, it := range items {
		for _, u := range users {
			if n := f.Bought(it, u); n != 0 {
				o.Bought[it+"/"+u] = n
			}
		}
	}
	for _, it := range items {
		for _, u := range users {
			for _, r := range requests {
				if ord, ok := f.LookupRequest(it, u, r); ok {
					o.Requests[it+"/"+u+"/"+r] = ord
				}
			}
		}
	}
	return o
}

func diffObserved(a, b observed) string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s: %+v != %+v", va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface()))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func TestFSMSnapshotRestore(t *testing.T) {
	const sec = int64(time.Second)
	cfg := raftstore.FSMConfig{DedupRetention: 100 * time.Second, DedupMax: 5}
	r := newFSMRig(t, 2, cfg)
	r.create(raftstore.CreateItem{Stamp: 1 * sec, ID: "a", Name: "A", Stock: 10, PerUserLimit: 2})
	r.create(raftstore.CreateItem{Stamp: 2 * sec, ID: "b", Name: "B", Stock: 5, PerUserLimit: 1, StartsAt: 3 * sec, EndsAt: 1000 * sec})
	r.create(raftstore.CreateItem{Stamp: 2 * sec, ID: "c", Stock: 1, PerUserLimit: 1})
	r.buy(10*sec, "a", p("u1", "r1", 2), p("u2", "r1", 1), p("u3", "", 1))
	r.buy(20*sec, "b", p("u1", "r2", 1), p("u2", "r2", 1))
	r.buy(30*sec, "c", p("u3", "r3", 1), p("u4", "r4", 1))
	r.apply(&raftstore.SetPaused{Stamp: 31 * sec, ItemID: "c", Paused: true})
	r.apply(&raftstore.Restock{Stamp: 32 * sec, ItemID: "a", Delta: 3})
	first := r.f.Unflushed(1)[0]
	r.apply(&raftstore.MarkFlushed{Stamp: 40 * sec, UpTo: first.ID})
	r.buy(50*sec, "a", p("u4", "r5", 1), p("u5", "r6", 1))

	items := []string{"a", "b", "c", "z"}
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	requests := []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	want := observe(r.f, items, users, requests)
	if len(want.Requests) == 0 || len(want.Unflushed) == 0 || len(want.Bought) == 0 || want.FlushedUpTo == 0 {
		t.Fatalf("test state too thin: %+v", want)
	}

	g := restored(t, 2, cfg, snapshotBytes(t, r.f))
	if d := diffObserved(observe(g, items, users, requests), want); d != "" {
		t.Fatalf("restored state differs:\n%s", d)
	}

	// Both answer the next commands alike, including time-driven expiry
	// (r1 at 110s) and DedupMax eviction order.
	next := []encoder{
		batch(60*sec, "a", p("u1", "r1", 1), p("u6", "r7", 1), p("u6", "r8", 1), p("u2", "r2", 1)),
		batch(61*sec, "b", p("u1", "r2", 1), p("u3", "", 1)),
		&raftstore.MarkFlushed{Stamp: 111 * sec},
		batch(112*sec, "a", p("u1", "r1", 1), p("u2", "r1", 1)),
		batch(113*sec, "c", p("u5", "", 1)),
		&raftstore.Restock{Stamp: 114 * sec, ItemID: "c", Delta: -1},
	}
	gr := &fsmRig{t: t, shard: 2, f: g, index: r.index, now: r.now}
	for i, cmd := range next {
		a, b := r.apply(cmd), gr.apply(cmd)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("next command %d (%T): original = %+v; restored = %+v", i, cmd, a, b)
		}
	}
	requests = append(requests, "r8")
	if d := diffObserved(observe(g, items, users, requests), observe(r.f, items, users, requests)); d != "" {
		t.Errorf("after the same commands, restored state differs:\n%s", d)
	}
}

func TestFSMRestoreRejectsGarbage(t *testing.T) {
	f := raftstore.NewFSM(0, testFSMConfig)
	if err := f.Restore(io.NopCloser(strings.NewReader("not a snapshot"))); err == nil {
		t.Errorf("Restore(garbage) = nil; want an error")
	}
}

// randomLog generates a log that exercises every command and outcome: few
// items, users and request IDs so that limits, conflicts and duplicates are
// common, stamps that sometimes go backwards, watermarks inside the pending
// range. It drives its own FSM to choose watermarks.
func randomLog(t testing.TB, seed uint64, n int, cfg raftstore.FSMConfig) (log [][]byte, items, users, requests []string) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < 6; i++ {
		items = append(items, fmt.Sprintf("i%d", i))
	}
	for i := 0; i < 25; i++ {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	for i := 0; i < 12; i++ {
		requests = append(requests, fmt.Sprintf("r%d", i))
	}
	gen := newFSMRig(t, 0, cfg)
	stamp := int64(1000 * time.Second)
	for len(log) < n {
		stamp += rng.Int64N(int64(20*time.Second)) - int64(5*time.Second)
		id := items[rng.IntN(len(items))]
		var cmd encoder
		switch k := rng.IntN(100); {
		case k < 12:
			c := &raftstore.CreateItem{Stamp: stamp, ID: id, Name: "n" + id, Stock: rng.Int64N(25), PerUserLimit: int32(rng.IntN(5))}
			if rng.IntN(3) == 0 {
				c.StartsAt = stamp + rng.Int64N(int64(60*time.Second)) - int64(30*time.Second)
			}
			if rng.IntN(3) == 0 {
				c.EndsAt = stamp + rng.Int64N(int64(600*time.Second))
			}
			cmd = c
		case k < 75:
			b := &raftstore.PurchaseBatch{Stamp: stamp, ItemID: id}
			if rng.IntN(3) == 0 {
				b.PayWindow = rng.Int64N(int64(60 * time.Second))
			}
			if rng.IntN(20) == 0 {
				b.ItemID = "missing"
			}
			for j := rng.IntN(24); j >= 0; j-- {
				pu := raftstore.Purchase{UserID: users[rng.IntN(len(users))], Quantity: int32(rng.IntN(7)) - 1}
				if rng.IntN(4) != 0 {
					pu.RequestID = requests[rng.IntN(len(requests))]
				}
				b.Purchases = append(b.Purchases, pu)
			}
			cmd = b
			if rng.IntN(3) == 0 { // a multi-item entry: this group and a few more
				e := &raftstore.PurchaseEntry{Stamp: b.Stamp, PayWindow: b.PayWindow,
					Groups: []raftstore.PurchaseGroup{{ItemID: b.ItemID, Purchases: b.Purchases}}}
				for g := rng.IntN(4); g > 0; g-- {
					other := raftstore.PurchaseGroup{ItemID: items[rng.IntN(len(items))]}
					for j := rng.IntN(8); j >= 0; j-- {
						other.Purchases = append(other.Purchases, raftstore.Purchase{UserID: users[rng.IntN(len(users))],
							RequestID: requests[rng.IntN(len(requests))], Quantity: int32(rng.IntN(3))})
					}
					e.Groups = append(e.Groups, other)
				}
				cmd = e
			}
		case k < 85:
			var upTo uint64
			if pend := gen.f.Unflushed(math.MaxInt); len(pend) > 0 {
				upTo = pend[rng.IntN(len(pend))].Seq
			}
			cmd = &raftstore.MarkFlushed{Stamp: stamp, UpTo: upTo}
		case k < 89:
			cmd = &raftstore.Restock{Stamp: stamp, ItemID: id, Delta: rng.Int64N(21) - 10}
		case k < 92:
			// Pay a recent order (sometimes as the wrong user), or none.
			pay := &raftstore.Pay{Stamp: stamp, UserID: users[rng.IntN(len(users))]}
			if pend := gen.f.Unflushed(math.MaxInt); len(pend) > 0 {
				o := pend[rng.IntN(len(pend))]
				pay.OrderID = o.ID
				if rng.IntN(4) != 0 {
					pay.UserID = o.UserID
				}
			}
			cmd = pay
		case k < 94:
			// Cancel a waiting order, or one made up.
			c := &raftstore.Cancel{Stamp: stamp, OrderID: rng.Uint64()}
			if pend := gen.f.Unflushed(math.MaxInt); len(pend) > 0 && rng.IntN(5) != 0 {
				c.OrderID = pend[rng.IntN(len(pend))].ID
			}
			cmd = c
		case k < 97:
			cmd = &raftstore.Expire{Stamp: stamp}
		case k < 98:
			// Only the first item's sale ends: the others stay open.
			cmd = &raftstore.EndSale{Stamp: stamp, ItemID: items[0]}
			if rng.IntN(2) == 0 { // half the logs switch their outbox early on
				cmd = &raftstore.OutboxAppend{Stamp: stamp}
			}
		default:
			cmd = &raftstore.SetPaused{Stamp: stamp, ItemID: id, Paused: rng.IntN(2) == 0}
		}
		gen.apply(cmd)
		log = append(log, must(cmd.Encode(nil)))
	}
	return log, items, append(users, "nobody"), requests
}

func TestFSMDeterminism(t *testing.T) {
	cfg := raftstore.FSMConfig{DedupRetention: 90 * time.Second, DedupMax: 40}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			log, items, users, requests := randomLog(t, seed, 3000, cfg)
			a, b := raftstore.NewFSM(4, cfg), raftstore.NewFSM(4, cfg)
			outcomes := map[sale.Outcome]int{}
			for i, data := range log {
				ra, rb := a.Apply(logEntry(uint64(i+1), data)), b.Apply(logEntry(uint64(i+1), data))
				if !reflect.DeepEqual(ra, rb) {
					t.Fatalf("entry %d: replica A = %+v; replica B = %+v", i+1, ra, rb)
				}
				if res, ok := ra.([]raftstore.PurchaseResult); ok {
					for _, pr := range res {
						outcomes[pr.Outcome]++
					}
				}
				if groups, ok := ra.([][]raftstore.PurchaseResult); ok {
					outcomes[0]++ // counts multi-item entries
					for _, res := range groups {
						for _, pr := range res {
							outcomes[pr.Outcome]++
						}
					}
				}
			}
			for o := C; o <= INV; o++ {
				if outcomes[o] == 0 {
					t.Errorf("the random log produced no %v outcome; want every outcome exercised", o.Err())
				}
			}
			if outcomes[0] == 0 {
				t.Errorf("the random log has no multi-item purchase entry")
			}
			wa := observe(a, items, users, requests)
			if d := diffObserved(wa, observe(b, items, users, requests)); d != "" {
				t.Fatalf("replicas differ:\n%s", d)
			}
			sa := restored(t, 4, cfg, snapshotBytes(t, a))
			sb := restored(t, 4, cfg, snapshotBytes(t, b))
			if d := diffObserved(observe(sa, items, users, requests), wa); d != "" {
				t.Errorf("snapshot of A restores differently:\n%s", d)
			}
			if d := diffObserved(observe(sb, items, users, requests), wa); d != "" {
				t.Errorf("snapshot of B restores differently:\n%s", d)
			}
			// A replica restored from a snapshot keeps agreeing.
			more, _, _, _ := randomLog(t, seed+100, 300, cfg)
			base := uint64(len(log))
			for i, data := range more {
				ra, rs := a.Apply(logEntry(base+uint64(i+1), data)), sa.Apply(logEntry(base+uint64(i+1), data))
				if !reflect.DeepEqual(ra, rs) {
					t.Fatalf("entry %d after restore: replica = %+v; restored = %+v", base+uint64(i+1), ra, rs)
				}
			}
		})
	}
}

func TestFSMResponsesAreSentinels(t *testing.T) {
	// Business outcomes are returned, never wrapped: callers compare with
	// errors.Is, and an Apply response of a sentinel must match.
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(*item("a", 1, 1))
	resp := r.apply(item("a", 1, 1))
	if err, ok := resp.(error); !ok || !errors.Is(err, sale.ErrItemExists) {
		t.Errorf("CreateItem twice = %v; want errors.Is sale.ErrItemExists", resp)
	}
}

// TestFSMDump: replicas that applied the same log dump the same bytes,
// whatever order their maps iterate in (a restored replica rebuilt them),
// and one more entry on one of them makes the dumps differ.
func TestFSMDump(t *testing.T) {
	cfg := raftstore.FSMConfig{DedupRetention: 24 * time.Hour, DedupMax: 1000, OrderRetention: time.Hour, OrderRetentionMax: 50}
	log, _, _, _ := randomLog(t, 11, 2000, cfg)
	a, b := raftstore.NewFSM(1, cfg), raftstore.NewFSM(1, cfg)
	for i, data := range log {
		a.Apply(logEntry(uint64(i+1), data))
		b.Apply(logEntry(uint64(i+1), data))
	}
	if st := a.Stats(); st.Items < 2 || st.BuyerRows < 2 || st.DedupKeys == 0 || st.Pending+st.Awaiting == 0 {
		t.Fatalf("test state too thin: %+v", st)
	}
	dump := func(name string, f *raftstore.FSM) []byte {
		t.Helper()
		d, err := f.Dump()
		if err != nil {
			t.Fatalf("%s.Dump() = %v", name, err)
		}
		return d
	}
	want := dump("a", a)
	for i := 0; i < 5; i++ { // map order changes from one iteration to the next
		if got := dump("a", a); !bytes.Equal(got, want) {
			t.Fatalf("a.Dump() call %d differs from the first; want the same bytes", i+2)
		}
	}
	if got := dump("b", b); !bytes.Equal(got, want) {
		t.Errorf("b.Dump() differs from a.Dump() after the same log; want the same bytes")
	}
	r := restored(t, 1, cfg, snapshotBytes(t, a))
	if got := dump("restored", r); !bytes.Equal(got, want) {
		t.Errorf("Dump() of a replica restored from a's snapshot differs from a's; want the same bytes")
	}
	next := uint64(len(log) + 1)
	b.Apply(logEntry(next, must((&raftstore.Restock{Stamp: 1, ItemID: "i0", Delta: 1}).Encode(nil))))
	c := restored(t, 1, cfg, snapshotBytes(t, a))
	c.Apply(logEntry(next, must((&raftstore.Restock{Stamp: 1, ItemID: "i1", Delta: 1}).Encode(nil))))
	for name, f := range map[string]*raftstore.FSM{"b restocked i0": b, "c restocked i1": c} {
		if got := dump(name, f); bytes.Equal(got, want) {
			t.Errorf("%s: Dump() equals the state before; want different bytes", name)
		}
	}
	if bytes.Equal(dump("b", b), dump("c", c)) {
		t.Errorf("b and c restocked different items and dump the same bytes; want different")
	}
}
