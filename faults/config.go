package faults

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Limits on the configuration.
const (
	durationMin      = 15 * time.Second
	durationMax      = 2 * time.Hour
	rateMax          = 5000
	shoppersMax      = 512
	nodes            = 3
	shards           = 4
	heartbeatTimeout = 400 * time.Millisecond
	deadNodeGrace    = 5 * time.Second
	requestTimeout   = 3 * time.Second
)

// Config configures a suite run.
type Config struct {
	// Root is the module root (the directory holding go.mod); it is found
	// from the working directory when empty.
	Root string
	// Duration is the length of the sale in each fault scenario; on long
	// runs the fault is injected and healed again in cycles.
	Duration time.Duration
	// Faults names the scenarios to run (Faults() lists them); empty runs
	// every one.
	Faults []string
	// Hold overrides how long each fault lasts (the SIGSTOP pause, the
	// partition, the time a killed node or MariaDB stays down); 0 uses
	// each fault's default, a quarter of Duration within 8-15 s (5 s for
	// the pause, half of Duration for delay and loss).
	Hold time.Duration
	// Rate is the hot item's purchases per second across all shoppers.
	Rate int
	// Shoppers is the number of concurrent hot-item shoppers.
	Shoppers int
	// OutDir receives each scenario's history, node logs and report.
	OutDir string
	// StateDir holds the lock, the node binary, MariaDB's data and the
	// nodes' data directories; a run cleans up what an interrupted earlier
	// run left there.
	StateDir string
	// NodeBin is a prebuilt node binary; empty builds ./cmd/node.
	NodeBin string
	// Prefix names the namespaces (<prefix>-n0, <prefix>-hub).
	Prefix string
	// Subnet is the first three octets of the private /24.
	Subnet string
	// Delay picks how packet delay and loss are made: "netem" (tc),
	// "nfqueue" (the userspace Delayer) or "auto" (netem if the kernel has
	// it).
	Delay string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultConfig returns the configuration of the CI run: every fault, a
// short sale each, the whole suite well under ten minutes on two cores.
func DefaultConfig() Config {
	return Config{
		Duration: 24 * time.Second,
		Rate:     250,
		Shoppers: 24,
		StateDir: "/tmp/flashstock-faults",
		Prefix:   "fs",
		Subnet:   "10.77.0",
		Delay:    "auto",
	}
}

var (
	prefixRe = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
	subnetRe = regexp.MustCompile(`^(10|172|192)\.[0-9]{1,3}\.[0-9]{1,3}$`)
)

// ErrInvalidConfig wraps every Validate failure.
var ErrInvalidConfig = errors.New("faults: invalid config")

// Validate reports the first invalid field.
func (c Config) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Duration < durationMin || c.Duration > durationMax:
		return invalid("duration %v; want %v..%v", c.Duration, durationMin, durationMax)
	case c.Hold < 0 || c.Hold > c.Duration:
		return invalid("hold %v; want 0 (default) up to the duration %v", c.Hold, c.Duration)
	case c.Rate < 10 || c.Rate > rateMax:
		return invalid("rate %d; want 10..%d", c.Rate, rateMax)
	case c.Shoppers < 1 || c.Shoppers > shoppersMax:
		return invalid("shoppers %d; want 1..%d", c.Shoppers, shoppersMax)
	case c.StateDir == "":
		return invalid("no state dir")
	case !prefixRe.MatchString(c.Prefix):
		return invalid("prefix %q; want 1-6 lower-case letters and digits", c.Prefix)
	case !subnetRe.MatchString(c.Subnet):
		return invalid("subnet %q; want the first three octets of a private /24, e.g. 10.77.0", c.Subnet)
	case c.Delay != "auto" && c.Delay != "netem" && c.Delay != "nfqueue":
		return invalid("delay %q; want auto, netem or nfqueue", c.Delay)
	}
	for _, f := range c.Faults {
		if _, ok := faultByName(f); !ok {
			return invalid("unknown fault %q; want one of %v", f, Faults())
		}
	}
	return nil
}
