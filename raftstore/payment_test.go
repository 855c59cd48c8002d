package raftstore_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// buyWithWindow confirms one purchase with a payment window.
func (r *fsmRig) buyWithWindow(stamp int64, item string, window time.Duration, ps ...raftstore.Purchase) []raftstore.PurchaseResult {
	r.t.Helper()
	resp := r.apply(&raftstore.PurchaseBatch{Stamp: stamp, ItemID: item, Purchases: ps, PayWindow: int64(window)})
	res, ok := resp.([]raftstore.PurchaseResult)
	if !ok || len(res) != len(ps) {
		r.t.Fatalf("PurchaseBatch(%q) = %#v; want %d results", item, resp, len(ps))
	}
	return res
}

func (r *fsmRig) pay(stamp int64, id uint64, user string) (orders.Order, error) {
	switch v := r.apply(&raftstore.Pay{Stamp: stamp, OrderID: id, UserID: user}).(type) {
	case orders.Order:
		return v, nil
	case error:
		return orders.Order{}, v
	default:
		r.t.Fatalf("Pay(%d) = %#v; want an order or an error", id, v)
		return orders.Order{}, nil
	}
}

const sec = int64(time.Second)

func TestFSMPayWithinWindow(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 5, PerUserLimit: 2})
	res := r.buyWithWindow(10*sec, "a", time.Minute, p("u1", "r1", 2))[0]
	if res.Outcome != C || res.Order.PayBy.UnixNano() != 70*sec {
		t.Fatalf("Purchase = %v, PayBy %v; want confirmed with PayBy at 70s", res.Outcome, res.Order.PayBy)
	}
	if _, err := r.pay(20*sec, res.Order.ID, "intruder"); !errors.Is(err, sale.ErrOrderNotFound) {
		t.Errorf("Pay by another user = %v; want %v", err, sale.ErrOrderNotFound)
	}
	paid, err := r.pay(30*sec, res.Order.ID, "u1")
	if err != nil || paid.Status != orders.StatusPaid {
		t.Fatalf("Pay = %+v, %v; want paid", paid, err)
	}
	again, err := r.pay(200*sec, res.Order.ID, "u1") // long after the deadline: already paid
	if err != nil || again.Status != orders.StatusPaid {
		t.Errorf("Pay again = %+v, %v; want paid (idempotent)", again, err)
	}
	if n := r.apply(&raftstore.Expire{Stamp: 300 * sec}); n != 0 {
		t.Errorf("Expire after payment = %v orders; want 0", n)
	}
	if rem, _ := r.f.Remaining("a"); rem != 3 {
		t.Errorf("Remaining = %d; want 3 (paid stock stays sold)", rem)
	}
	if got, ok := r.f.OrderState(res.Order.ID); !ok || got.Status != orders.StatusPaid {
		t.Errorf("OrderState = %+v, %v; want paid", got, ok)
	}
	// One outbox entry, updated in place: the store gets the final status.
	if u := r.f.Unflushed(10); len(u) != 1 || u[0].Status != orders.StatusPaid {
		t.Errorf("Unflushed = %+v; want the one order, paid", u)
	}
	if o, ok := r.f.LookupRequest("a", "u1", "r1"); !ok || o.Status != orders.StatusPaid {
		t.Errorf("LookupRequest = %+v, %v; want the order, paid", o, ok)
	}
}

func TestFSMExpiryReturnsStock(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 2, PerUserLimit: 1})
	a := r.buyWithWindow(10*sec, "a", 30*time.Second, p("u1", "", 1))[0]
	b := r.buyWithWindow(20*sec, "a", 30*time.Second, p("u2", "", 1))[0]
	if got := r.buy(21*sec, "a", p("u3", "", 1))[0].Outcome; got != S {
		t.Fatalf("third buyer = %v; want sold out", got)
	}
	// The flush of both orders happens before expiry.
	r.apply(&raftstore.MarkFlushed{Stamp: 22 * sec, UpTo: 2})
	if n := r.apply(&raftstore.Expire{Stamp: 39 * sec}); n != 0 {
		t.Fatalf("Expire before any deadline = %v; want 0", n)
	}
	if n := r.apply(&raftstore.Expire{Stamp: 40 * sec}); n != 1 {
		t.Fatalf("Expire at the first deadline = %v; want 1", n)
	}
	if rem, _ := r.f.Remaining("a"); rem != 1 {
		t.Errorf("Remaining after expiry = %d; want 1", rem)
	}
	if got := r.f.Bought("a", "u1"); got != 0 {
		t.Errorf("Bought(u1) after expiry = %d; want 0: the allowance returns too", got)
	}
	if _, err := r.pay(41*sec, a.Order.ID, "u1"); !errors.Is(err, sale.ErrOrderExpired) {
		t.Errorf("Pay after expiry = %v; want %v", err, sale.ErrOrderExpired)
	}
	// The stock went back on sale: the sold-out shopper gets it.
	if got := r.buy(42*sec, "a", p("u3", "", 1))[0].Outcome; got != C {
		t.Errorf("buyer after expiry = %v; want confirmed", got)
	}
	// The expired order was already stored: its change is a new outbox
	// entry, and it lowers the units the store is missing.
	var expired []orders.Order
	for _, o := range r.f.Unflushed(10) {
		if o.ID == a.Order.ID {
			expired = append(expired, o)
		}
	}
	if len(expired) != 1 || expired[0].Status != orders.StatusExpired {
		t.Errorf("outbox entries of the expired order = %+v; want one, expired", expired)
	}
	if got := r.f.PendingUnits()["a"]; got != 0 { // +1 new order (u3), -1 expiry of a stored order
		t.Errorf("PendingUnits = %d; want 0", got)
	}
	// Paying after the deadline but before any Expire command expires.
	if _, err := r.pay(50*sec, b.Order.ID, "u2"); !errors.Is(err, sale.ErrOrderExpired) {
		t.Errorf("Pay past the deadline = %v; want %v", err, sale.ErrOrderExpired)
	}
	if rem, _ := r.f.Remaining("a"); rem != 1 {
		t.Errorf("Remaining = %d; want 1", rem)
	}
}

