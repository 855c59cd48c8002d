// Command node runs a Flashstock node: the HTTP API, the item actors, the
// Raft shard groups, gossip membership and the order flusher.
//
//	node [flags]                 serve (see README.md for every flag)
//	node status --addr URL       print the cluster status as a table
//	node reconcile --addr URL    compare sales in Raft with the order store
//	node snapshot save|restore   back up every shard to one file, restore it
//	node tls ca|cert ...         make the cluster CA and node certificates
//	node gossip-key [--out F]    make a gossip encryption key
//	node version                 print the version
//
// Every flag can also be set from the environment as SECKILL_<FLAG>
// (SECKILL_DATA_DIR for --data-dir); secrets also from a file named by
// SECKILL_<FLAG>_FILE (Docker Swarm secrets). Flags win over the
// environment. Bad flags print one line and exit with code 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks errors in the command line: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// gcPercent is the default GOGC: the hot path allocates short-lived
// request objects, and a node has memory to spare, so collecting less
// often buys throughput. GOGC in the environment overrides it.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is main without the process: tests call it with their own arguments,
// environment and output, and end it by cancelling ctx.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := dispatch(ctx, args, getenv, stdout, stderr); !errors.Is(err, errHelp) {
		return err
	}
	return nil
}

// usage is what `node help` prints.
const usage = `usage: node [flags]               run a node (node -h lists the flags)
       node status [flags]        the cluster as one node sees it (--json for the document)
       node reconcile [flags]     units sold in Raft against the order store
       node snapshot save|restore|prune-store|info [flags]
                                  back the cluster's state up to one file, restore it
       node tls ca|cert [flags]   make the cluster's CA and node certificates
       node gossip-key [flags]    make a gossip encryption key
       node version               the version
       node help                  this

Every subcommand takes -h. status, reconcile and snapshot find the node and its admin
token as the node does: SECKILL_HTTP_ADDR, SECKILL_ADMIN_TOKEN_FILE,
SECKILL_DATA_DIR.
`

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "help":
			fmt.Fprint(stdout, usage)
			return nil
		case "version":
			fmt.Fprintln(stdout, version)
			return nil
		case "status":
			return runStatus(ctx, args[1:], getenv, stdout, stderr)
		case "reconcile":
			return runReconcile(ctx, args[1:], getenv, stdout, stderr)
		case "snapshot":
			return runSnapshot(ctx, args[1:], getenv, stdout, stderr)
		case "tls":
			return runTLS(args[1:], stdout, stderr)
		case "gossip-key":
			return runGossipKey(args[1:], stdout)
		}
	}
	cfg, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdout, stderr)
}

// serve runs a node until ctx ends (SIGTERM, SIGINT), then drains it.
func serve(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	node.Version = version
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	// SIGHUP re-reads the cluster's TLS files and gossip key file. It is
	// caught from the start: its default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	n, err := node.Start(ctx, cfg, openMySQL, stdout, log)
	if err != nil {
		return err
	}
	if err := n.ExportRaftMetrics(); err != nil { // one node per process: go-metrics is global
		log.Warn("raft metrics not exported", "err", err)
	}
	stopReload := make(chan struct{})
	reloadDone := make(chan struct{})
	go func() {
		defer close(reloadDone)
		for {
			select {
			case <-hup:
				if err := n.Reload(); err == nil {
					log.Info("SIGHUP: cluster keys and certificates checked")
				}
			case <-stopReload:
				return
			}
		}
	}()
	defer func() { close(stopReload); <-reloadDone }()
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, n.AdminToken(), log)
		if err != nil {
			return errors.Join(err, n.Shutdown(context.Background()))
		}
		defer stopDebug()
	}
	runErr := n.Wait(ctx)
	if runErr == nil && cfg.ShutdownDelay > 0 {
		n.BeginDrain() // unready: the load balancer moves on while this node still answers
		log.Info("draining after the shutdown delay", "delay", cfg.ShutdownDelay)
		time.Sleep(cfg.ShutdownDelay)
	}
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	// The drain is bounded by dctx; a step that overstays it anyway (a bug,
	// a stuck disk) must not keep the process alive forever. Exiting then
	// is a crash as far as the cluster is concerned: everything confirmed
	// is already in the Raft log on disk, and the peers take over.
	done := make(chan error, 1)
	go func() { done <- n.Shutdown(dctx) }()
	select {
	case err := <-done:
		return errors.Join(runErr, err)
	case <-time.After(cfg.DrainTimeout + drainGrace):
		return errors.Join(runErr, fmt.Errorf("drain did not finish within %s; exiting", cfg.DrainTimeout+drainGrace))
	}
}

// drainGrace is how long past --drain-timeout the process waits for its
// drain before it exits regardless.
const drainGrace = 5 * time.Second

func newLogger(level, format string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
