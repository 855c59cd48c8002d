package faults

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/client/storecheck"
	"github.com/flashstock/flashstock/internal/backoff"
	"github.com/flashstock/flashstock/internal/clock"
)

// Bounds on the checks after the sale.
const (
	settleTimeout  = 90 * time.Second  // all unknown outcomes settled
	viewsTimeout   = 20 * time.Second  // every node agrees on the items
	lookupTimeout  = 180 * time.Second // every confirmed order looked up on every node
	flushTimeout   = 60 * time.Second  // the order store caught up with Raft
	verifyWorkers  = 32
	lookupAttempts = 5
	// lookupUnansweredMax lookups left without a definite answer by one
	// node stop the lookups on that node.
	lookupUnansweredMax = 20
)

// Backoff of the checks' retries.
var (
	settleBackoff = backoff.Policy{Base: 200 * time.Millisecond, Max: time.Second}
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
			if decided(w.purchase(PhaseSettle, items[op.Item], op.User, op.RequestID, op.Quantity, 1, deadline)) {
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

// views waits until every node reports sold = the confirmed units of each
// item, and returns what each node last reported.
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
// node could read every item and reports units[item] sold.
func (w *workload) readViews(ctx context.Context, items []ItemSpec, units map[string]int64) (out []client.ItemReads, agree bool) {
	agree = true
	for i := 0; i < nodes; i++ {
		r := client.ItemReads{Target: nodeName(i), Items: map[string]client.ItemState{}, Errs: map[string]string{}}
		for _, it := range items {
			v, err := w.api.Item(ctx, i, it.ID)
			if err != nil {
				r.Errs[it.ID], agree = err.Error(), false
				continue
			}
			r.Items[it.ID] = v
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
			if decided(w.attempt(PhaseVerify, items[op.Item], op.User, op.RequestID, op.Quantity, a, node)) {
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
// the units sold in Raft, then returns what it holds.
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
	return client.ReadStore(rctx, st, ids, sold, 500*time.Millisecond)
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
