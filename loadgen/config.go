package loadgen

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/flashstock/flashstock/internal/backoff"
)

// Scenario names a shopper behaviour.
type Scenario string

// The scenarios. Crowd and browse shoppers retry what the server asks them to
// retry (with the same request_id); hot and many send each purchase once.
const (
	// ScenarioCrowd is the flash crowd: Requests shoppers arrive spread over
	// ArrivalWindow, each buys once (BuysPerUser times) and retries 429/503
	// and unknown outcomes with backoff. Open loop only.
	ScenarioCrowd Scenario = "crowd"
	// ScenarioHot hammers one item, a new user per request.
	ScenarioHot Scenario = "hot"
	// ScenarioMany spreads purchases uniformly over Items items.
	ScenarioMany Scenario = "many"
	// ScenarioBrowse shoppers view the item page PageViews times, thinking
	// between views, then buy (and retry like the crowd).
	ScenarioBrowse Scenario = "browse"
)

// Scenarios lists the valid scenarios.
var Scenarios = []Scenario{ScenarioCrowd, ScenarioHot, ScenarioMany, ScenarioBrowse}

// The server's rule for item, user and request IDs: 1 to idLenMax characters
// of idChars. userPrefixMax leaves room in request IDs for "rq-", the
// arrival number (up to 19 digits), "-" and the buy number (up to 4).
const (
	idChars       = "A-Z a-z 0-9 _ . : -"
	idLenMax      = 64
	userPrefixMax = idLenMax - len("rq-") - 19 - len("-") - 4
)

// validIDPart reports whether s uses only the characters of an ID.
func validIDPart(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-') {
			return false
		}
	}
	return true
}

// retries reports whether shoppers of s retry a purchase.
func (s Scenario) retries() bool { return s == ScenarioCrowd || s == ScenarioBrowse }

// Limits on the configuration, so that every run has bounded memory.
const (
	workersMax     = 100_000
	maxInFlightMax = 1_000_000
	itemsMax       = 100_000
	attemptsMax    = 100
	pageViewsMax   = 1_000
	buysMax        = 1_000
)

// Config is one load run. Build it from DefaultConfig (or LoopbackConfig in
// tests) and check it with Validate; Run validates it again.
type Config struct {
	Scenario Scenario
	// Targets are base URLs (scheme://host:port), used round-robin.
	Targets []string

	// AuthSecret, when set, makes shoppers authenticate with HS256 JWTs
	// signed with it; otherwise they send X-User-ID.
	AuthSecret string
	// TokenTTL is the lifetime of minted JWTs.
	TokenTTL time.Duration
	// AdminToken authorises item creation and verification reads.
	AdminToken string

	// Create makes the items at start (an existing item is fine).
	Create bool
	// Items is the number of items; their IDs are ItemPrefix + "1".."Items".
	Items        int
	ItemPrefix   string
	Stock        int64         // stock of each created item
	PerUserLimit int           // per_user_limit of each created item
	StartDelay   time.Duration // created items go on sale this long after the run starts
	SaleDuration time.Duration // and stay on sale this long

	// Rate > 0 runs open loop at this many arrivals per second; Workers > 0
	// runs closed loop. The crowd scenario uses neither: its rate is
	// Requests/ArrivalWindow.
	Rate    float64
	Workers int
	// MaxInFlight bounds concurrent shoppers in open loop; an arrival that
	// finds the bound reached is counted as dropped, never queued.
	MaxInFlight int
	// Requests bounds the arrivals (shoppers in crowd and browse, purchases
	// in hot and many, dropped ones included); Duration bounds the time in
	// which arrivals start. The run ends at whichever comes first, plus at
	// most RequestTimeout for requests in flight.
	Requests int64
	Duration time.Duration
	// ArrivalWindow is the time over which the crowd arrives.
	ArrivalWindow time.Duration

	Quantity    int           // units per purchase
	BuysPerUser int           // purchases per shopper, each with its own request_id
	PageViews   int           // item page views before buying (browse)
	Think       time.Duration // mean pause between page views (browse), jittered ±50%
	// ReplayFraction of confirmed purchases are sent again with the same
	// request_id; the server must answer with the same order.
	ReplayFraction float64
	// UserPrefix starts every user and request ID; empty picks a random one
	// per run, so runs never share users.
	UserPrefix string

	// MaxAttempts bounds the sends of one purchase (first try included) in
	// scenarios that retry.
	MaxAttempts int
	// Backoff is the retry schedule of a shopper told to come back later
	// (429, 503) or left without an answer: jittered, exponential, capped,
	// and never sooner than the server's Retry-After.
	Backoff backoff.Policy
	// RequestTimeout bounds every HTTP call.
	RequestTimeout time.Duration

	// ProgressInterval is the period of the progress line; 0 disables it.
	ProgressInterval time.Duration

	// Verify checks the server's books against what the run saw.
	Verify bool
	// VerifyOrders is how many confirmed orders to read back with GET /v1/orders/{id}.
	VerifyOrders int
	// VerifyTimeout bounds the verification phase, including waiting for
	// the server's counters (and an OrderStore) to catch up.
	VerifyTimeout time.Duration
}

