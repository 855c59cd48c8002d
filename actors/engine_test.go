package actors_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/actors/enginetest"
	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// engineConfig is actors.DefaultConfig with a request timeout no healthy
// single-node test reaches, so that a timeout means a lost answer.
func engineConfig() *actors.Config {
	c := actors.DefaultConfig()
	c.RequestTimeout = 30 * time.Second
	return &c
}

type result struct {
	req   sale.Request
	order orders.Order
	dup   bool
	err   error
}

// buyAll sends every request at once, each from its own goroutine, and
// returns the answers in request order.
func buyAll(e *actors.Engine, reqs []sale.Request) []result {
	out := make([]result, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			o, dup, err := e.Purchase(context.Background(), r)
			out[i] = result{r, o, dup, err}
		}()
	}
	close(start)
	wg.Wait()
	return out
}

func TestEngineNeverOversells(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: engineConfig()})
	const stock, buyers, twice = 500, 1500, 500
	n.CreateItem(t, sale.Item{ID: "hot", Name: "Hot", Stock: stock, PerUserLimit: 1})

	var reqs []sale.Request
	for u := 0; u < buyers; u++ {
		reqs = append(reqs, sale.Request{ItemID: "hot", UserID: fmt.Sprint("user-", u), RequestID: rand.Text(), Quantity: 1})
		if u < twice { // these users try a second time, with a new request ID
			reqs = append(reqs, sale.Request{ItemID: "hot", UserID: fmt.Sprint("user-", u), RequestID: rand.Text(), Quantity: 1})
		}
	}
	res := buyAll(n.Engine, reqs)

	confirmed := 0
	perUser := map[string]int{}
	ids := map[uint64]bool{}
	var confirmedOrders []orders.Order
	for _, r := range res {
		switch {
		case r.err == nil && !r.dup:
			confirmed++
			perUser[r.req.UserID]++
			if ids[r.order.ID] {
				t.Errorf("order ID %d confirmed twice", r.order.ID)
			}
			ids[r.order.ID] = true
			if r.order.ItemID != "hot" || r.order.UserID != r.req.UserID || r.order.RequestID != r.req.RequestID || r.order.Quantity != 1 {
				t.Errorf("Purchase(%+v) = order %+v; want the request's item, user, request id and quantity", r.req, r.order)
			}
			confirmedOrders = append(confirmedOrders, r.order)
		case r.err == nil:
			t.Errorf("Purchase(%+v) = duplicate; want a new order or a rejection (request IDs are unique)", r.req)
		case !errors.Is(r.err, sale.ErrSoldOut) && !errors.Is(r.err, sale.ErrLimitExceeded):
			t.Errorf("Purchase(%+v) = %v; want nil, ErrSoldOut or ErrLimitExceeded", r.req, r.err)
		}
	}
	if confirmed != stock {
		t.Errorf("confirmed %d purchases of %d concurrent buyers; want exactly the stock, %d", confirmed, len(reqs), stock)
	}
	fsm := n.ShardOf("hot").FSM()
	for u, c := range perUser {
		if c > 1 {
			t.Errorf("user %s confirmed %d units; want at most the limit, 1", u, c)
		}
		if got := fsm.Bought("hot", u); got != int32(c) {
			t.Errorf("Bought(%q, %q) = %d; want %d confirmed", "hot", u, got, c)
		}
	}
	if got, _ := fsm.Remaining("hot"); got != 0 {
		t.Errorf("Remaining(%q) = %d; want 0", "hot", got)
	}

	// Every confirmed order reaches the order store, exactly once.
	testutil.WaitFor(t, 20*time.Second, func() bool { return n.Pending() == 0 })
	sold, err := n.Sink.SoldByItem(context.Background())
	if err != nil {
		t.Fatalf("SoldByItem() = %v", err)
	}
	if sold["hot"] != stock {
		t.Errorf("order store holds %d units of %q; want %d", sold["hot"], "hot", stock)
	}
	for _, o := range confirmedOrders[:20] {
		got, persisted, err := n.Engine.Order(context.Background(), o.ID)
		if err != nil || !persisted || got.ID != o.ID || got.UserID != o.UserID || !got.CreatedAt.Equal(o.CreatedAt) {
			t.Errorf("Order(%d) = %+v, %v, %v; want %+v, persisted", o.ID, got, persisted, err, o)
		}
	}
}

