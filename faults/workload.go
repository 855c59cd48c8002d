package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/backoff"
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

// runBackoff spaces the attempts of one purchase during the sale: about
// 50-100 ms after the first, doubling, at most 1.5 s. Retry-After is not
// waited for: the shoppers probe the cluster as fast as this allows.
var runBackoff = backoff.Policy{Base: 100 * time.Millisecond, Max: 1500 * time.Millisecond}

// workload is the shoppers of one scenario.
type workload struct {
	api   *client.Client
	hist  *History
	hot   ItemSpec
	lim   ItemSpec
	users int // the limited item's user pool
	rate  int
	shop  int
	stop  chan struct{}
	wg    sync.WaitGroup
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
		stop:  make(chan struct{}),
	}
}

// start starts the shoppers; end stops them and waits for their last
// attempts (each bounded by attemptTimeout).
func (w *workload) start() {
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
				user := fmt.Sprintf("h%d-%d", s, k)
				w.purchase(PhaseRun, w.hot, user, "H"+strconv.Itoa(s)+"-"+strconv.Itoa(k), 1+rng.IntN(hotQuantityMax), runAttempts, w.stop)
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
				user := "L" + strconv.Itoa(rng.IntN(w.users))
				w.purchase(PhaseRun, w.lim, user, "L"+strconv.Itoa(s)+"-"+strconv.Itoa(k), qty, runAttempts, w.stop)
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
// the last outcome: ok or fail once the sale decided.
func (w *workload) purchase(phase string, it ItemSpec, user, rid string, qty, attempts int, stop <-chan struct{}) string {
	outcome := OutcomeInfo
	for a := 1; a <= attempts; a++ {
		outcome = w.attempt(phase, it, user, rid, qty, a, client.Any)
		if decided(outcome) || a == attempts {
			return outcome
		}
		select {
		case <-stop:
			return outcome
		case <-time.After(runBackoff.Delay(a-1, nil)):
		}
	}
	return outcome
}

// decided reports whether an attempt's outcome is the sale's decision: an
// order or a refusal by its rules. Shed and unknown answers are not.
func decided(outcome string) bool { return outcome == OutcomeOK || outcome == OutcomeFail }

// attempt sends one purchase to node (client.Any for the next one),
// records it in the history and returns its outcome.
func (w *workload) attempt(phase string, it ItemSpec, user, rid string, qty, attempt, node int) string {
	start := time.Now()
	r, order := w.api.Purchase(context.Background(), node, it.ID, user, rid, qty)
	ev := Event{
		Phase: phase, Item: it.ID, User: user, RequestID: rid, Quantity: qty, Attempt: attempt, Node: r.Target,
		StartMs: w.hist.Ms(start), EndMs: w.hist.Ms(time.Now()), Status: r.Status, Code: r.Code,
		OrderID: order.OrderID, Outcome: historyOutcome(r.Outcome), Answer: r.Outcome.String(),
	}
	if r.Err != nil {
		ev.Err = r.Err.Error()
	}
	w.hist.Add(ev)
	return ev.Outcome
}