// DefaultConfig returns a closed-loop hot-item run against a local node.
func DefaultConfig() Config {
	return Config{
		Scenario:         ScenarioHot,
		Targets:          []string{"http://127.0.0.1:8080"},
		TokenTTL:         time.Hour,
		Items:            1,
		ItemPrefix:       "item-",
		Stock:            1000,
		PerUserLimit:     1,
		SaleDuration:     time.Hour,
		Workers:          32,
		MaxInFlight:      1024,
		Requests:         10_000,
		Duration:         30 * time.Second,
		ArrivalWindow:    5 * time.Second,
		Quantity:         1,
		BuysPerUser:      1,
		PageViews:        3,
		Think:            200 * time.Millisecond,
		ReplayFraction:   0.02,
		MaxAttempts:      8,
		Backoff:          backoff.Policy{Base: 50 * time.Millisecond, Max: 2 * time.Second},
		RequestTimeout:   5 * time.Second,
		ProgressInterval: time.Second,
		Verify:           true,
		VerifyOrders:     20,
		VerifyTimeout:    30 * time.Second,
	}
}

// LoopbackConfig returns a small, fast run against targets on this machine,
// for tests: short timeouts and backoff, no progress line.
func LoopbackConfig(targets ...string) Config {
	c := DefaultConfig()
	c.Targets = targets
	c.Workers = 4
	c.MaxInFlight = 64
	c.Requests = 100
	c.Duration = 5 * time.Second
	c.ArrivalWindow = 200 * time.Millisecond
	c.Think = 5 * time.Millisecond
	c.Backoff = backoff.Policy{Base: 2 * time.Millisecond, Max: 20 * time.Millisecond}
	c.RequestTimeout = time.Second
	c.ProgressInterval = 0
	c.VerifyTimeout = 2 * time.Second
	return c
}

// ItemIDs returns the IDs of the run's items.
func (c Config) ItemIDs() []string {
	ids := make([]string, c.Items)
	for i := range ids {
		ids[i] = c.ItemPrefix + strconv.Itoa(i+1)
	}
	return ids
}

// openLoop reports whether arrivals follow a schedule rather than workers.
func (c Config) openLoop() bool { return c.Workers == 0 }

