package loadgen

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/flashstock/flashstock/client"
)

// verify gathers the evidence after the load and judges it with
// client.Check. ctx bounds it; half of its time at most goes to waiting for
// the item counters to catch up with what the load saw, reading them at
// least five times meanwhile.
func (e *engine) verify(ctx context.Context, before map[string]client.ItemState) client.Verdict {
	h := e.rec.history()
	ev := client.Evidence{History: h, Items: e.items, Before: before}

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
	after := make(map[string]client.ItemState, len(e.items))
	var readErrs []error
	for {
		var got map[string]client.ItemState
		got, readErrs = e.readItems(settleCtx)
		for id, it := range got {
			after[id] = it
		}
		if !lagging(e.items, before, after, h) || !sleepCtx(settleCtx, poll) {
			break
		}
	}
	ev.After = []client.ItemReads{{Items: after}}
	var notes []string
	if len(readErrs) > 0 {
		notes = append(notes, "reading items: "+strings.ReplaceAll(firstErrors(readErrs).Error(), "\n", "; "))
	}

	ev.Lookups = e.lookupOrders(ctx, h.Confirmed)

	if e.deps.OrderStore != nil {
		ev.Store = e.readStore(ctx, h.Confirmed, after)
	}

	v := client.Check(ev)
	v.Notes = append(v.Notes, notes...)
	e.log.Info("loadgen: verified", "pass", v.Pass, "problems", len(v.Problems))
	return v
}

// lagging reports whether the server's item counters may still be catching
// up: an item unread, fewer units sold than were confirmed, or remaining out
// of step with sold.
func lagging(items []string, before, after map[string]client.ItemState, h client.History) bool {
	for _, id := range items {
		a, ok := after[id]
		if !ok {
			return true
		}
		if a.Sold-before[id].Sold < h.ConfirmedQty[id] || a.Remaining != a.Stock-a.Sold {
			return true
		}
	}
	return false
}

// lookupOrders reads back up to VerifyOrders confirmed orders, chosen at
// random (selection sampling: each order equally likely, one pass).
func (e *engine) lookupOrders(ctx context.Context, confirmed []client.ConfirmedOrder) []client.OrderLookup {
	want := min(e.cfg.VerifyOrders, len(confirmed))
	sample := make([]client.ConfirmedOrder, 0, want)
	for i, c := range confirmed {
		if want == len(sample) {
			break
		}
		if float64(len(confirmed)-i)*e.rnd() < float64(want-len(sample)) {
			sample = append(sample, c)
		}
	}
	out := make([]client.OrderLookup, len(sample))
	forEach(ctx, len(sample), setupParallel, func(ctx context.Context, i int) error {
		c := sample[i]
		l := client.OrderLookup{OrderID: c.Got.OrderID}
		err := e.retrying(ctx, func() error {
			o, err := e.c.Order(ctx, c.Got.OrderID, c.UserID)
			l.Got = o
			return err
		})
		var se *client.StatusError
		switch {
		case err == nil:
			l.Found = true
		case errors.As(err, &se) && se.Status == http.StatusNotFound:
			l.NotFound = true
		default:
			l.Err = err.Error()
		}
		out[i] = l
		return nil
	})
	for i := range out {
		if out[i].OrderID == "" { // not reached before ctx ended
			out[i] = client.OrderLookup{OrderID: sample[i].Got.OrderID, Err: "verification timed out"}
		}
	}
	return out
}

// readStore reads the order store until it holds every confirmed order and
// as many units per item as the server sold, or ctx ends.
func (e *engine) readStore(ctx context.Context, confirmed []client.ConfirmedOrder, after map[string]client.ItemState) *client.StoreEvidence {
	ids := make([]string, 0, len(confirmed))
	for _, c := range confirmed {
		ids = append(ids, c.Got.OrderID)
	}
	sold := make(map[string]int64, len(e.items))
	for _, id := range e.items {
		sold[id] = after[id].Sold
	}
	return client.ReadStore(ctx, e.deps.OrderStore, ids, sold, verifyPoll)
}
