package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// verify gathers the evidence after the load and judges it. ctx bounds it;
// half of its time at most goes to waiting for the item counters to catch
// up with what the load saw, reading them at least five times meanwhile.
func (e *engine) verify(ctx context.Context, before map[string]ItemState) Verdict {
	h := e.rec.history()
	ev := Evidence{History: h, Items: e.items, Before: before}
	var extra []string // problems found outside Check

	settleCtx, poll := ctx, verifyPoll
	if dl, ok := ctx.Deadline(); ok {
		budget := time.Until(dl) / 2
		poll = min(poll, budget/5)
		var cancel context.CancelFunc
		settleCtx, cancel = context.WithTimeout(ctx, budget)
		defer cancel()
	}
	// Keep the latest successful read of each item, so that a read cut
	// short by the deadline does not lose an earlier one.
	ev.After = make(map[string]ItemState, len(e.items))
	var readErrs []error
	for {
		var got map[string]ItemState
		got, readErrs = e.readItems(settleCtx)
		for id, it := range got {
			ev.After[id] = it
		}
		if !lagging(ev) || !sleepCtx(settleCtx, poll) {
			break
		}
	}
	var notes []string
	if len(readErrs) > 0 {
		notes = append(notes, "reading items: "+strings.ReplaceAll(firstErrors(readErrs).Error(), "\n", "; "))
	}

	ev.Lookups = e.lookupOrders(ctx, h.Confirmed)

	if e.deps.OrderStore != nil {
		st, err := e.readStore(ctx, ev)
		if err != nil {
			extra = append(extra, fmt.Sprintf("order store: %v", err))
		}
		ev.Store = st
	}

	v := Check(ev)
	v.Notes = append(v.Notes, notes...)
	if len(extra) > 0 {
		v.Problems = append(v.Problems, extra...)
		v.Pass = false
	}
	e.log.Info("loadgen: verified", "pass", v.Pass, "problems", len(v.Problems))
	return v
}

// lagging reports whether the server's item counters may still be catching
// up: an item unread, fewer units sold than were confirmed, or remaining out
// of step with sold.
func lagging(ev Evidence) bool {
	for _, id := range ev.Items {
		after, ok := ev.After[id]
		if !ok {
			return true
		}
		if after.Sold-ev.Before[id].Sold < ev.History.ConfirmedQty[id] || after.Remaining != after.Stock-after.Sold {
			return true
		}
	}
	return false
}

// lookupOrders reads back up to VerifyOrders confirmed orders, chosen at
// random (selection sampling: each order equally likely, one pass).
func (e *engine) lookupOrders(ctx context.Context, confirmed []ConfirmedOrder) []OrderLookup {
	want := min(e.cfg.VerifyOrders, len(confirmed))
	sample := make([]ConfirmedOrder, 0, want)
	for i, c := range confirmed {
		if want == len(sample) {
			break
		}
		if float64(len(confirmed)-i)*e.rnd() < float64(want-len(sample)) {
			sample = append(sample, c)
		}
	}
	out := make([]OrderLookup, len(sample))
	forEach(ctx, len(sample), setupParallel, func(ctx context.Context, i int) error {
		c := sample[i]
		l := OrderLookup{OrderID: c.Got.OrderID}
		err := e.retrying(ctx, func() error {
			o, err := e.c.order(ctx, c.Got.OrderID, c.UserID)
			l.Got = o
			return err
		})
		var se *httpStatusError
		switch {
		case err == nil:
			l.Found = true
		case errors.As(err, &se) && se.status == http.StatusNotFound:
			l.NotFound = true
		default:
			l.Err = err.Error()
		}
		out[i] = l
		return nil
	})
	for i := range out {
		if out[i].OrderID == "" { // not reached before ctx ended
			out[i] = OrderLookup{OrderID: sample[i].Got.OrderID, Err: "verification timed out"}
		}
	}
	return out
}

// readStore reads the order store, polling until it holds every confirmed
// order and as many units per item as the server sold, or ctx ends (the
// flusher may lag behind the confirmations).
func (e *engine) readStore(ctx context.Context, ev Evidence) (*StoreEvidence, error) {
	ids := make([]string, 0, len(ev.History.Confirmed))
	for _, c := range ev.History.Confirmed {
		ids = append(ids, c.Got.OrderID)
	}
	var last *StoreEvidence
	for {
		orders, err := e.deps.OrderStore.Orders(ctx, ids)
		if err == nil {
			var units map[string]int64
			units, err = e.deps.OrderStore.SoldUnits(ctx, ev.Items)
			if err == nil {
				last = &StoreEvidence{Orders: orders, SoldUnits: units}
				if storeCaughtUp(last, ids, ev) {
					return last, nil
				}
			}
		}
		if !sleepCtx(ctx, verifyPoll) {
			if last == nil {
				return nil, err
			}
			return last, nil
		}
	}
}

// storeCaughtUp reports whether the store holds every order and unit.
func storeCaughtUp(st *StoreEvidence, ids []string, ev Evidence) bool {
	for _, id := range ids {
		if len(st.Orders[id]) == 0 {
			return false
		}
	}
	for _, id := range ev.Items {
		if st.SoldUnits[id] < ev.After[id].Sold {
			return false
		}
	}
	return true
}
