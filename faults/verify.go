package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/client/storecheck"
	"github.com/flashstock/flashstock/internal/backoff"
	"github.com/flashstock/flashstock/internal/clock"
	"github.com/flashstock/flashstock/orders"
)

// Bounds on the checks after the sale.
const (
	settleTimeout  = 90 * time.Second  // all unknown outcomes settled
	viewsTimeout   = 20 * time.Second  // every node agrees on the items
	lookupTimeout  = 180 * time.Second // every confirmed order looked up on every node
	flushTimeout   = 60 * time.Second  // the order store caught up with Raft
	verifyWorkers  = 32
	lookupAttempts = 5
	// finalMargin is waited past the last confirmation's payment deadline
	// before the final reads: the leader's expiry tick (1 s) and the
	// replication of its Expire command.
	finalMargin = 3 * time.Second
	// finalTimeout bounds the final reads: an order still confirmed past
	// its deadline is read again until then.
	finalTimeout = 60 * time.Second
	// lookupUnansweredMax lookups left without a definite answer by one
	// node stop the lookups on that node.
	lookupUnansweredMax = 20
)

// Backoff of the checks' retries.
var (
	settleBackoff = backoff.Policy{Base: 200 * time.Millisecond, Max: time.Second}
	finalBackoff  = backoff.Policy{Base: 250 * time.Millisecond, Max: 2 * time.Second}
	lookupBackoff = backoff.Policy{Base: 200 * time.Millisecond, Max: 800 * time.Millisecond}
)

// settle retries every purchase whose outcome is unknown, with its request
// ID, until each has the sale's decision or the time runs out.
func (w *workload) settle(ctx context.Context, events []Event) {
	todo := opsWith(events, OutcomeInfo)
	items := map[string]ItemSpec{w.hot.ID: w.hot, w.lim.ID: w.lim}
	deadline := make(chan struct{})
	timer := time.AfterFunc(settleTimeout, func() { close(deadline) })
	defer timer.Stop()
	parallel(ctx, len(todo), verifyWorkers, func(k int) {
		op := todo[k]
		for n := 0; ctx.Err() == nil; n++ {
			if out, _ := w.purchase(PhaseSettle, items[op.Item], op.User, op.RequestID, op.Quantity, 1, deadline); decided(out) {
				return
			}
			select {
			case <-deadline:
				return
			case <-time.After(settleBackoff.Delay(n, nil)):
			}
		}
	})
}

// held returns, per item, the units of the confirmed purchases that still
// hold them. With a payment window it first waits until every order's
// window has closed (the last confirmation's deadline, plus finalMargin)
// and reads every confirmed order's final status (finals): those that
// expired gave their units back.
func (w *workload) held(ctx context.Context, events []Event) map[string]int64 {
	ops := opsWith(events, OutcomeOK)
	units := map[string]int64{}
	for _, op := range ops {
		units[op.Item] += int64(op.Quantity)
	}
	if w.payWindow <= 0 {
		return units
	}
	var lastMs float64
	for _, e := range events {
		if e.Outcome == OutcomeOK && (e.Phase == PhaseRun || e.Phase == PhaseSettle) {
			lastMs = max(lastMs, e.EndMs)
		}
	}
	_ = clock.Sleep(ctx, time.Until(w.hist.t0.Add(msDuration(lastMs)+w.payWindow+finalMargin)))
	w.finals(ctx, ops)
	finals := finalStatuses(w.hist.Events())
	for _, op := range ops {
		if orders.Status(finals[op.Order].status).Returned() {
			units[op.Item] -= int64(op.Quantity)
		}
	}
	return units
}

// finals reads every order of ops as admin, recording each read, until it
// shows a final status (paid, expired, cancelled) or finalTimeout runs
// out; every order is read at least once.
func (w *workload) finals(ctx context.Context, ops []*Op) {
	deadline := time.Now().Add(finalTimeout)
	parallel(ctx, len(ops), verifyWorkers, func(k int) {
		op := ops[k]
		for _, order := range op.Orders {
			for n := 0; ctx.Err() == nil; n++ {
				start := time.Now()
				r := w.api.Do(ctx, client.Any, http.MethodGet, "/v1/orders/"+url.PathEscape(order), nil, client.AsAdmin)
				ev := Event{Phase: PhaseFinal, Item: op.Item, User: op.User, RequestID: op.RequestID, Quantity: op.Quantity,
					OrderID: order, Attempt: n + 1, OrderStatus: orderStatus(r)}
				w.record(&ev, start, r)
				if settledStatus(ev.OrderStatus) || time.Now().After(deadline) {
					break
				}
				_ = finalBackoff.Sleep(ctx, min(n, 3), nil)
			}
		}
	})
}

// settledStatus reports whether an order's status is final: paid, expired
// or cancelled.
func settledStatus(s string) bool {
	return s == string(orders.StatusPaid) || orders.Status(s).Returned()
}

// finalRead is what the final reads of one order showed.
type finalRead struct {
	status string // the settled status read; else "confirmed" if it was read; else ""
	// conflict names a second settled status read for the same order
	// (statuses only move forward: a replica that disagrees).
	conflict string
}

