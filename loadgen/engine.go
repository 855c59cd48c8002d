package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/clock"
)

// Deps are a run's collaborators. Every field is optional.
type Deps struct {
	// HTTPClient sends the requests; nil builds one sized for the run.
	HTTPClient *http.Client
	// Logger receives setup and verification events; nil discards them.
	Logger *slog.Logger
	// Progress receives the progress line every Config.ProgressInterval; nil
	// disables it.
	Progress io.Writer
	// Now is the wall clock used for sale windows, JWT times and Retry-After
	// dates; nil is time.Now. Latencies always use the monotonic clock.
	Now func() time.Time
	// Rand returns uniform numbers in [0, 1) and is safe for concurrent use;
	// nil is math/rand/v2.
	Rand func() float64
	// OrderStore, when set, is checked by the verifier (see
	// client.OrderStore; client/storecheck reads MySQL).
	OrderStore client.OrderStore
}

// setupParallel bounds the concurrent requests of setup and verification.
const setupParallel = 16

// setupAttempts bounds the sends of one setup or verification request.
const setupAttempts = 3

// verifyPoll is the pause between reads while waiting for the server's
// counters (or the order store) to catch up.
const verifyPoll = 200 * time.Millisecond

// engine is one run in progress.
type engine struct {
	cfg        Config
	deps       Deps
	log        *slog.Logger
	c          *client.Client
	rec        *recorder
	items      []string
	userPrefix string
	now        func() time.Time
	rnd        func() float64
}

// Run creates the items if asked, sends the configured load, and verifies the
// server's books if asked. It returns when the load is over: after at most
// Config.Duration plus Config.RequestTimeout (plus a second of grace), then the
// verification, bounded by Config.VerifyTimeout. Cancelling ctx stops the load
// early; the verification still runs, within its own bound. A failed
// verification is reported in Report.Verify, not as an error; the error is for
// a run that could not be made (bad config, items that cannot be created or
// read).
func Run(ctx context.Context, cfg Config, deps Deps) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: config: %w", err)
	}
	e := newEngine(cfg, deps)
	startedAt := e.now()
	if cfg.Create {
		if err := e.createItems(ctx, startedAt); err != nil {
			return nil, err
		}
	}
	var before map[string]client.ItemState
	if cfg.Verify {
		var errs []error
		before, errs = e.readItems(ctx)
		if len(errs) > 0 {
			return nil, fmt.Errorf("loadgen: read items before the load: %w", firstErrors(errs))
		}
	}
	e.log.Info("loadgen: load starting", "scenario", cfg.Scenario, "targets", len(cfg.Targets),
		"items", len(e.items), "requests", cfg.Requests, "duration", cfg.Duration)
	elapsed := e.load(ctx)
	rep := e.report(startedAt, elapsed)
	if n := rep.Requests.ByOutcome[client.OutcomeClientError.String()]; n > 0 {
		e.log.Warn("loadgen: requests refused as client errors; check the identity settings and IDs (see error codes)",
			"requests", n)
	}
	if cfg.Verify {
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.VerifyTimeout)
		defer cancel()
		v := e.verify(vctx, before)
		rep.Verify = &v
	}
	return rep, nil
}

// newEngine wires a run.
func newEngine(cfg Config, deps Deps) *engine {
	e := &engine{cfg: cfg, deps: deps, rec: newRecorder(), items: cfg.ItemIDs(), now: deps.Now, rnd: deps.Rand}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rnd == nil {
		e.rnd = mrand.Float64
	}
	e.log = deps.Logger
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.userPrefix = cfg.UserPrefix
	if e.userPrefix == "" {
		e.userPrefix = "lg" + runID() + "-"
	}
	conns := cfg.Workers
	if cfg.openLoop() {
		conns = cfg.MaxInFlight
	}
	var id client.Identity = client.HeaderIdentity{}
	if cfg.AuthSecret != "" {
		id = client.JWTIdentity{Secret: []byte(cfg.AuthSecret), TTL: cfg.TokenTTL, Now: e.now}
	}
	e.c = client.New(client.Config{
		Targets: cfg.Targets, AdminToken: cfg.AdminToken, Identity: id, Timeout: cfg.RequestTimeout,
		Conns: max(conns, setupParallel), HTTPClient: deps.HTTPClient, Now: e.now,
	})
	return e
}

// runID returns 8 random hex digits naming this run's users.
func runID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// forEach calls fn for i in [0, n), at most parallel at once, and returns the
// errors. It returns when every call has returned.
func forEach(ctx context.Context, n, parallel int, fn func(ctx context.Context, i int) error) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next atomic.Int64
	)
	for range min(n, parallel) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil && int(next.Load()) < n {
		errs = append(errs, ctx.Err())
	}
	return errs
}

// errorsShownMax bounds the errors joined into one.
const errorsShownMax = 5

// firstErrors joins the first few of errs and counts the rest.
func firstErrors(errs []error) error {
	if len(errs) <= errorsShownMax {
		return errors.Join(errs...)
	}
	shown := append(errs[:errorsShownMax:errorsShownMax], fmt.Errorf("and %d more errors", len(errs)-errorsShownMax))
	return errors.Join(shown...)
}