func TestFSMPaymentSurvivesSnapshot(t *testing.T) {
	r := newFSMRig(t, 0, testFSMConfig)
	r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 3, PerUserLimit: 1})
	x := r.buyWithWindow(10*sec, "a", 10*time.Second, p("u1", "", 1))[0]
	y := r.buyWithWindow(11*sec, "a", 10*time.Second, p("u2", "", 1))[0]
	if _, err := r.pay(12*sec, y.Order.ID, "u2"); err != nil {
		t.Fatal(err)
	}
	g := restored(t, 0, testFSMConfig, snapshotBytes(t, r.f))
	for _, f := range []*raftstore.FSM{r.f, g} {
		f.Apply(logEntry(100, must((&raftstore.Expire{Stamp: 30 * sec}).Encode(nil))))
	}
	for name, f := range map[string]*raftstore.FSM{"original": r.f, "restored": g} {
		if rem, _ := f.Remaining("a"); rem != 2 {
			t.Errorf("%s: Remaining = %d; want 2 (x expired, y paid)", name, rem)
		}
		if o, ok := f.OrderState(x.Order.ID); !ok || o.Status != orders.StatusExpired {
			t.Errorf("%s: x = %+v, %v; want expired", name, o, ok)
		}
		if o, ok := f.OrderState(y.Order.ID); !ok || o.Status != orders.StatusPaid {
			t.Errorf("%s: y = %+v, %v; want paid", name, o, ok)
		}
	}
	if !reflect.DeepEqual(r.f.Unflushed(10), g.Unflushed(10)) {
		t.Errorf("outboxes differ after restore:\n%+v\n%+v", r.f.Unflushed(10), g.Unflushed(10))
	}
}

// TestFSMChangeDuringFlushReachesStore: the flusher reads an order, the
// buyer pays it, then the flusher marks what it read as flushed. The
// payment must still reach the store. Before CmdOutboxAppend the payment
// only updated the waiting entry, and marking that entry flushed dropped it:
// the store kept the order as confirmed.
func TestFSMChangeDuringFlushReachesStore(t *testing.T) {
	for _, appendChanges := range []bool{false, true} {
		r := newFSMRig(t, 0, testFSMConfig)
		if appendChanges {
			r.apply(&raftstore.OutboxAppend{Stamp: 1})
		}
		r.create(raftstore.CreateItem{Stamp: 1, ID: "a", Stock: 5, PerUserLimit: 2})
		o := r.buyWithWindow(10*sec, "a", time.Minute, p("u1", "r1", 1))[0].Order
		read := r.f.Unflushed(10) // the flusher writes this batch...
		if len(read) != 1 || read[0].Status != orders.StatusConfirmed {
			t.Fatalf("Unflushed = %+v; want the confirmed order", read)
		}
		if _, err := r.pay(20*sec, o.ID, "u1"); err != nil { // ...while the buyer pays
			t.Fatal(err)
		}
		r.apply(&raftstore.MarkFlushed{Stamp: 21 * sec, UpTo: read[len(read)-1].Seq})
		left := r.f.Unflushed(10)
		paidLeft := len(left) == 1 && left[0].ID == o.ID && left[0].Status == orders.StatusPaid
		if appendChanges && !paidLeft {
			t.Errorf("with OutboxAppend: Unflushed after the flush = %+v; want the payment still waiting", left)
		}
		if !appendChanges && len(left) != 0 {
			// Every replica must keep the earlier versions' behaviour
			// until the log switches, or replicas of two versions would
			// number the outbox differently mid-upgrade.
			t.Errorf("without OutboxAppend: Unflushed = %+v; want the earlier versions' behaviour (the change lost)", left)
		}
		if appendChanges {
			// The superseded entry is not read twice, and a snapshot
			// keeps the mode and the entries.
			if got := r.f.PendingByUser("u1"); len(got) != 1 || got[0].Status != orders.StatusPaid {
				t.Errorf("PendingByUser = %+v; want the one order, paid", got)
			}
			back := restored(t, 0, testFSMConfig, snapshotBytes(t, r.f))
			if !back.AppendsChanges() {
				t.Error("restored FSM lost the outbox mode")
			}
			if u := back.Unflushed(10); len(u) != 1 || u[0].Status != orders.StatusPaid {
				t.Errorf("restored Unflushed = %+v; want the payment", u)
			}
		}
	}
}
