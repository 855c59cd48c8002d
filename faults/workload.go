package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/backoff"
	"github.com/flashstock/flashstock/internal/clock"
)

// ItemSpec is an item of a sale.
type ItemSpec struct {
	ID    string `json:"id"`
	Stock int64  `json:"stock"`
	Limit int    `json:"per_user_limit"`
}

// Workload bounds.
const (
	// attemptTimeout bounds one request. A purchase waits up to
	// requestTimeout in the node, so an attempt gives up a little later; a
	// paused node is found out by that.
	attemptTimeout  = requestTimeout + 1500*time.Millisecond
	runAttempts     = 6  // attempts of one purchase during the sale
	limShoppers     = 2  // shoppers of the limited item
	limRate         = 20 // their purchases per second, together
	hotQuantityMax  = 3  // hot purchases buy 1..3 units
	hotLimit        = 3  // the hot item's per_user_limit
	hotStock        = 100_000_000
	limLimit        = 2
	limDoubleChance = 0.2 // chance a limited purchase asks for 2 units
)

// Restocks and payments: stock that comes back during the sale.
const (
	// restockAttempts bounds the sends of one restock. Only a shed one
	// (429, 503 overloaded or unavailable: not applied) is sent again; one
	// whose outcome is unknown never is, since a restock is not idempotent.
	restockAttempts = 3
	hotRestock      = 500 // units of each restock of the hot item
	// limRestockShare sizes each restock of the limited item: this share
	// of its stock, at least limRestockMin units.
	limRestockShare = 0.125
	limRestockMin   = 2
	// payWindowShort is the nodes' --payment-window in the scenario that
	// has one: short, so that most unpaid orders expire during the sale
	// and their units are sold again.
	payWindowShort = 2 * time.Second
	payShare       = 0.5 // share of the confirmed orders the shoppers pay
	// payLate bounds the delay before paying, in windows: a payment is sent
	// 0..payLate windows after the confirmation, so a few arrive too late
	// (order_expired) and some race the expiry.
	payLate = 1.1
	// payAttempts bounds the sends of one payment; paying twice is paying
	// once, so a shed or unknown answer is sent again.
	payAttempts = runAttempts
	// paysMax bounds the payments waiting or in flight; an order confirmed
	// while that many are is not paid.
	paysMax = 512
)

// restockAt are the moments of the sale, as shares of its duration, when
// the admin restocks both items: with the default timing (the fault from a
// fifth of the sale for a quarter of it, at least 8 s) the first two fall
// while the fault is on, the third around the heal. The admin also
// restocks both at once when a fault is injected, the first
// faultRestocksMax times: before the cluster has recovered, when an
// unknown outcome is likeliest.
var restockAt = []float64{0.25, 0.4, 0.55, 0.75}

const (
	faultRestocksMax = 2
	faultPoll        = 20 * time.Millisecond // how often the fault restocker looks for a new fault
)

// payBackoff spaces the attempts of one payment.
var payBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}

// runBackoff spaces the attempts of one purchase during the sale: about
// 50-100 ms after the first, doubling, at most 1.5 s. Retry-After is not
// waited for: the shoppers probe the cluster as fast as this allows.
var runBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: 1500 * time.Millisecond}

// workload is the shoppers of one scenario, and its admin's restocks.
type workload struct {
	api   *client.Client
	hist  *History
	hot   ItemSpec
	lim   ItemSpec
	users int // the limited item's user pool
	rate  int
	shop  int
	dur   time.Duration
	// payWindow is the nodes' --payment-window; 0: orders are final when
	// confirmed, and nobody pays.
	payWindow time.Duration
	pays      chan struct{} // a token per payment waiting or in flight (paysMax)
	stop      chan struct{}
	wg        sync.WaitGroup
}

// newWorkload sizes the limited item so that it sells out around the middle
// of a sale of duration d: stock = limRate * d / 2, and two users per three
// units, so that per-user limits bite before the end.
func newWorkload(a *client.Client, h *History, d time.Duration, rate, shoppers int) *workload {
	limStock := max(int64(limRate*d.Seconds()/2), 20)
	return &workload{
		api: a, hist: h, rate: rate, shop: shoppers,
		hot:   ItemSpec{ID: "hot", Stock: hotStock, Limit: hotLimit},
		lim:   ItemSpec{ID: "lim", Stock: limStock, Limit: limLimit},
		users: int(limStock * 2 / 3),
		dur:   d,
		pays:  make(chan struct{}, paysMax),
		stop:  make(chan struct{}),
	}
}

