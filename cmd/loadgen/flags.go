package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/flashstock/flashstock/loadgen"
)

// usageError is a problem with the flags or environment: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errHelp is parseFlags' answer to -h: usage was printed, nothing to run.
var errHelp = errors.New("help requested")

// envPrefix starts the environment variable of every flag.
const envPrefix = "LOADGEN_"

// options is the parsed command line.
type options struct {
	cfg         loadgen.Config
	out         string
	logLevel    slog.Level
	verifyMySQL []string
	orderTables int
}

// envName returns the environment variable of flag name: LOADGEN_<NAME>.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseFlags reads the flags, each defaulting to its LOADGEN_<NAME>
// variable, into a validated config.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	cfg := loadgen.DefaultConfig()
	var (
		opts           = options{}
		scenario       = string(cfg.Scenario)
		targets        = strings.Join(cfg.Targets, ",")
		authSecretFile string
		adminTokenFile string
		verifyMySQL    string
		logLevel       = "info"
	)
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: loadgen [flags]\n\nSends purchase load to Flashstock, reports latency and outcomes, verifies the books.\n"+
			"Every flag can be set as %s<NAME> in the environment (e.g. %s).\n\nFlags:\n", envPrefix, envName("auth-secret"))
		fs.PrintDefaults()
	}

	fs.StringVar(&scenario, "scenario", scenario, "crowd | hot | many | browse")
	fs.StringVar(&targets, "targets", targets, "comma-separated base URLs, used round-robin (or one load balancer URL)")
	fs.StringVar(&cfg.AuthSecret, "auth-secret", "", "HS256 secret: shoppers send minted JWTs (default: X-User-ID header)")
	fs.StringVar(&authSecretFile, "auth-secret-file", "", "read --auth-secret from this file")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", cfg.TokenTTL, "lifetime of minted JWTs")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "admin bearer token (item creation, verification reads)")
	fs.StringVar(&adminTokenFile, "admin-token-file", "", "read --admin-token from this file")

	fs.BoolVar(&cfg.Create, "create", cfg.Create, "create the items at start (an existing item is used as it is)")
	fs.IntVar(&cfg.Items, "items", cfg.Items, "number of items, IDs <item-prefix>1..N")
	fs.StringVar(&cfg.ItemPrefix, "item-prefix", cfg.ItemPrefix, "item ID prefix")
	fs.Int64Var(&cfg.Stock, "stock", cfg.Stock, "stock of each created item")
	fs.IntVar(&cfg.PerUserLimit, "per-user-limit", cfg.PerUserLimit, "per_user_limit of each created item")
	fs.DurationVar(&cfg.StartDelay, "start-delay", cfg.StartDelay, "created items go on sale this long after the start")
	fs.DurationVar(&cfg.SaleDuration, "sale-duration", cfg.SaleDuration, "created items stay on sale this long")

	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "open loop: arrivals per second (clears --workers unless it is set too)")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "closed loop: concurrent workers")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "open loop: shoppers in flight before arrivals are dropped")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "maximum arrivals (shoppers, or purchases in hot/many)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "maximum time for arrivals and retries")
	fs.DurationVar(&cfg.ArrivalWindow, "arrival-window", cfg.ArrivalWindow, "crowd: the shoppers arrive spread over this time")
	fs.IntVar(&cfg.Quantity, "quantity", cfg.Quantity, "units per purchase")
	fs.IntVar(&cfg.BuysPerUser, "buys-per-user", cfg.BuysPerUser, "purchases per shopper, each with its own request_id")
	fs.IntVar(&cfg.PageViews, "page-views", cfg.PageViews, "browse: item page views before buying")
	fs.DurationVar(&cfg.Think, "think", cfg.Think, "browse: mean pause between page views")
	fs.Float64Var(&cfg.ReplayFraction, "replay", cfg.ReplayFraction, "fraction of confirmed purchases re-sent with the same request_id")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", cfg.UserPrefix, "user ID prefix (default: random per run)")

	fs.IntVar(&cfg.MaxAttempts, "max-attempts", cfg.MaxAttempts, "crowd/browse: sends per purchase, first included")
	fs.DurationVar(&cfg.Backoff.Base, "backoff-base", cfg.Backoff.Base, "first retry delay (exponential, jittered, at least Retry-After)")
	fs.DurationVar(&cfg.Backoff.Max, "backoff-max", cfg.Backoff.Max, "cap on the exponential retry delay")
	fs.DurationVar(&cfg.RequestTimeout, "timeout", cfg.RequestTimeout, "timeout of every HTTP request")

	fs.DurationVar(&cfg.ProgressInterval, "progress", cfg.ProgressInterval, "progress line period on stderr (0: off)")
	fs.StringVar(&opts.out, "out", "", "write the JSON report to this file")
	fs.StringVar(&logLevel, "log-level", logLevel, "debug | info | warn | error")

	fs.BoolVar(&cfg.Verify, "verify", cfg.Verify, "verify the server's books after the load")
	fs.IntVar(&cfg.VerifyOrders, "verify-orders", cfg.VerifyOrders, "confirmed orders to read back with GET /v1/orders/{id}")
	fs.DurationVar(&cfg.VerifyTimeout, "verify-timeout", cfg.VerifyTimeout, "time bound of the verification")
	fs.StringVar(&verifyMySQL, "verify-mysql", "", "comma-separated MySQL DSNs of the order shards (as given to the nodes' --orders-dsn): check every confirmed order is stored exactly once")
	fs.IntVar(&opts.orderTables, "order-tables", 16, "order tables per MySQL database (as the nodes' --order-tables)")

	// The environment first, so that the command line wins.
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if len(envErrs) > 0 {
		return options{}, &usageError{err: errors.Join(envErrs...)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, errHelp
		}
		return options{}, &usageError{err: err}
	}
	if fs.NArg() > 0 {
		return options{}, usagef("unexpected arguments: %q", fs.Args())
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts.verifyMySQL = splitList(verifyMySQL)
	cfg.Scenario = loadgen.Scenario(scenario)
	cfg.Targets = splitList(targets)
	if err := fromFile(&cfg.AuthSecret, authSecretFile, "auth-secret", set); err != nil {
		return options{}, err
	}
	if err := fromFile(&cfg.AdminToken, adminTokenFile, "admin-token", set); err != nil {
		return options{}, err
	}
	// One of --rate and --workers picks the loop; the default is closed
	// loop, so --rate alone (or the crowd) clears the default workers.
	if !set["workers"] && (cfg.Rate > 0 || cfg.Scenario == loadgen.ScenarioCrowd) {
		cfg.Workers = 0
	}
	if err := opts.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return options{}, usagef("--log-level %q: %v", logLevel, err)
	}
	if err := cfg.Validate(); err != nil {
		return options{}, &usageError{err: err}
	}
	opts.cfg = cfg
	return opts, nil
}

// fromFile sets *dst from the file path, if given; giving both the value
// and its file is an error.
func fromFile(dst *string, path, name string, set map[string]bool) error {
	if path == "" {
		return nil
	}
	if set[name] {
		return usagef("--%s and --%s-file: give one", name, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("--%s-file: %v", name, err)
	}
	*dst = strings.TrimSpace(string(b))
	if *dst == "" {
		return usagef("--%s-file %s: empty", name, path)
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
