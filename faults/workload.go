package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// ItemSpec is an item of a sale.
type ItemSpec struct {
	ID    string `json:"id"`
	Stock int64  `json:"stock"`
	Limit int    `json:"per_user_limit"`
}

// Workload bounds.
const (
	runAttempts     = 6               // attempts of one purchase during the sale
	backoffMax      = 1 * time.Second // between attempts
	limShoppers     = 2               // shoppers of the limited item
	limRate         = 20              // their purchases per second, together
	hotQuantityMax  = 3               // hot purchases buy 1..3 units
	hotLimit        = 3               // the hot item's per_user_limit
	hotStock        = 100_000_000
	limLimit        = 2
	limDoubleChance = 0.2 // chance a limited purchase asks for 2 units
)

// workload is the shoppers of one scenario.
type workload struct {
	api   *api
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
func newWorkload(a *api, h *History, d time.Duration, rate, shoppers int) *workload {
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

// purchase buys qty units of it for user with request ID rid, retrying
// unknown outcomes with the same request ID on the next node, at most
// attempts times and not after stop closes. It returns the last outcome.
func (w *workload) purchase(phase string, it ItemSpec, user, rid string, qty, attempts int, stop <-chan struct{}) string {
	outcome := OutcomeInfo
	for a := 1; a <= attempts; a++ {
		node := w.api.pick()
		start := time.Now()
		r := w.api.do(context.Background(), node, http.MethodPost, "/v1/items/"+it.ID+"/purchase", user,
			map[string]any{"quantity": qty, "request_id": rid}, attemptTimeout)
		end := time.Now()
		outcome = classify(r)
		ev := Event{
			Phase: phase, Item: it.ID, User: user, RequestID: rid, Quantity: qty, Attempt: a, Node: node,
			StartMs: w.hist.Ms(start), EndMs: w.hist.Ms(end), Status: r.status, Code: r.code(),
			OrderID: r.str("order_id"), Outcome: outcome,
		}
		if r.err != nil {
			ev.Err = r.err.Error()
		}
		w.hist.Add(ev)
		if outcome != OutcomeInfo {
			return outcome
		}
		select {
		case <-stop:
			return outcome
		default:
		}
		backoff := min(time.Duration(25<<a)*time.Millisecond, backoffMax)
		backoff += time.Duration(rand.Int64N(int64(backoff / 2)))
		select {
		case <-stop:
			return outcome
		case <-time.After(backoff):
		}
	}
	return outcome
}