func TestEngineSoldOutFastPath(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: engineConfig()})
	ctx := context.Background()
	n.CreateItem(t, sale.Item{ID: "few", Stock: 3, PerUserLimit: 3})
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "few", UserID: "u1", Quantity: 2}); err != nil {
		t.Fatalf("Purchase(2 of 3) = %v; want nil", err)
	}
	fsm := n.ShardOf("few").FSM()
	applied := fsm.AppliedIndex()
	tests := []struct {
		name string
		req  sale.Request
	}{
		{"more than remains", sale.Request{ItemID: "few", UserID: "u2", Quantity: 2}},
		{"more than remains, with request id", sale.Request{ItemID: "few", UserID: "u2", RequestID: "r1", Quantity: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := n.Engine.Purchase(ctx, tc.req); !errors.Is(err, sale.ErrSoldOut) {
				t.Errorf("Purchase(%+v) = %v; want %v", tc.req, err, sale.ErrSoldOut)
			}
		})
	}
	if got := fsm.AppliedIndex(); got != applied {
		t.Errorf("AppliedIndex() = %d after answers larger than the stock; want %d (answered without Raft)", got, applied)
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "few", UserID: "u3", Quantity: 1}); err != nil {
		t.Fatalf("Purchase(last unit) = %v; want nil", err)
	}
	applied = fsm.AppliedIndex()
	for i := 0; i < 100; i++ {
		if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "few", UserID: fmt.Sprint("late-", i), Quantity: 1}); !errors.Is(err, sale.ErrSoldOut) {
			t.Fatalf("Purchase(sold out) = %v; want %v", err, sale.ErrSoldOut)
		}
	}
	if got := fsm.AppliedIndex(); got != applied {
		t.Errorf("AppliedIndex() = %d after sold-out answers; want %d (answered without Raft)", got, applied)
	}
}

// clock is a settable time source for the engine and the leader's stamps.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestEngineRejections(t *testing.T) {
	clk := &clock{}
	clk.ns.Store(time.Now().UnixNano())
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: engineConfig(), Now: clk.Now})
	ctx := context.Background()
	now := clk.Now().UnixNano()
	n.CreateItem(t, sale.Item{ID: "open", Stock: 5, PerUserLimit: 2})
	n.CreateItem(t, sale.Item{ID: "other", Stock: 5, PerUserLimit: 2})
	n.CreateItem(t, sale.Item{ID: "upcoming", Stock: 5, PerUserLimit: 2, StartsAt: now + int64(time.Hour)})
	n.CreateItem(t, sale.Item{ID: "ended", Stock: 5, PerUserLimit: 2, StartsAt: now - int64(2*time.Hour), EndsAt: now - int64(time.Hour)})
	n.CreateItem(t, sale.Item{ID: "paused", Stock: 5, PerUserLimit: 2})
	if _, err := n.Engine.SetPaused(ctx, "paused", true); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Engine.CreateItem(ctx, sale.Item{ID: "open", Stock: 1, PerUserLimit: 1}); !errors.Is(err, sale.ErrItemExists) {
		t.Errorf("CreateItem(%q) again = %v; want %v", "open", err, sale.ErrItemExists)
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "open", UserID: "u1", RequestID: "r1", Quantity: 1}); err != nil {
		t.Fatalf("Purchase(open) = %v; want nil", err)
	}
	tests := []struct {
		name string
		req  sale.Request
		want error
	}{
		{"unknown item", sale.Request{ItemID: "nope", UserID: "u1", Quantity: 1}, sale.ErrItemNotFound},
		{"zero quantity", sale.Request{ItemID: "open", UserID: "u2", Quantity: 0}, sale.ErrInvalidQuantity},
		{"negative quantity", sale.Request{ItemID: "open", UserID: "u2", Quantity: -1}, sale.ErrInvalidQuantity},
		{"quantity over limit", sale.Request{ItemID: "open", UserID: "u2", Quantity: 3}, sale.ErrInvalidQuantity},
		{"limit across purchases", sale.Request{ItemID: "open", UserID: "u1", Quantity: 2}, sale.ErrLimitExceeded},
		{"before the start", sale.Request{ItemID: "upcoming", UserID: "u1", Quantity: 1}, sale.ErrNotOnSale},
		{"after the end", sale.Request{ItemID: "ended", UserID: "u1", Quantity: 1}, sale.ErrNotOnSale},
		{"paused", sale.Request{ItemID: "paused", UserID: "u1", Quantity: 1}, sale.ErrNotOnSale},
	}
	before := map[string]int64{}
	for _, id := range []string{"open", "other", "upcoming", "ended", "paused"} {
		before[id], _ = n.ShardOf(id).FSM().Remaining(id)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, dup, err := n.Engine.Purchase(ctx, tc.req)
			if !errors.Is(err, tc.want) {
				t.Errorf("Purchase(%+v) = %+v, %v, %v; want %v", tc.req, o, dup, err, tc.want)
			}
		})
	}
	for id, want := range before {
		if got, _ := n.ShardOf(id).FSM().Remaining(id); got != want {
			t.Errorf("Remaining(%q) = %d after rejections; want %d", id, got, want)
		}
	}
	// The sale window follows the injected clock, on both the engine and the leader.
	clk.Advance(time.Hour)
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "upcoming", UserID: "u1", Quantity: 1}); err != nil {
		t.Errorf("Purchase(upcoming) at its start = %v; want nil", err)
	}
	if _, err := n.Engine.SetPaused(ctx, "paused", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "paused", UserID: "u1", Quantity: 1}); err != nil {
		t.Errorf("Purchase(resumed) = %v; want nil", err)
	}
	if it, err := n.Engine.Restock(ctx, "open", -100); !errors.Is(err, sale.ErrInvalidStock) {
		t.Errorf("Restock(%q, -100) = %+v, %v; want %v", "open", it, err, sale.ErrInvalidStock)
	}
	if it, err := n.Engine.Restock(ctx, "open", 10); err != nil || it.Remaining != 14 {
		t.Errorf("Restock(%q, 10) = %+v, %v; want remaining 14", "open", it, err)
	}
	if _, err := n.Engine.Item(ctx, "nope"); !errors.Is(err, sale.ErrItemNotFound) {
		t.Errorf("Item(%q) = %v; want %v", "nope", err, sale.ErrItemNotFound)
	}
}