// retrying calls fn up to setupAttempts times while its error is transient.
func (e *engine) retrying(ctx context.Context, fn func() error) error {
	var err error
	for n := range setupAttempts {
		if err = fn(); err == nil || !client.Transient(err) || n == setupAttempts-1 {
			return err
		}
		if !sleepCtx(ctx, e.cfg.Backoff.Delay(n, e.rnd)) {
			return err
		}
	}
	return err
}

// createItems creates the run's items; existing ones are kept as they are.
func (e *engine) createItems(ctx context.Context, now time.Time) error {
	starts := now.Add(e.cfg.StartDelay).UTC()
	errs := forEach(ctx, len(e.items), setupParallel, func(ctx context.Context, i int) error {
		ends := starts.Add(e.cfg.SaleDuration)
		b := client.NewItem{
			ID: e.items[i], Name: "loadgen " + e.items[i], Stock: e.cfg.Stock,
			PerUserLimit: e.cfg.PerUserLimit, StartsAt: &starts, EndsAt: &ends,
		}
		err := e.retrying(ctx, func() error { return e.c.CreateItem(ctx, client.Any, b) })
		if errors.Is(err, client.ErrItemExists) {
			e.log.Warn("loadgen: item exists; using it as it is", "item", b.ID)
			return nil
		}
		return err
	})
	if len(errs) > 0 {
		return fmt.Errorf("loadgen: create items: %w", firstErrors(errs))
	}
	return nil
}

// readItems reads every item; the map holds those that could be read.
func (e *engine) readItems(ctx context.Context) (map[string]client.ItemState, []error) {
	states := make([]client.ItemState, len(e.items))
	ok := make([]bool, len(e.items))
	errs := forEach(ctx, len(e.items), setupParallel, func(ctx context.Context, i int) error {
		return e.retrying(ctx, func() error {
			it, err := e.c.Item(ctx, client.Any, e.items[i])
			if err != nil {
				return err
			}
			states[i], ok[i] = it, true
			return nil
		})
	})
	m := make(map[string]client.ItemState, len(e.items))
	for i, id := range e.items {
		if ok[i] {
			m[id] = states[i]
		}
	}
	return m, errs
}

// sleepCtx waits d, or returns false at once if ctx ends before d is over.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	return clock.Sleep(ctx, d) == nil
}

// load sends the load and returns when every shopper is done, after at most
// Duration + RequestTimeout + 1s. It returns the time the load took.
func (e *engine) load(ctx context.Context) time.Duration {
	start := time.Now()
	// issueCtx ends the time for new arrivals, retries, think times and
	// replays; reqCtx cancels requests still in flight after the grace.
	issueCtx, cancelIssue := context.WithTimeout(ctx, e.cfg.Duration)
	defer cancelIssue()
	reqCtx, cancelReqs := context.WithCancel(ctx)
	defer cancelReqs()

	stopProgress := e.startProgress(start)
	defer stopProgress()

	var shoppers sync.WaitGroup
	if e.cfg.openLoop() {
		e.openLoop(issueCtx, reqCtx, &shoppers, start)
	} else {
		e.closedLoop(issueCtx, reqCtx, &shoppers)
	}

	done := make(chan struct{})
	go func() { // owned here: load does not return before done is closed
		shoppers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return time.Since(start)
	case <-issueCtx.Done():
	}
	grace := time.NewTimer(e.cfg.RequestTimeout + time.Second)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		e.log.Warn("loadgen: cancelling requests still in flight after the grace period")
		cancelReqs()
		<-done // every request honours reqCtx, every pause issueCtx: this is quick
	}
	return time.Since(start)
}

// arrivalOffset returns when arrival seq is due, from the start of the load.
func (e *engine) arrivalOffset(seq int64) time.Duration {
	if e.cfg.Scenario == ScenarioCrowd {
		// Stratified uniform: exactly Requests arrivals, in order, each at a
		// random point of its own slot of the window.
		slot := float64(e.cfg.ArrivalWindow) / float64(e.cfg.Requests)
		return time.Duration((float64(seq) + e.rnd()) * slot)
	}
	return time.Duration(float64(seq) / e.cfg.Rate * float64(time.Second))
}

// openLoop starts shoppers on schedule, whatever the server does: an arrival
// that finds MaxInFlight shoppers busy is dropped, not queued, and latency is
// measured from the arrival's due time, so a slow server cannot hide its
// delays by slowing the load (coordinated omission).
func (e *engine) openLoop(issueCtx, reqCtx context.Context, shoppers *sync.WaitGroup, start time.Time) {
	slots := make(chan struct{}, e.cfg.MaxInFlight)
	for seq := int64(0); seq < e.cfg.Requests; seq++ {
		due := start.Add(e.arrivalOffset(seq))
		if d := time.Until(due); d > 0 && !sleepCtx(issueCtx, d) {
			return
		}
		if issueCtx.Err() != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			e.rec.arrival(true)
			continue
		}
		e.rec.arrival(false)
		shoppers.Add(1)
		go func() { // owned by load through shoppers
			defer shoppers.Done()
			defer func() { <-slots }()
			e.shopper(issueCtx, reqCtx, seq, due)
		}()
	}
}

