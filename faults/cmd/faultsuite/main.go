// Command faultsuite runs Flashstock's fault-injection suite (package
// faults) and prints a table of faults x invariants.
//
//	go run ./faults/cmd/faultsuite [flags]
//
// It needs Linux, root, iproute2, iptables (or nftables) and MariaDB. It
// exits 0 if every fault kept every invariant, 1 on a violation or a
// scenario that could not run, 2 on a bad flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/faults"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultsuite:", err)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	cfg := faults.DefaultConfig()
	var list, doc string
	fs := flag.NewFlagSet("faultsuite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the sale in each fault scenario (faults repeat in cycles on long runs)")
	fs.StringVar(&list, "faults", "", "comma-separated faults to run (default all): "+strings.Join(faults.Faults(), ", "))
	fs.DurationVar(&cfg.Hold, "hold", 0, "how long each fault lasts (default: per fault, see the package doc)")
	fs.IntVar(&cfg.Rate, "rate", cfg.Rate, "hot-item purchases per second")
	fs.IntVar(&cfg.Shoppers, "shoppers", cfg.Shoppers, "concurrent hot-item shoppers")
	fs.StringVar(&cfg.OutDir, "out", "", "directory for histories, node logs and reports (default .tmp/faults/<time> in the module)")
	fs.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "directory for the lock, node binary, MariaDB and node data")
	fs.StringVar(&cfg.NodeBin, "node-bin", "", "prebuilt node binary (default: go build ./cmd/node)")
	fs.StringVar(&cfg.Delay, "delay", cfg.Delay, "how to delay and drop packets: auto, netem or nfqueue")
	fs.StringVar(&cfg.Subnet, "subnet", cfg.Subnet, "first three octets of the private /24 the cluster runs in")
	fs.StringVar(&doc, "doc", "docs/reliability.md", "document whose generated section receives the table (empty: none)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if list != "" {
		cfg.Faults = strings.Split(list, ",")
	}
	cfg.Log = stderr
	if err := cfg.Validate(); err != nil {
		return 2, err
	}
	root, err := moduleRoot()
	if err != nil {
		return 1, err
	}
	cfg.Root = root
	if cfg.OutDir == "" {
		cfg.OutDir = filepath.Join(root, ".tmp", "faults", time.Now().Format("20060102-150405"))
	}
	rep, err := faults.Run(ctx, cfg)
	if rep != nil {
		fmt.Fprintln(stdout, rep.Markdown())
		fmt.Fprintf(stdout, "histories, node logs and reports: %s\n", rep.OutDir)
		if doc != "" && len(rep.Results) > 0 {
			if !filepath.IsAbs(doc) {
				doc = filepath.Join(root, doc)
			}
			if werr := rep.WriteDoc(doc); werr != nil {
				fmt.Fprintln(stderr, "faultsuite:", werr)
			} else {
				fmt.Fprintf(stdout, "table written to %s\n", doc)
			}
		}
	}
	if err != nil {
		return 1, err
	}
	if rep.Failed() {
		return 1, errors.New("invariant violated or scenario failed; see the table")
	}
	return 0, nil
}

// moduleRoot is the nearest directory above the working directory with
// go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + wd + "; run from the Flashstock module")
		}
	}
}