// TestEngineClockInThePast: the injected clock (Deps.Now) decides sale
// windows and the leader's stamps; it must not decide how long a caller
// waits. A test clock pinned to a fixed date is the common case.
func TestEngineClockInThePast(t *testing.T) {
	clk := &clock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	ec := engineConfig()
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: ec, Now: clk.Now})
	ctx := context.Background()
	if _, err := n.Engine.CreateItem(ctx, sale.Item{ID: "a", Stock: 5, PerUserLimit: 1}); err != nil {
		t.Fatalf("CreateItem with a clock at 2026-01-01 = %v; want nil", err)
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "a", UserID: "u1", Quantity: 1}); err != nil {
		t.Errorf("Purchase with a clock at 2026-01-01 = %v; want nil", err)
	}
}

func TestEngineBacklogFull(t *testing.T) {
	ec := engineConfig()
	ec.MaxUnflushed = 2
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: ec, NoFlusher: true, Shards: 1})
	ctx := context.Background()
	n.CreateItem(t, sale.Item{ID: "a", Stock: 10, PerUserLimit: 1})
	for i := 0; i < 2; i++ {
		if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "a", UserID: fmt.Sprint("u", i), Quantity: 1}); err != nil {
			t.Fatalf("Purchase #%d = %v; want nil", i, err)
		}
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "a", UserID: "u9", Quantity: 1}); !errors.Is(err, sale.ErrBacklogFull) {
		t.Errorf("Purchase with 2 unflushed orders and MaxUnflushed 2 = %v; want %v", err, sale.ErrBacklogFull)
	}
	if got, _ := n.ShardOf("a").FSM().Remaining("a"); got != 8 {
		t.Errorf("Remaining(%q) = %d; want 8", "a", got)
	}
}

func TestEngineOverloaded(t *testing.T) {
	tests := []struct {
		name   string
		change func(*actors.Config)
	}{
		{"item queue", func(c *actors.Config) { c.QueueMax = 1 }},
		{"node admission", func(c *actors.Config) { c.AdmissionMax = 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ec := engineConfig()
			tc.change(ec)
			n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: ec})
			testOverloaded(t, n)
		})
	}
}