// finalStatuses returns what the final reads showed, by order ID.
func finalStatuses(events []Event) map[string]finalRead {
	out := map[string]finalRead{}
	for _, e := range events {
		if e.Phase != PhaseFinal || e.OrderStatus == "" {
			continue
		}
		f := out[e.OrderID]
		switch {
		case !settledStatus(e.OrderStatus):
			if f.status == "" {
				f.status = e.OrderStatus
			}
		case !settledStatus(f.status):
			f.status = e.OrderStatus
		case f.status != e.OrderStatus:
			f.conflict = e.OrderStatus
		}
		out[e.OrderID] = f
	}
	return out
}

// views waits until every node reports sold = the units held of each item
// and the same stock, and returns what each node last reported.
func (w *workload) views(ctx context.Context, items []ItemSpec, units map[string]int64) []client.ItemReads {
	deadline := time.Now().Add(viewsTimeout)
	for {
		out, agree := w.readViews(ctx, items, units)
		if agree || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		_ = clock.Sleep(ctx, 250*time.Millisecond)
	}
}

// readViews reads every item on every node once; agree is set when every
// node could read every item and reports units[item] sold and the same
// stock (a restock applied everywhere).
func (w *workload) readViews(ctx context.Context, items []ItemSpec, units map[string]int64) (out []client.ItemReads, agree bool) {
	agree = true
	stock := map[string]int64{}
	for i := 0; i < nodes; i++ {
		r := client.ItemReads{Target: nodeName(i), Items: map[string]client.ItemState{}, Errs: map[string]string{}}
		for _, it := range items {
			v, err := w.api.Item(ctx, i, it.ID)
			if err != nil {
				r.Errs[it.ID], agree = err.Error(), false
				continue
			}
			r.Items[it.ID] = v
			if s, ok := stock[it.ID]; ok && s != v.Stock {
				agree = false
			}
			stock[it.ID] = v.Stock
			agree = agree && v.Sold == units[it.ID]
		}
		out = append(out, r)
	}
	return out, agree
}

// nodeName names node i in reports.
func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// lookups asks every node for every confirmed purchase again, with its
// request ID: each must answer 200 with the same order.
func (w *workload) lookups(ctx context.Context, events []Event) {
	todo := opsWith(events, OutcomeOK)
	items := map[string]ItemSpec{w.hot.ID: w.hot, w.lim.ID: w.lim}
	deadline := time.Now().Add(lookupTimeout)
	// A node that leaves lookupUnansweredMax lookups without a decided
	// answer is not asked again: what it was not asked counts as not
	// returned, and the checks stay short.
	var unanswered [nodes]atomic.Int64
	parallel(ctx, len(todo)*nodes, verifyWorkers, func(k int) {
		op, node := todo[k/nodes], k%nodes
		if unanswered[node].Load() >= lookupUnansweredMax {
			return
		}
		for a := 1; a <= lookupAttempts && time.Now().Before(deadline); a++ {
			if out, _ := w.attempt(PhaseVerify, items[op.Item], op.User, op.RequestID, op.Quantity, a, node); decided(out) {
				return
			}
			if a < lookupAttempts {
				_ = lookupBackoff.Sleep(ctx, a-1, nil)
			}
		}
		unanswered[node].Add(1)
	})
}

// storeState waits until the order store holds every confirmed order and
// exactly the units sold in Raft (more while the expiries of orders it
// holds are not flushed yet), then returns what it holds.
func storeState(ctx context.Context, dsns []string, sold map[string]int64, events []Event) *client.StoreEvidence {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := storecheck.Open(octx, dsns, 0)
	cancel()
	if err != nil {
		return &client.StoreEvidence{Err: err.Error()}
	}
	defer st.Close()
	var ids []string
	for _, op := range Summarize(events) {
		if op.Outcome == OutcomeOK {
			ids = append(ids, op.Order)
		}
	}
	sort.Strings(ids)
	rctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	var last *client.StoreEvidence
	for {
		got := client.ReadStore(rctx, st, ids, sold, 500*time.Millisecond)
		if got.Err != "" && last != nil {
			return last
		}
		if got.Err != "" || sameUnits(got.SoldUnits, sold) || clock.Sleep(rctx, 500*time.Millisecond) != nil {
			return got
		}
		last = got
	}
}

// sameUnits reports whether the store holds exactly the units sold.
func sameUnits(stored, sold map[string]int64) bool {
	for id, n := range sold {
		if stored[id] != n {
			return false
		}
	}
	return true
}

// parallel runs fn(0..n-1) on at most workers goroutines.
func parallel(ctx context.Context, n, workers int, fn func(k int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				fn(k)
			}
		}()
	}
	for k := 0; k < n && ctx.Err() == nil; k++ {
		next <- k
	}
	close(next)
	wg.Wait()
}

// opsWith returns the purchases of events whose outcome is o, by request ID.
func opsWith(events []Event, o string) []*Op {
	var out []*Op
	for _, op := range sortedOps(Summarize(events)) {
		if op.Outcome == o {
			out = append(out, op)
		}
	}
	return out
}