// setPayWindow sets the nodes' payment window. With one, the limited item
// gets half the stock: about half of its orders expire, and it must sell
// out again and again for their units to be sold again.
func (w *workload) setPayWindow(window time.Duration) {
	w.payWindow = window
	if window > 0 {
		w.lim.Stock = max(w.lim.Stock/2, 20)
	}
}

// nodeArgs are the node flags a scenario with a payment window of window
// adds; none for 0.
func nodeArgs(window time.Duration) []string {
	if window <= 0 {
		return nil
	}
	return []string{"--payment-window", window.String()}
}

// start starts the shoppers and the restocks; end stops them and waits for
// their last attempts (each bounded by attemptTimeout) and the payments
// already decided on.
func (w *workload) start() {
	w.wg.Add(2)
	go func() {
		defer w.wg.Done()
		w.restocks()
	}()
	go func() {
		defer w.wg.Done()
		w.restocksAtFault()
	}()
	tokens := make(chan struct{}, w.shop)
	w.wg.Add(1)
	go func() { // the pacer: Rate purchases per second, no catching up after a stall
		defer w.wg.Done()
		t := time.NewTicker(time.Second / time.Duration(w.rate))
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				close(tokens)
				return
			case <-t.C:
				select {
				case tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	for s := 0; s < w.shop; s++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), uint64(time.Now().UnixNano())))
			for k := 0; ; k++ {
				if _, ok := <-tokens; !ok {
					return
				}
				user, rid := fmt.Sprintf("h%d-%d", s, k), "H"+strconv.Itoa(s)+"-"+strconv.Itoa(k)
				if out, order := w.purchase(PhaseRun, w.hot, user, rid, 1+rng.IntN(hotQuantityMax), runAttempts, w.stop); out == OutcomeOK {
					w.maybePay(w.hot, user, rid, order, rng)
				}
			}
		}()
	}
	for s := 0; s < limShoppers; s++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(1000+s), uint64(time.Now().UnixNano())))
			t := time.NewTicker(time.Second * limShoppers / limRate)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-w.stop:
					return
				case <-t.C:
				}
				qty := 1
				if rng.Float64() < limDoubleChance {
					qty = 2
				}
				user, rid := "L"+strconv.Itoa(rng.IntN(w.users)), "L"+strconv.Itoa(s)+"-"+strconv.Itoa(k)
				if out, order := w.purchase(PhaseRun, w.lim, user, rid, qty, runAttempts, w.stop); out == OutcomeOK {
					w.maybePay(w.lim, user, rid, order, rng)
				}
			}
		}()
	}
}

func (w *workload) end() {
	close(w.stop)
	w.wg.Wait()
}

// purchase buys qty units of it for user with request ID rid, on the next
// node, retrying shed and unknown answers with the same request ID on the
// next node, at most attempts times and not after stop closes. It returns
// the last outcome (ok or fail once the sale decided) and, when ok, the
// order.
func (w *workload) purchase(phase string, it ItemSpec, user, rid string, qty, attempts int, stop <-chan struct{}) (outcome, order string) {
	outcome = OutcomeInfo
	for a := 1; a <= attempts; a++ {
		outcome, order = w.attempt(phase, it, user, rid, qty, a, client.Any)
		if decided(outcome) || a == attempts {
			return outcome, order
		}
		select {
		case <-stop:
			return outcome, order
		case <-time.After(runBackoff.Delay(a-1, nil)):
		}
	}
	return outcome, order
}

// decided reports whether an attempt's outcome is the sale's decision: an
// order or a refusal by its rules. Shed and unknown answers are not.
func decided(outcome string) bool { return outcome == OutcomeOK || outcome == OutcomeFail }

// attempt sends one purchase to node (client.Any for the next one),
// records it in the history and returns its outcome and order.
func (w *workload) attempt(phase string, it ItemSpec, user, rid string, qty, attempt, node int) (outcome, order string) {
	start := time.Now()
	r, o := w.api.Purchase(context.Background(), node, it.ID, user, rid, qty)
	ev := Event{
		Phase: phase, Item: it.ID, User: user, RequestID: rid, Quantity: qty, Attempt: attempt,
		OrderID: o.OrderID, OrderStatus: o.Status,
	}
	w.record(&ev, start, r)
	return ev.Outcome, ev.OrderID
}