// testOverloaded sends bursts until one is answered sale.ErrOverloaded in part
// (overload depends on timing), checking the accounting of every burst:
// each purchase is confirmed or rejected, an overloaded one is not applied,
// and the confirmed ones are exactly what the FSM sold.
func testOverloaded(t *testing.T, n *enginetest.Node) {
	const stock, buyers = 300, 600
	for attempt := 0; attempt < 10; attempt++ {
		id := fmt.Sprint("burst-", attempt)
		n.CreateItem(t, sale.Item{ID: id, Stock: stock, PerUserLimit: 1})
		var reqs []sale.Request
		for u := 0; u < buyers; u++ {
			reqs = append(reqs, sale.Request{ItemID: id, UserID: fmt.Sprint("u", u), RequestID: fmt.Sprint("r", u), Quantity: 1})
		}
		var confirmed, overloaded, soldOut int
		for _, r := range buyAll(n.Engine, reqs) {
			switch {
			case r.err == nil && !r.dup:
				confirmed++
			case errors.Is(r.err, sale.ErrOverloaded):
				overloaded++
				if _, ok := n.ShardOf(id).FSM().LookupRequest(id, r.req.UserID, r.req.RequestID); ok {
					t.Errorf("Purchase(%+v) = sale.ErrOverloaded, but the FSM holds its order; want not applied", r.req)
				}
			case errors.Is(r.err, sale.ErrSoldOut):
				soldOut++
			default:
				t.Errorf("Purchase(%+v) = dup %v, %v; want confirmed, sale.ErrOverloaded or ErrSoldOut", r.req, r.dup, r.err)
			}
		}
		if got := confirmed + overloaded + soldOut; got != buyers {
			t.Errorf("burst %d: %d confirmed + %d overloaded + %d sold out = %d; want %d sent", attempt, confirmed, overloaded, soldOut, got, buyers)
		}
		remaining, _ := n.ShardOf(id).FSM().Remaining(id)
		if int64(confirmed) != stock-remaining {
			t.Errorf("burst %d: %d confirmed; want stock - remaining = %d", attempt, confirmed, stock-remaining)
		}
		if overloaded > 0 {
			t.Logf("burst %d: %d confirmed, %d overloaded, %d sold out", attempt, confirmed, overloaded, soldOut)
			return
		}
	}
	t.Errorf("%d concurrent buyers were never answered sale.ErrOverloaded in 10 bursts", buyers)
}

func TestEngineIdempotentRetry(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: engineConfig()})
	ctx := context.Background()
	n.CreateItem(t, sale.Item{ID: "one", Stock: 1, PerUserLimit: 1})
	req := sale.Request{ItemID: "one", UserID: "u1", RequestID: "r1", Quantity: 1}
	first, dup, err := n.Engine.Purchase(ctx, req)
	if err != nil || dup {
		t.Fatalf("Purchase(%+v) = %v, %v; want a new order", req, dup, err)
	}
	// Retries, including after the item sold out, answer the original order.
	for i := 0; i < 3; i++ {
		got, dup, err := n.Engine.Purchase(ctx, req)
		if err != nil || !dup || !reflect.DeepEqual(got, first) {
			t.Errorf("retry %d: Purchase(%+v) = %+v, %v, %v; want %+v, true, nil", i, req, got, dup, err, first)
		}
	}
	if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "one", UserID: "u2", RequestID: "r1", Quantity: 1}); !errors.Is(err, sale.ErrSoldOut) {
		t.Errorf("Purchase by another user = %v; want %v", err, sale.ErrSoldOut)
	}

	// Concurrent retries of one request: one order, the rest duplicates.
	n.CreateItem(t, sale.Item{ID: "ten", Stock: 10, PerUserLimit: 1})
	same := make([]sale.Request, 50)
	for i := range same {
		same[i] = sale.Request{ItemID: "ten", UserID: "u2", RequestID: "r2", Quantity: 1}
	}
	var orig uint64
	news := 0
	for _, r := range buyAll(n.Engine, same) {
		if r.err != nil {
			t.Errorf("concurrent retry = %v; want nil", r.err)
			continue
		}
		if !r.dup {
			news++
		}
		if orig == 0 {
			orig = r.order.ID
		}
		if r.order.ID != orig {
			t.Errorf("concurrent retries answered orders %d and %d; want one", orig, r.order.ID)
		}
	}
	if news != 1 {
		t.Errorf("%d of 50 concurrent retries answered a new order; want 1", news)
	}
	if got, _ := n.ShardOf("ten").FSM().Remaining("ten"); got != 9 {
		t.Errorf("Remaining(%q) = %d; want 9", "ten", got)
	}

	// The order is readable while pending and after the flusher stored it.
	o, _, err := n.Engine.Order(ctx, first.ID)
	if err != nil || o.ID != first.ID {
		t.Errorf("Order(%d) = %+v, %v; want the order", first.ID, o, err)
	}
	testutil.WaitFor(t, 10*time.Second, func() bool { return n.Pending() == 0 })
	o, persisted, err := n.Engine.Order(ctx, first.ID)
	if err != nil || !persisted || o.ID != first.ID || o.UserID != "u1" || o.RequestID != "r1" || o.Status != orders.StatusConfirmed || !o.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("Order(%d) after flush = %+v, %v, %v; want %+v, persisted", first.ID, o, persisted, err, first)
	}
	// A retry after the flush still answers the original.
	if got, dup, err := n.Engine.Purchase(ctx, req); err != nil || !dup || got.ID != first.ID {
		t.Errorf("retry after flush: Purchase = %+v, %v, %v; want order %d, duplicate", got, dup, err, first.ID)
	}
	for _, id := range []uint64{first.ID + 1, orders.MakeID(200, 1, 0)} {
		if _, _, err := n.Engine.Order(ctx, id); !errors.Is(err, sale.ErrOrderNotFound) {
			t.Errorf("Order(%d) = %v; want %v", id, err, sale.ErrOrderNotFound)
		}
	}
}

