// Command loadgen is the flash crowd in a box: it sends purchase load to
// Flashstock nodes (open loop at a fixed arrival rate, or closed loop with N
// workers), prints a progress line every second and a report at the end, and
// then verifies the server's books against what the shoppers were told.
//
// Usage:
//
//	loadgen --scenario crowd --requests 20000 --arrival-window 5s \
//	        --targets http://127.0.0.1:8080 --admin-token-file /run/secrets/admin \
//	        --create --stock 1000 --out report.json
//
// Every flag can also be set in the environment as LOADGEN_<NAME> (for
// example LOADGEN_AUTH_SECRET); a flag on the command line wins. Exit status:
// 0 when the run passed verification (or was not verified), 1 when it failed
// or could not be made, 2 on bad flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/client/storecheck"
	"github.com/flashstock/flashstock/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // ends when ctx does; stop() below ends it at the latest
		<-ctx.Done()
		stop() // restore default handling: a second Ctrl-C kills at once
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// errVerifyFailed is run's answer when the load ran but the books did not balance.
var errVerifyFailed = errors.New("verification failed")

// exitCode reports err on stderr and maps it to the exit status.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	case errors.Is(err, errVerifyFailed):
		return 1 // the report already says why
	default:
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
}

// run parses args (and LOADGEN_* variables through getenv), runs the load,
// writes the report table to stdout (and JSON to --out) and the progress and
// logs to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: opts.logLevel}))
	deps := loadgen.Deps{Logger: logger, Progress: stderr}
	if len(opts.verifyMySQL) > 0 {
		octx, cancel := context.WithTimeout(ctx, 15*time.Second)
		store, err := storecheck.Open(octx, opts.verifyMySQL, opts.orderTables)
		cancel()
		if err != nil {
			return fmt.Errorf("--verify-mysql: %w", err)
		}
		defer store.Close()
		deps.OrderStore = store
	}
	rep, err := loadgen.Run(ctx, opts.cfg, deps)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if opts.out != "" {
		if err := writeJSON(opts.out, rep); err != nil {
			return err
		}
	}
	if !rep.Passed() {
		return errVerifyFailed
	}
	return nil
}

// writeJSON writes the report to path.
func writeJSON(path string, rep *loadgen.Report) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write report: %w", cerr)
		}
	}()
	if err := rep.WriteJSON(f); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