// record completes ev with the answer r to a request sent at start, and
// adds it to the history.
func (w *workload) record(ev *Event, start time.Time, r client.Reply) {
	ev.Node, ev.StartMs, ev.EndMs = r.Target, w.hist.Ms(start), w.hist.Ms(time.Now())
	ev.Status, ev.Code, ev.Outcome, ev.Answer = r.Status, r.Code, historyOutcome(r.Outcome), r.Outcome.String()
	if r.Err != nil {
		ev.Err = r.Err.Error()
	}
	w.hist.Add(*ev)
}

// restocks restocks both items at the moments of restockAt, until stop.
func (w *workload) restocks() {
	t0 := time.Now()
	for k, at := range restockAt {
		select {
		case <-w.stop:
			return
		case <-time.After(time.Until(t0.Add(time.Duration(at * float64(w.dur))))):
		}
		w.restock(w.hot.ID, fmt.Sprintf("R%d-%s", k+1, w.hot.ID), hotRestock)
		w.restock(w.lim.ID, fmt.Sprintf("R%d-%s", k+1, w.lim.ID), w.limRestock())
	}
}

// restocksAtFault restocks both items as soon as a fault is injected, the
// first faultRestocksMax times, until stop.
func (w *workload) restocksAtFault() {
	t := time.NewTicker(faultPoll)
	defer t.Stop()
	seen := 0
	for k := 1; k <= faultRestocksMax; {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		if n := w.hist.Injects(); n > seen {
			seen = n
			w.restock(w.hot.ID, fmt.Sprintf("F%d-%s", k, w.hot.ID), hotRestock)
			w.restock(w.lim.ID, fmt.Sprintf("F%d-%s", k, w.lim.ID), w.limRestock())
			k++
		}
	}
}

// limRestock is the units of each restock of the limited item.
func (w *workload) limRestock() int64 {
	return max(int64(limRestockShare*float64(w.lim.Stock)), limRestockMin)
}

// restockBody is the body of POST /v1/items/{id}/stock.
type restockBody struct {
	Delta int64 `json:"delta"`
}

// restock adds delta units to item as admin, recording every attempt
// under the name id. A shed attempt was not applied and is sent again, at
// most restockAttempts times; an attempt whose outcome is unknown is not
// (a restock is not idempotent: it could add the units twice).
func (w *workload) restock(item, id string, delta int64) {
	for a := 1; a <= restockAttempts; a++ {
		start := time.Now()
		r := w.api.Do(context.Background(), client.Any, http.MethodPost, "/v1/items/"+url.PathEscape(item)+"/stock",
			restockBody{Delta: delta}, client.AsAdmin)
		ev := Event{Phase: PhaseRestock, Item: item, RequestID: id, Delta: delta, Attempt: a}
		w.record(&ev, start, r)
		if ev.Outcome != OutcomeShed {
			return
		}
		_ = clock.Sleep(context.Background(), runBackoff.Delay(a-1, nil))
	}
}

// maybePay pays a share (payShare) of the confirmed orders, each after a
// random delay of up to payLate windows, in a goroutine of its own; at most
// paysMax wait or are in flight, and an order confirmed beyond that is not
// paid. Nothing is paid without a payment window.
func (w *workload) maybePay(it ItemSpec, user, rid, order string, rng *rand.Rand) {
	if w.payWindow <= 0 || order == "" || rng.Float64() >= payShare {
		return
	}
	select {
	case w.pays <- struct{}{}:
	default:
		return
	}
	delay := time.Duration(rng.Float64() * payLate * float64(w.payWindow))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.pays }()
		time.Sleep(delay) // not cut short by the end of the sale: a payment decided on is made
		w.pay(it, user, rid, order)
	}()
}

// pay pays order as its buyer, recording every attempt. A shed or unknown
// answer is sent again, at most payAttempts times: paying twice is paying
// once.
func (w *workload) pay(it ItemSpec, user, rid, order string) {
	for a := 1; a <= payAttempts; a++ {
		start := time.Now()
		r := w.api.Do(context.Background(), client.Any, http.MethodPost, "/v1/orders/"+url.PathEscape(order)+"/pay",
			nil, client.AsUser(user))
		ev := Event{Phase: PhasePay, Item: it.ID, User: user, RequestID: rid, OrderID: order, Attempt: a,
			OrderStatus: orderStatus(r)}
		w.record(&ev, start, r)
		if decided(ev.Outcome) {
			return
		}
		_ = clock.Sleep(context.Background(), payBackoff.Delay(a-1, nil))
	}
}

// orderStatus returns the status of the order a 200 answer carries; ""
// for any other answer.
func orderStatus(r client.Reply) string {
	if r.Status != http.StatusOK {
		return ""
	}
	var o struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(r.Body, &o)
	return o.Status
}