// TestEngineCloseAnswersEveryone: Close stops admitting, answers every
// queued purchase and waits for entries in flight, so that no caller waits
// for its timeout and every confirmed answer is in the FSM.
func TestEngineCloseAnswersEveryone(t *testing.T) {
	ec := engineConfig()
	ec.BatchMax = 16 // many rounds, so that Close lands mid-sale
	n := enginetest.NewNode(t, enginetest.NodeOptions{Engine: ec})
	const buyers = 1000
	n.CreateItem(t, sale.Item{ID: "c", Stock: 1 << 30, PerUserLimit: 1})
	fsm := n.ShardOf("c").FSM()

	results := make(chan result, buyers)
	start := make(chan struct{})
	var returned atomic.Int64
	for u := 0; u < buyers; u++ {
		go func() {
			<-start
			r := sale.Request{ItemID: "c", UserID: fmt.Sprint("u", u), Quantity: 1}
			o, dup, err := n.Engine.Purchase(context.Background(), r)
			results <- result{r, o, dup, err} // buffered: never blocks
			returned.Add(1)
		}()
	}
	close(start)
	testutil.WaitFor(t, 10*time.Second, func() bool { r, _ := fsm.Remaining("c"); return r < 1<<30 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Engine.Close(ctx); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if !testutil.Eventually(10*time.Second, func() bool { return returned.Load() == buyers }) {
		t.Fatalf("10s after Close, %d of %d Purchase calls have returned; want all (RequestTimeout is %v)", returned.Load(), buyers, ec.RequestTimeout)
	}
	close(results)
	confirmed := 0
	kinds := map[string]int{}
	for r := range results {
		bought := fsm.Bought("c", r.req.UserID)
		switch {
		case r.err == nil:
			confirmed++
			kinds["confirmed"]++
			if bought != 1 {
				t.Errorf("Purchase(%s) confirmed, but Bought = %d; want 1", r.req.UserID, bought)
			}
		case errors.Is(r.err, sale.ErrUnknownOutcome):
			kinds["unknown outcome"]++
		case errors.Is(r.err, sale.ErrClosed), errors.Is(r.err, sale.ErrNotLeader), errors.Is(r.err, sale.ErrUnavailable):
			kinds[fmt.Sprint(r.err)]++
			if bought != 0 {
				t.Errorf("Purchase(%s) = %v (not applied), but Bought = %d; want 0", r.req.UserID, r.err, bought)
			}
		default:
			kinds[fmt.Sprint(r.err)]++
			t.Errorf("Purchase(%s) during Close = %v; want nil, sale.ErrClosed, ErrNotLeader, ErrUnavailable or ErrUnknownOutcome", r.req.UserID, r.err)
		}
	}
	t.Logf("answers: %v", kinds)
	remaining, _ := fsm.Remaining("c")
	if sold := int64(1<<30) - remaining; int64(confirmed) > sold || kinds["unknown outcome"] == 0 && int64(confirmed) != sold {
		t.Errorf("%d confirmed answers; FSM sold %d", confirmed, sold)
	}
	if _, _, err := n.Engine.Purchase(context.Background(), sale.Request{ItemID: "c", UserID: "late", Quantity: 1}); !errors.Is(err, sale.ErrClosed) {
		t.Errorf("Purchase after Close = %v; want %v", err, sale.ErrClosed)
	}
	if err := n.Engine.Close(ctx); err != nil {
		t.Errorf("second Close() = %v; want nil", err)
	}
}

func TestEngineConfigValidate(t *testing.T) {
	if err := actors.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
	tests := []struct {
		name   string
		change func(*actors.Config)
	}{
		{"queue", func(c *actors.Config) { c.QueueMax = 0 }},
		{"batch zero", func(c *actors.Config) { c.BatchMax = 0 }},
		{"batch beyond order positions", func(c *actors.Config) { c.BatchMax = orders.PositionsMax }},
		{"timeout", func(c *actors.Config) { c.RequestTimeout = 0 }},
		{"unflushed", func(c *actors.Config) { c.MaxUnflushed = 0 }},
		{"admission", func(c *actors.Config) { c.AdmissionMax = 0 }},
		{"item cache ttl", func(c *actors.Config) { c.ItemCacheTTL = -1 }},
	}
	for _, tc := range tests {
		c := actors.DefaultConfig()
		tc.change(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil; want an error", tc.name)
		}
		if _, err := actors.NewEngine(c, actors.Deps{Logger: testutil.Logger(t)}); err == nil {
			t.Errorf("%s: NewEngine() = nil error; want the validation error", tc.name)
		}
	}
}

func BenchmarkEnginePurchase(b *testing.B) {
	n := enginetest.NewNode(b, enginetest.NodeOptions{Shards: 1})
	n.CreateItem(b, sale.Item{ID: "bench", Stock: math.MaxInt64 / 2, PerUserLimit: 1})
	var user atomic.Int64
	var failed atomic.Int64
	b.SetParallelism(64) // shoppers per CPU: enough to fill group-commit batches
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			u := fmt.Sprint("u", user.Add(1))
			if _, _, err := n.Engine.Purchase(ctx, sale.Request{ItemID: "bench", UserID: u, RequestID: u, Quantity: 1}); err != nil {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d purchases failed", f, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
}

// TestEngineWarmsUpcomingSales: an item that goes on sale soon has its
// actor activated before the first shopper comes (warm start), and an item
// whose sale is far off, or over, does not.
func TestEngineWarmsUpcomingSales(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Shards: 1})
	now := time.Now()
	sh := n.Store.Shard(0)
	for _, c := range []raftstore.CreateItem{
		{ID: "soon", Stock: 10, PerUserLimit: 1, StartsAt: now.Add(time.Minute).UnixNano()},
		{ID: "later", Stock: 10, PerUserLimit: 1, StartsAt: now.Add(time.Hour).UnixNano()},
		{ID: "over", Stock: 10, PerUserLimit: 1, EndsAt: now.Add(-time.Minute).UnixNano()},
	} {
		if _, err := sh.CreateItem(c); err != nil { // straight to Raft: no actor yet
			t.Fatal(err)
		}
	}
	if got := n.Engine.Activations(); got != 0 {
		t.Fatalf("Activations() = %d before any request; want 0", got)
	}
	testutil.WaitFor(t, 5*time.Second, func() bool { return n.Engine.Activations() == 1 })
	time.Sleep(1500 * time.Millisecond) // another warm round
	if got := n.Engine.Activations(); got != 1 {
		t.Errorf("Activations() = %d; want 1 (only the item on sale within 10 minutes)", got)
	}
}

// TestEngineRefusesPurchasesOnAFullDisk: under its disk reserve a node
// takes no purchase (the log must keep room for what it confirms) and
// says so with 503 unavailable, a definite "not bought".
func TestEngineRefusesPurchasesOnAFullDisk(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Shards: 1})
	n.CreateItem(t, sale.Item{ID: "x", Stock: 10, PerUserLimit: 1})
	if _, _, err := n.Engine.Purchase(context.Background(), sale.Request{ItemID: "x", UserID: "before", Quantity: 1}); err != nil {
		t.Fatalf("Purchase with room on disk = %v", err)
	}
	n.Store.SetDiskReserveForTest(1 << 62) // more than any disk has free
	testutil.WaitFor(t, 3*time.Second, n.Store.DiskTrouble)
	_, _, err := n.Engine.Purchase(context.Background(), sale.Request{ItemID: "x", UserID: "after", Quantity: 1})
	if !errors.Is(err, sale.ErrDiskFull) || !sale.Definite(err) {
		t.Fatalf("Purchase on a full disk = %v; want sale.ErrDiskFull, a definite refusal", err)
	}
	if h := n.Store.DiskHealth(); !h.Low || h.FreeBytes == 0 {
		t.Errorf("DiskHealth() = %+v; want low, with the free bytes read", h)
	}
	n.Store.SetDiskReserveForTest(1) // space freed
	testutil.WaitFor(t, 3*time.Second, func() bool { return !n.Store.DiskTrouble() })
	if _, _, err := n.Engine.Purchase(context.Background(), sale.Request{ItemID: "x", UserID: "later", Quantity: 1}); err != nil {
		t.Fatalf("Purchase once space is back = %v; want it to sell without a restart", err)
	}
}

