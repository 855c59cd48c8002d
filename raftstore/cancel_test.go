package raftstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

func (r *fsmRig) cancel(stamp int64, id uint64) (orders.Order, error) {
	switch v := r.apply(&raftstore.Cancel{Stamp: stamp, OrderID: id}).(type) {
	case orders.Order:
		return v, nil
	case error:
		return orders.Order{}, v
	default:
		r.t.Fatalf("Cancel(%d) = %#v; want an order or an error", id, v)
		return orders.Order{}, nil
	}
}

// An order is cancelled in every place the shard holds it: waiting in the
// outbox, flushed and recent, awaiting payment. Each time its unit goes
// back to the sale and to the buyer's allowance, exactly once.
func TestFSMCancelReturnsUnitOnce(t *testing.T) {
	cfg := testFSMConfig
	cfg.OrderRetention, cfg.OrderRetentionMax = time.Hour, 1000
	r := newFSMRig(t, 0, cfg)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 3, PerUserLimit: 1})
	pending := r.buy(10*sec, "a", p("u1", "r1", 1))[0].Order
	flushed := r.buy(11*sec, "a", p("u2", "", 1))[0].Order
	r.apply(&raftstore.MarkFlushed{Stamp: 12 * sec, UpTo: 2}) // both stored
	unflushed := r.buy(13*sec, "a", p("u3", "", 1))[0].Order
	if rem, _ := r.f.Remaining("a"); rem != 0 {
		t.Fatalf("Remaining = %d; want 0", rem)
	}
	_ = pending

	for i, o := range []orders.Order{flushed, unflushed} {
		got, err := r.cancel(int64(20+i)*sec, o.ID)
		if err != nil || got.Status != orders.StatusCancelled || got.ID != o.ID {
			t.Fatalf("Cancel(%d) = %+v, %v; want it cancelled", o.ID, got, err)
		}
		if rem, _ := r.f.Remaining("a"); rem != int64(i+1) {
			t.Errorf("Remaining after cancel %d = %d; want %d", i+1, rem, i+1)
		}
		if b := r.f.Bought("a", o.UserID); b != 0 {
			t.Errorf("Bought(%s) after cancel = %d; want 0", o.UserID, b)
		}
		// Again: the same answer, nothing returned twice.
		again, err := r.cancel(int64(30+i)*sec, o.ID)
		if err != nil || again.Status != orders.StatusCancelled {
			t.Errorf("Cancel again = %+v, %v; want the cancelled order", again, err)
		}
		if rem, _ := r.f.Remaining("a"); rem != int64(i+1) {
			t.Errorf("Remaining after a second cancel = %d; want %d (returned once)", rem, i+1)
		}
		if st, ok := r.f.OrderState(o.ID); !ok || st.Status != orders.StatusCancelled {
			t.Errorf("OrderState = %+v, %v; want cancelled", st, ok)
		}
	}
	// The store learns both: a change of the stored order (it lowers the
	// units the store is missing) and the unflushed order's entry, now
	// cancelled (it adds none).
	if got := r.f.PendingUnits()["a"]; got != -1 {
		t.Errorf("PendingUnits = %d; want -1", got)
	}
	statuses := map[uint64]orders.Status{}
	for _, o := range r.f.Unflushed(10) {
		statuses[o.ID] = o.Status
	}
	if statuses[flushed.ID] != orders.StatusCancelled || statuses[unflushed.ID] != orders.StatusCancelled {
		t.Errorf("outbox statuses = %v; want both cancelled", statuses)
	}
	// The returned units sell again, to the cancelled buyer too.
	if got := r.buy(40*sec, "a", p("u2", "", 1))[0].Outcome; got != C {
		t.Errorf("u2 buying again after the cancel = %v; want confirmed", got)
	}
	// An order that was not cancelled keeps its request ID's answer.
	if o, ok := r.f.LookupRequest("a", "u1", "r1"); !ok || o.Status != orders.StatusConfirmed {
		t.Errorf("LookupRequest(r1) = %+v, %v; want the uncancelled order", o, ok)
	}
}