// Validate reports every problem with c, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	known := false
	for _, s := range Scenarios {
		known = known || c.Scenario == s
	}
	if !known {
		bad("scenario %q: want one of %v", c.Scenario, Scenarios)
	}
	if len(c.Targets) == 0 {
		bad("targets: at least one URL is required")
	}
	for _, t := range c.Targets {
		if err := checkTarget(t); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AuthSecret != "" && c.TokenTTL <= 0 {
		bad("token TTL %v: must be positive", c.TokenTTL)
	}
	if c.Create && c.AdminToken == "" {
		bad("create: needs the admin token")
	}
	if c.Items < 1 || c.Items > itemsMax {
		bad("items %d: want 1..%d", c.Items, itemsMax)
	}
	if c.Scenario == ScenarioHot && c.Items != 1 {
		bad("items %d: the hot scenario targets exactly one item", c.Items)
	}
	if c.Scenario == ScenarioMany && c.Items < 2 {
		bad("items %d: the many scenario needs at least 2 items", c.Items)
	}
	if !validIDPart(c.ItemPrefix) || len(c.ItemPrefix)+len(strconv.Itoa(c.Items)) > idLenMax {
		bad("item prefix %q: want characters of %s, IDs at most %d long", c.ItemPrefix, idChars, idLenMax)
	}
	if c.Create && c.Stock < 1 {
		bad("stock %d: must be at least 1", c.Stock)
	}
	if c.Create && c.PerUserLimit < 1 {
		bad("per-user limit %d: must be at least 1", c.PerUserLimit)
	}
	if c.StartDelay < 0 || c.SaleDuration <= 0 {
		bad("sale window: start delay %v must be >= 0 and sale duration %v > 0", c.StartDelay, c.SaleDuration)
	}
	switch {
	case c.Rate < 0 || c.Workers < 0:
		bad("rate %v and workers %d: must not be negative", c.Rate, c.Workers)
	case c.Scenario == ScenarioCrowd && (c.Rate > 0 || c.Workers > 0):
		bad("crowd: arrivals follow the arrival window; set neither rate nor workers")
	case c.Scenario != ScenarioCrowd && (c.Rate > 0) == (c.Workers > 0):
		bad("rate %v, workers %d: set exactly one (open loop or closed loop)", c.Rate, c.Workers)
	case c.Workers > workersMax:
		bad("workers %d: at most %d", c.Workers, workersMax)
	}
	if c.openLoop() && (c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightMax) {
		bad("max in-flight %d: want 1..%d", c.MaxInFlight, maxInFlightMax)
	}
	if c.Requests < 1 {
		bad("requests %d: must be at least 1", c.Requests)
	}
	if c.Duration <= 0 {
		bad("duration %v: must be positive", c.Duration)
	}
	if c.Scenario == ScenarioCrowd && (c.ArrivalWindow <= 0 || c.ArrivalWindow > c.Duration) {
		bad("arrival window %v: must be positive and at most the duration %v", c.ArrivalWindow, c.Duration)
	}
	if c.Quantity < 1 {
		bad("quantity %d: must be at least 1", c.Quantity)
	}
	if c.BuysPerUser < 1 || c.BuysPerUser > buysMax {
		bad("buys per user %d: want 1..%d", c.BuysPerUser, buysMax)
	}
	if c.PageViews < 0 || c.PageViews > pageViewsMax || (c.Scenario == ScenarioBrowse && c.PageViews < 1) {
		bad("page views %d: want 1..%d for browse, 0..%d otherwise", c.PageViews, pageViewsMax, pageViewsMax)
	}
	if c.Think < 0 {
		bad("think %v: must not be negative", c.Think)
	}
	if c.ReplayFraction < 0 || c.ReplayFraction > 1 {
		bad("replay fraction %v: want 0..1", c.ReplayFraction)
	}
	// Request IDs are the longest: "rq-" + user ID + "-" + buy number.
	if !validIDPart(c.UserPrefix) || len(c.UserPrefix) > userPrefixMax {
		bad("user prefix %q: want at most %d characters of %s", c.UserPrefix, userPrefixMax, idChars)
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > attemptsMax {
		bad("max attempts %d: want 1..%d", c.MaxAttempts, attemptsMax)
	}
	if err := c.Backoff.Validate(); err != nil {
		bad("backoff base %v, max %v: %w", c.Backoff.Base, c.Backoff.Max, err)
	}
	if c.RequestTimeout <= 0 {
		bad("request timeout %v: must be positive", c.RequestTimeout)
	}
	if c.ProgressInterval < 0 {
		bad("progress interval %v: must not be negative", c.ProgressInterval)
	}
	if c.VerifyOrders < 0 {
		bad("verify orders %d: must not be negative", c.VerifyOrders)
	}
	if c.Verify && c.VerifyTimeout <= 0 {
		bad("verify timeout %v: must be positive", c.VerifyTimeout)
	}
	return errors.Join(errs...)
}

// checkTarget accepts an absolute http(s) URL with a host and no query.
func checkTarget(t string) error {
	u, err := url.Parse(t)
	if err != nil {
		return fmt.Errorf("target %q: %w", t, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("target %q: want http(s)://host[:port][/path]", t)
	}
	return nil
}

// echo is the configuration as reported, without secrets.
func (c Config) echo() map[string]any {
	mode := "closed"
	if c.openLoop() {
		mode = "open"
	}
	return map[string]any{
		"scenario":          string(c.Scenario),
		"mode":              mode,
		"targets":           c.Targets,
		"auth":              map[bool]string{true: "jwt", false: "x-user-id"}[c.AuthSecret != ""],
		"create":            c.Create,
		"items":             c.Items,
		"item_prefix":       c.ItemPrefix,
		"stock":             c.Stock,
		"per_user_limit":    c.PerUserLimit,
		"start_delay":       c.StartDelay.String(),
		"sale_duration":     c.SaleDuration.String(),
		"rate":              c.Rate,
		"workers":           c.Workers,
		"max_inflight":      c.MaxInFlight,
		"requests":          c.Requests,
		"duration":          c.Duration.String(),
		"arrival_window":    c.ArrivalWindow.String(),
		"quantity":          c.Quantity,
		"buys_per_user":     c.BuysPerUser,
		"page_views":        c.PageViews,
		"think":             c.Think.String(),
		"replay_fraction":   c.ReplayFraction,
		"user_prefix":       c.UserPrefix,
		"max_attempts":      c.MaxAttempts,
		"backoff_base":      c.Backoff.Base.String(),
		"backoff_max":       c.Backoff.Max.String(),
		"request_timeout":   c.RequestTimeout.String(),
		"verify":            c.Verify,
		"verify_orders":     c.VerifyOrders,
		"verify_timeout":    c.VerifyTimeout.String(),
		"progress_interval": c.ProgressInterval.String(),
	}
}