// TestEngineBounds: a restock that would take an item past sale.StockMax
// and a create on a full shard are refused before Raft, exactly, even
// when many are sent at once.
func TestEngineBounds(t *testing.T) {
	n := enginetest.NewNode(t, enginetest.NodeOptions{Shards: 1})
	ctx := context.Background()
	n.CreateItem(t, sale.Item{ID: "big", Stock: sale.StockMax - 10, PerUserLimit: 1})
	// Twenty concurrent restocks of one unit each: ten fit.
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := n.Engine.Restock(ctx, "big", 1)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, sale.ErrStockMax):
				refused.Add(1)
			default:
				t.Errorf("Restock(big, 1) = %v; want nil or %v", err, sale.ErrStockMax)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 10 {
		t.Fatalf("20 concurrent restocks of 1 at StockMax-10: %d applied, %d refused; want 10 and 10", ok.Load(), refused.Load())
	}
	it, err := n.Engine.Item(ctx, "big")
	if err != nil || it.Stock != sale.StockMax {
		t.Fatalf("Item(big) = %+v, %v; want stock %d", it, err, sale.StockMax)
	}
	if _, err := n.Engine.Restock(ctx, "big", -5); err != nil {
		t.Fatalf("Restock(big, -5) at StockMax = %v; want nil", err)
	}

	const itemsMax = 5
	n.Engine.SetItemsMaxForTest(itemsMax)
	var created, full atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := n.Engine.CreateItem(ctx, sale.Item{ID: fmt.Sprintf("i%d", i), Stock: 1, PerUserLimit: 1})
			switch {
			case err == nil:
				created.Add(1)
			case errors.Is(err, sale.ErrItemsFull):
				full.Add(1)
			default:
				t.Errorf("CreateItem(i%d) = %v; want nil or %v", i, err, sale.ErrItemsFull)
			}
		}()
	}
	wg.Wait()
	// "big" is one of the five.
	if created.Load() != itemsMax-1 || full.Load() != 10-(itemsMax-1) {
		t.Fatalf("10 concurrent creates on a shard with room for %d: %d created, %d refused", itemsMax-1, created.Load(), full.Load())
	}
	if got := n.Store.Shard(0).FSM().Stats().Items; got != itemsMax {
		t.Fatalf("shard holds %d items; want %d", got, itemsMax)
	}
	// An existing ID on a full shard still answers item_exists (a create
	// sent again after an unknown outcome learns it exists).
	if _, err := n.Engine.CreateItem(ctx, sale.Item{ID: "big", Stock: 1, PerUserLimit: 1}); !errors.Is(err, sale.ErrItemExists) {
		t.Fatalf("CreateItem(big) on a full shard = %v; want %v", err, sale.ErrItemExists)
	}
}
