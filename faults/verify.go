package faults

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/internal/clock"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/orders/mysql"
)

// Bounds on the checks after the sale.
const (
	settleTimeout  = 90 * time.Second  // all unknown outcomes settled
	viewsTimeout   = 20 * time.Second  // every node agrees on the items
	lookupTimeout  = 180 * time.Second // every confirmed order looked up on every node
	flushTimeout   = 60 * time.Second  // MySQL caught up with Raft
	verifyWorkers  = 32
	lookupAttempts = 5
	// lookupUnansweredMax lookups left without a definite answer by one
	// node stop the lookups on that node.
	lookupUnansweredMax = 20
)

// settle retries every purchase whose outcome is unknown, with its request
// ID, until each has a definite answer or the time runs out.
func (w *workload) settle(ctx context.Context, events []Event) {
	todo := opsWith(events, OutcomeInfo)
	items := map[string]ItemSpec{w.hot.ID: w.hot, w.lim.ID: w.lim}
	deadline := make(chan struct{})
	timer := time.AfterFunc(settleTimeout, func() { close(deadline) })
	defer timer.Stop()
	parallel(ctx, len(todo), verifyWorkers, func(k int) {
		op := todo[k]
		for ctx.Err() == nil {
			if w.purchase(PhaseSettle, items[op.Item], op.User, op.RequestID, op.Quantity, 1, deadline) != OutcomeInfo {
				return
			}
			select {
			case <-deadline:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// views waits until every node reports sold = the confirmed units of each
// item, and returns what each node last reported.
func (w *workload) views(ctx context.Context, items []ItemSpec, units map[string]int64) [nodes]map[string]NodeView {
	var out [nodes]map[string]NodeView
	deadline := time.Now().Add(viewsTimeout)
	for {
		agree := true
		for i := 0; i < nodes; i++ {
			out[i] = map[string]NodeView{}
			for _, it := range items {
				r := w.api.do(ctx, i, http.MethodGet, "/v1/items/"+it.ID, "", nil, attemptTimeout)
				var v NodeView
				switch {
				case r.err != nil:
					v.Err = r.err.Error()
				case r.status != http.StatusOK:
					v.Err = fmt.Sprintf("%d %s", r.status, r.code())
				default:
					v.Stock, _ = r.num("stock")
					v.Remaining, _ = r.num("remaining")
					v.Sold, _ = r.num("sold")
				}
				out[i][it.ID] = v
				if v.Err != "" || v.Sold != units[it.ID] {
					agree = false
				}
			}
		}
		if agree || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		_ = clock.Sleep(ctx, 250*time.Millisecond)
	}
}

// lookups asks every node for every confirmed purchase again, with its
// request ID: each must answer 200 with the same order.
func (w *workload) lookups(ctx context.Context, events []Event) {
	todo := opsWith(events, OutcomeOK)
	items := map[string]ItemSpec{w.hot.ID: w.hot, w.lim.ID: w.lim}
	deadline := time.Now().Add(lookupTimeout)
	// A node that leaves lookupUnansweredMax lookups without a definite
	// answer is not asked again: what it was not asked counts as not
	// returned, and the checks stay short.
	var unanswered [nodes]atomic.Int64
	parallel(ctx, len(todo)*nodes, verifyWorkers, func(k int) {
		op, node := todo[k/nodes], k%nodes
		it := items[op.Item]
		if unanswered[node].Load() >= lookupUnansweredMax {
			return
		}
		answered := false
		defer func() {
			if !answered {
				unanswered[node].Add(1)
			}
		}()
		for a := 1; a <= lookupAttempts && time.Now().Before(deadline); a++ {
			start := time.Now()
			r := w.api.do(ctx, node, http.MethodPost, "/v1/items/"+it.ID+"/purchase", op.User,
				map[string]any{"quantity": op.Quantity, "request_id": op.RequestID}, attemptTimeout)
			ev := Event{
				Phase: PhaseVerify, Item: it.ID, User: op.User, RequestID: op.RequestID, Quantity: op.Quantity,
				Attempt: a, Node: node, StartMs: w.hist.Ms(start), EndMs: w.hist.Ms(time.Now()),
				Status: r.status, Code: r.code(), OrderID: r.str("order_id"), Outcome: classify(r),
			}
			if r.err != nil {
				ev.Err = r.err.Error()
			}
			w.hist.Add(ev)
			if ev.Outcome != OutcomeInfo {
				answered = true
				return
			}
			_ = clock.Sleep(ctx, time.Duration(100*a)*time.Millisecond)
		}
	})
}

// mysqlState waits until SoldByItem matches the units sold in Raft, then
// reads the stored copies of every confirmed order.
func mysqlState(ctx context.Context, dsns []string, sold map[string]int64, events []Event) (map[string]int64, map[string][]StoredOrder, error) {
	mc := mysql.DefaultConfig()
	mc.DSNs = dsns
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sink, err := mysql.Open(octx, mc)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	defer sink.Close()
	var got map[string]int64
	deadline := time.Now().Add(flushTimeout)
	for {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		got, err = sink.SoldByItem(qctx)
		cancel()
		match := err == nil
		for item, n := range sold {
			if err == nil && got[item] != n {
				match = false
			}
		}
		if match || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		_ = clock.Sleep(ctx, 500*time.Millisecond)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sold by item: %w", err)
	}
	ops := Summarize(events)
	var ids []uint64
	for _, op := range ops {
		if op.Outcome != OutcomeOK {
			continue
		}
		id, err := orders.ParseID(op.Order)
		if err != nil {
			return got, nil, fmt.Errorf("order id %q of %s: %w", op.Order, op.RequestID, err)
		}
		ids = append(ids, id)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rows, err := sink.Copies(cctx, ids)
	if err != nil {
		return got, nil, fmt.Errorf("copies: %w", err)
	}
	copies := make(map[string][]StoredOrder, len(rows))
	for id, list := range rows {
		for _, o := range list {
			copies[orders.FormatID(id)] = append(copies[orders.FormatID(id)], StoredOrder{
				ItemID: o.ItemID, UserID: o.UserID, RequestID: o.RequestID, Quantity: int(o.Quantity),
			})
		}
	}
	return got, copies, nil
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
	for _, op := range Summarize(events) {
		if op.Outcome == o {
			out = append(out, op)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RequestID < out[j].RequestID })
	return out
}