// closedLoop runs Workers shoppers back to back until Requests arrivals or
// the duration.
func (e *engine) closedLoop(issueCtx, reqCtx context.Context, shoppers *sync.WaitGroup) {
	var next atomic.Int64
	for range e.cfg.Workers {
		shoppers.Add(1)
		go func() { // owned by load through shoppers
			defer shoppers.Done()
			for issueCtx.Err() == nil {
				seq := next.Add(1) - 1
				if seq >= e.cfg.Requests {
					return
				}
				e.rec.arrival(false)
				e.shopper(issueCtx, reqCtx, seq, time.Time{})
			}
		}()
	}
}

// pickItem chooses the item a shopper wants.
func (e *engine) pickItem() string {
	if len(e.items) == 1 {
		return e.items[0]
	}
	return e.items[min(int(e.rnd()*float64(len(e.items))), len(e.items)-1)]
}

// think returns a browse pause: Think jittered by ±50%.
func (e *engine) think() time.Duration {
	return time.Duration(float64(e.cfg.Think) * (0.5 + e.rnd()))
}

// sendClock yields the time each request of a shopper is measured from: the
// first from its due time (open loop), the others from when they are sent.
type sendClock struct{ due time.Time }

func (s *sendClock) next() time.Time {
	if t := s.due; !t.IsZero() {
		s.due = time.Time{}
		return t
	}
	return time.Now()
}

// shopper is one arrival: browse if the scenario says so, then buy.
// New steps start only while issueCtx lasts; requests use reqCtx.
func (e *engine) shopper(issueCtx, reqCtx context.Context, seq int64, due time.Time) {
	e.rec.sessionStarted()
	defer e.rec.sessionDone()
	n := strconv.FormatInt(seq+1, 10)
	user := e.userPrefix + n
	item := e.pickItem()
	clock := &sendClock{due: due}
	if e.cfg.Scenario == ScenarioBrowse {
		for range e.cfg.PageViews {
			sent := clock.next()
			r := e.c.Page(reqCtx, item, user)
			e.rec.request(r.Outcome, r.Code, time.Since(sent))
			if !sleepCtx(issueCtx, e.think()) {
				return
			}
		}
	}
	for b := range e.cfg.BuysPerUser {
		if b > 0 && issueCtx.Err() != nil {
			return
		}
		e.buy(issueCtx, reqCtx, item, user, "rq-"+e.userPrefix+n+"-"+strconv.Itoa(b+1), clock)
	}
}

// buy makes one purchase: sends it, retries it with the same request_id
// while the answer says to and the scenario retries, records the result, and
// sometimes replays a confirmed one to check idempotency.
func (e *engine) buy(issueCtx, reqCtx context.Context, item, user, requestID string, clock *sendClock) {
	res := purchaseResult{item: item, user: user, requestID: requestID, quantity: int64(e.cfg.Quantity)}
	var start time.Time
	maybe := false
	for attempt := 1; ; attempt++ {
		sent := clock.next()
		if attempt == 1 {
			start = sent
		}
		r, order := e.c.Purchase(reqCtx, client.Any, item, user, requestID, e.cfg.Quantity)
		e.rec.request(r.Outcome, r.Code, time.Since(sent))
		res.attempts, res.final, res.order = attempt, r.Outcome, order
		maybe = maybe || r.Outcome.Unknown()
		if !e.cfg.Scenario.retries() || !r.Outcome.Retryable() || attempt >= e.cfg.MaxAttempts {
			break
		}
		if !sleepCtx(issueCtx, e.cfg.Backoff.DelayAfter(attempt-1, r.RetryAfter, e.rnd)) {
			break
		}
	}
	res.unknown = maybe && !res.final.OK()
	res.latency = time.Since(start)
	e.rec.purchase(res)

	if !res.final.OK() || e.cfg.ReplayFraction == 0 || e.rnd() >= e.cfg.ReplayFraction || issueCtx.Err() != nil {
		return
	}
	sent := time.Now()
	r, order := e.c.Purchase(reqCtx, client.Any, item, user, requestID, e.cfg.Quantity)
	e.rec.request(r.Outcome, r.Code, time.Since(sent))
	e.rec.replay(replayOf(item, user, requestID, res.order.OrderID, r, order))
}

// replayOf records the answer r (with order) to the replay of a confirmed
// purchase whose first confirmation carried orderID.
func replayOf(item, user, requestID, orderID string, r client.Reply, order client.OrderView) client.Replay {
	rp := client.Replay{ItemID: item, UserID: user, RequestID: requestID, OrderID: orderID, Target: r.Target,
		Outcome: r.Outcome, Status: r.Status, Code: r.Code, Got: order}
	if r.Err != nil {
		rp.Err = r.Err.Error()
	}
	return rp
}
