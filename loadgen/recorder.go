package loadgen

import (
	"sync"
	"time"

	"github.com/flashstock/flashstock/client"
)

// Bounds on what the recorder keeps, so memory stays bounded whatever the
// server answers.
const (
	// confirmedKeptMax bounds the confirmed orders kept for per-order checks;
	// past it they are only counted (History.Truncated).
	confirmedKeptMax = 1 << 20
	// replaysKeptMax bounds the replays kept.
	replaysKeptMax = 1 << 16
	// codesMax bounds the distinct error codes counted; others count as "other".
	codesMax = 64
)

// The latency histograms kept by the recorder.
const (
	histAll       = iota // every HTTP request of the load phase
	histConfirmed        // 201 and 200 purchase replies
	histSoldOut          // 409 sold_out
	histRejected         // 429 and 503
	histPage             // item page views
	histPurchase         // a purchase end to end: arrival to final answer, retries included
	numHists
)

var histNames = [numHists]string{"all", "confirmed", "sold_out", "rejected", "page", "purchase"}

// purchaseResult is one purchase after its last send.
type purchaseResult struct {
	item, user, requestID string
	quantity              int64
	final                 client.Outcome
	unknown               bool // no order, and some send left the outcome open
	attempts              int
	order                 client.OrderView // when final.OK()
	latency               time.Duration
}

// recorder collects what a run sees. It is safe for concurrent use; every
// method takes its one lock briefly and never blocks otherwise.
type recorder struct {
	mu struct {
		sync.Mutex
		requests     [client.NumOutcomes]int64
		purchases    [client.NumOutcomes]int64
		codes        map[string]int64
		hists        [numHists]*Histogram
		interval     *Histogram // all requests since the last progress tick
		arrivals     int64
		dropped      int64
		retries      int64
		unknown      int64
		confirmedQty map[string]int64
		unknownQty   map[string]int64
		confirmed    []client.ConfirmedOrder
		replays      []client.Replay
		truncated    bool
		inFlight     int64
	}
}

// newRecorder returns an empty recorder.
func newRecorder() *recorder {
	r := &recorder{}
	r.mu.codes = make(map[string]int64)
	for i := range r.mu.hists {
		r.mu.hists[i] = NewHistogram()
	}
	r.mu.interval = NewHistogram()
	r.mu.confirmedQty = make(map[string]int64)
	r.mu.unknownQty = make(map[string]int64)
	return r
}

// arrival counts an arrival; dropped ones were not sent.
func (r *recorder) arrival(dropped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.arrivals++
	if dropped {
		r.mu.dropped++
	}
}

// sessionStarted and sessionDone track shoppers in flight.
func (r *recorder) sessionStarted() { r.mu.Lock(); r.mu.inFlight++; r.mu.Unlock() }
func (r *recorder) sessionDone()    { r.mu.Lock(); r.mu.inFlight--; r.mu.Unlock() }

// request records one HTTP exchange and its latency.
func (r *recorder) request(o client.Outcome, code string, latency time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.requests[o]++
	if code != "" {
		if _, ok := r.mu.codes[code]; !ok && len(r.mu.codes) >= codesMax {
			code = "other"
		}
		r.mu.codes[code]++
	}
	r.mu.hists[histAll].Record(latency)
	r.mu.interval.Record(latency)
	switch {
	case o.OK():
		r.mu.hists[histConfirmed].Record(latency)
	case o == client.OutcomeSoldOut:
		r.mu.hists[histSoldOut].Record(latency)
	case o.Rejected():
		r.mu.hists[histRejected].Record(latency)
	case o == client.OutcomePage:
		r.mu.hists[histPage].Record(latency)
	}
}

// purchase records a purchase's final result.
func (r *recorder) purchase(p purchaseResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.purchases[p.final]++
	r.mu.retries += int64(p.attempts - 1)
	r.mu.hists[histPurchase].Record(p.latency)
	switch {
	case p.final.OK():
		r.mu.confirmedQty[p.item] += p.quantity
		if len(r.mu.confirmed) >= confirmedKeptMax {
			r.mu.truncated = true
			return
		}
		r.mu.confirmed = append(r.mu.confirmed, client.ConfirmedOrder{
			ItemID: p.item, UserID: p.user, RequestID: p.requestID, Quantity: p.quantity, Got: p.order,
		})
	case p.unknown:
		r.mu.unknown++
		r.mu.unknownQty[p.item] += p.quantity
	}
}

// replay records the answer to a re-sent confirmed purchase.
func (r *recorder) replay(rp client.Replay) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.mu.replays) < replaysKeptMax {
		r.mu.replays = append(r.mu.replays, rp)
	}
}

// progress is one progress-line sample.
type progress struct {
	requests    [client.NumOutcomes]int64
	dropped     int64
	inFlight    int64
	intervalN   uint64
	intervalP50 uint64
	intervalP99 uint64
}

// tick returns the counters and the latency of the interval since the last
// tick, and starts a new interval.
func (r *recorder) tick() progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := progress{
		requests:    r.mu.requests,
		dropped:     r.mu.dropped,
		inFlight:    r.mu.inFlight,
		intervalN:   r.mu.interval.Count(),
		intervalP50: r.mu.interval.Quantile(0.50),
		intervalP99: r.mu.interval.Quantile(0.99),
	}
	r.mu.interval.Reset()
	return p
}

// history returns a copy of what the verifier needs.
func (r *recorder) history() client.History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := client.History{
		Confirmed:        append([]client.ConfirmedOrder(nil), r.mu.confirmed...),
		Replays:          append([]client.Replay(nil), r.mu.replays...),
		ConfirmedQty:     make(map[string]int64, len(r.mu.confirmedQty)),
		UnknownQty:       make(map[string]int64, len(r.mu.unknownQty)),
		UnknownPurchases: r.mu.unknown,
		Truncated:        r.mu.truncated,
	}
	for k, v := range r.mu.confirmedQty {
		h.ConfirmedQty[k] = v
	}
	for k, v := range r.mu.unknownQty {
		h.UnknownQty[k] = v
	}
	return h
}