func TestFSMCancelWithPaymentWindow(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 3, PerUserLimit: 1})
	paid := r.buyWithWindow(10*sec, "a", time.Minute, p("u1", "", 1))[0].Order
	unpaid := r.buyWithWindow(10*sec, "a", time.Minute, p("u2", "", 1))[0].Order
	late := r.buyWithWindow(10*sec, "a", time.Minute, p("u3", "", 1))[0].Order
	if _, err := r.pay(20*sec, paid.ID, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cancel(21*sec, paid.ID); !errors.Is(err, sale.ErrOrderPaid) {
		t.Errorf("Cancel(paid) = %v; want %v", err, sale.ErrOrderPaid)
	}
	o, err := r.cancel(22*sec, unpaid.ID)
	if err != nil || o.Status != orders.StatusCancelled {
		t.Fatalf("Cancel(unpaid) = %+v, %v; want cancelled", o, err)
	}
	if _, err := r.pay(23*sec, unpaid.ID, "u2"); !errors.Is(err, sale.ErrOrderCancelled) {
		t.Errorf("Pay(cancelled) = %v; want %v", err, sale.ErrOrderCancelled)
	}
	// Past its deadline, before any Expire: the cancel expires it.
	if _, err := r.cancel(80*sec, late.ID); !errors.Is(err, sale.ErrOrderExpired) {
		t.Errorf("Cancel past the deadline = %v; want %v", err, sale.ErrOrderExpired)
	}
	if n := r.apply(&raftstore.Expire{Stamp: 90 * sec}); n != 0 {
		t.Errorf("Expire after cancel = %v; want 0 (nothing left awaiting)", n)
	}
	if rem, _ := r.f.Remaining("a"); rem != 2 {
		t.Errorf("Remaining = %d; want 2 (the cancelled and the expired unit back, the paid one sold)", rem)
	}
}

func TestFSMCancelUnknownOrOldOrder(t *testing.T) {
	cfg := testFSMConfig
	cfg.OrderRetention, cfg.OrderRetentionMax = time.Second, 1000
	cfg.DedupRetention = time.Second
	r := newFSMRig(t, 0, cfg)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 3, PerUserLimit: 1})
	o := r.buy(10*sec, "a", p("u1", "", 1))[0].Order
	r.apply(&raftstore.MarkFlushed{Stamp: 11 * sec, UpTo: 1})
	r.buy(100*sec, "a", p("u2", "", 1)) // time passes: o is out of retention
	if _, err := r.cancel(101*sec, o.ID); !errors.Is(err, sale.ErrOrderNotCancellable) {
		t.Errorf("Cancel(order past retention) = %v; want %v", err, sale.ErrOrderNotCancellable)
	}
	if rem, _ := r.f.Remaining("a"); rem != 1 {
		t.Errorf("Remaining = %d; want 1: a refused cancel returns nothing", rem)
	}
}

func TestFSMEndSale(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "open", Stock: 3, PerUserLimit: 1})
	r.create(raftstore.CreateItem{Stamp: 1, ID: "later", Stock: 3, PerUserLimit: 1, StartsAt: 100 * sec, EndsAt: 200 * sec})
	r.create(raftstore.CreateItem{Stamp: 1, ID: "ended", Stock: 3, PerUserLimit: 1, EndsAt: 5 * sec})
	if got := r.buy(10*sec, "open", p("u1", "", 1))[0].Outcome; got != C {
		t.Fatalf("buy before the end = %v", got)
	}
	for _, tc := range []struct {
		id      string
		endsAt  int64
		startAt int64
	}{{"open", 20 * sec, 0}, {"later", 100 * sec, 100 * sec}, {"ended", 5 * sec, 0}} {
		v := r.apply(&raftstore.EndSale{Stamp: 20 * sec, ItemID: tc.id})
		it, ok := v.(sale.Item)
		if !ok || it.EndsAt != tc.endsAt || it.StartsAt != tc.startAt {
			t.Errorf("EndSale(%s) = %#v; want EndsAt %d, StartsAt %d", tc.id, v, tc.endsAt, tc.startAt)
		}
	}
	for _, id := range []string{"open", "later"} {
		for _, at := range []int64{21 * sec, 150 * sec} {
			if got := r.buy(at, id, p("u2", "", 1))[0].Outcome; got != sale.OutcomeNotOnSale {
				t.Errorf("buy %s at %ds after the end = %v; want not on sale", id, at/sec, got)
			}
		}
	}
	if v := r.apply(&raftstore.EndSale{Stamp: 30 * sec, ItemID: "nope"}); v != sale.ErrItemNotFound {
		t.Errorf("EndSale(unknown) = %v; want %v", v, sale.ErrItemNotFound)
	}
}
