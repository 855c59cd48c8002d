package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/clock"
)

// Fault timing.
const (
	pauseFor   = 5 * time.Second // SIGSTOP .. SIGCONT
	holdMin    = 8 * time.Second // well past --dead-node-grace plus failure detection
	holdMax    = 15 * time.Second
	warmupMin  = 3 * time.Second
	warmupMax  = 10 * time.Second
	tailMin    = 5 * time.Second
	leaderWait = 15 * time.Second
)

// faultSpec is one scenario's nemesis.
type faultSpec struct {
	name  string
	about string
	// hold is how long the fault lasts in a sale of duration d.
	hold func(d time.Duration) time.Duration
	// cycle injects the fault, keeps it for hold and heals it, recording
	// both in the history. An error means it could not heal.
	cycle func(ctx context.Context, s *scenario, hold time.Duration) error
	// disks gives each node a file system and a blkio cgroup of its own
	// (disk.go), for the disk faults.
	disks bool
	// payWindow runs the nodes with this --payment-window: the shoppers
	// pay half of their orders, the rest expire and their units are sold
	// again. 0: none, orders are final when confirmed.
	payWindow time.Duration
}

// onLeader makes a cycle that waits for the leader of the hot item's shard
// and runs f with it.
func onLeader(f func(ctx context.Context, s *scenario, leader int, hold time.Duration) error) func(context.Context, *scenario, time.Duration) error {
	return func(ctx context.Context, s *scenario, hold time.Duration) error {
		l, err := s.c.waitLeader(ctx, s.w.hot.ID, leaderWait)
		if err != nil {
			return err
		}
		return f(ctx, s, l, hold)
	}
}

func holdQuarter(d time.Duration) time.Duration { return min(max(d/4, holdMin), holdMax) }
func holdHalf(d time.Duration) time.Duration    { return min(max(d/2, holdMin), 2*holdMax) }

var faultList = []faultSpec{
	{
		name:      "kill-leader",
		about:     fmt.Sprintf("SIGKILL the leader of the hot item's shard; restart it on its data dir after the hold; a %v payment window", payWindowShort),
		hold:      holdQuarter,
		payWindow: payWindowShort,
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			return s.killRestart(ctx, l, "leader", hold)
		}),
	},
	{
		name:  "kill-follower",
		about: "SIGKILL a follower of the hot item's shard; restart it after the hold",
		hold:  holdQuarter,
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			return s.killRestart(ctx, s.follower(l), "follower", hold)
		}),
	},
	{
		name:  "pause-leader",
		about: "SIGSTOP the leader of the hot item's shard for 5 s, then SIGCONT",
		hold:  func(time.Duration) time.Duration { return pauseFor },
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			t := time.Now()
			if err := s.c.signal(l, syscall.SIGSTOP); err != nil {
				return err
			}
			s.h.Nemesis("inject", fmt.Sprintf("SIGSTOP n%d (leader)", l), t)
			s.note("paused n%d (leader) for %v", l, hold)
			_ = clock.Sleep(ctx, hold)
			t = time.Now()
			err := s.c.signal(l, syscall.SIGCONT)
			s.h.Nemesis("heal", fmt.Sprintf("SIGCONT n%d", l), t)
			return err
		}),
	},
	{
		name:  "partition-leader",
		about: "drop all traffic between the hot shard's leader and the other nodes (shoppers and MariaDB still reach it); heal",
		hold:  holdQuarter,
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			return s.isolate(ctx, l, "leader", 0, hold)
		}),
	},
	{
		name:  "raft-cut-leader",
		about: "drop only Raft traffic (TCP port 7000) between the hot shard's leader and the other nodes: gossip and actor messages still flow, so the cut node looks alive; heal",
		hold:  holdQuarter,
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			return s.isolate(ctx, l, "leader", raftPort, hold)
		}),
	},
	{
		name:  "split-1-2",
		about: "split the nodes 1 | 2 with a follower alone (the leader keeps its majority); heal",
		hold:  holdQuarter,
		cycle: onLeader(func(ctx context.Context, s *scenario, l int, hold time.Duration) error {
			return s.isolate(ctx, s.follower(l), "follower", 0, hold)
		}),
	},
	{
		name:  "delay-loss",
		about: "delay 50 ms ± 20 ms and drop 5 % of every packet every node sends (tc netem, or the NFQUEUE delayer); heal",
		hold:  holdHalf,
		cycle: func(ctx context.Context, s *scenario, hold time.Duration) error {
			t := time.Now()
			d, err := s.e.startDelay(ctx)
			if err != nil {
				return err
			}
			s.h.Nemesis("inject", fmt.Sprintf("delay %v±%v loss %d%% on every node (%s)", delayMean, delayJitter, delayLossPercent, s.e.delay), t)
			_ = clock.Sleep(ctx, hold)
			t = time.Now()
			hctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			packets, dropped, err := d.stop(hctx)
			s.h.Nemesis("heal", "delay removed", t)
			if s.e.delay == "nfqueue" {
				s.note("delayed %d packets for %v, dropped %d (%.1f%%), by the NFQUEUE delayer",
					packets, hold, dropped, 100*float64(dropped)/float64(max(packets, 1)))
			} else {
				s.note("tc netem delay %v %v loss %d%% for %v", delayMean, delayJitter, delayLossPercent, hold)
			}
			return err
		},
	},
	{
		name:  "mariadb-restart",
		about: "stop MariaDB mid-sale (scripts/mariadb.sh stop), start it again after the hold",
		hold:  holdQuarter,
		cycle: func(ctx context.Context, s *scenario, hold time.Duration) error {
			t := time.Now()
			if err := s.e.stopMariaDB(ctx); err != nil {
				return err
			}
			down := time.Now()
			s.h.Nemesis("inject", "MariaDB stopped", t)
			// Orders must wait in Raft meanwhile: watch the backlog grow.
			var backlog int64
			for until := time.Now().Add(hold); time.Now().Before(until) && ctx.Err() == nil; {
				backlog = max(backlog, s.c.unflushed(ctx))
				_ = clock.Sleep(ctx, min(time.Second, time.Until(until)))
			}
			t = time.Now()
			hctx, cancel := context.WithTimeout(context.Background(), mariadbTimeout)
			defer cancel()
			err := s.e.startMariaDB(hctx)
			s.h.Nemesis("heal", "MariaDB started", t)
			s.note("MariaDB down %v; up to %d confirmed orders waited in Raft for it", time.Since(down).Round(100*time.Millisecond), backlog)
			return err
		},
	},
	{
		name:  "disk-full-leader",
		about: "fill the data dir's file system of the hot shard's leader (its own ext4 on a loop device); free it after the hold",
		hold:  holdQuarter,
		cycle: onLeader(fillLeader),
		disks: true,
	},
	{
		name:  "slow-disk-leader",
		about: fmt.Sprintf("throttle the hot shard's leader's disk to %d write IOPS (cgroup blkio on its loop device: fsyncs of 100 ms and more); lift it after the hold", slowDiskIOPS),
		hold:  func(d time.Duration) time.Duration { return max(holdQuarter(d), leaderMoveWait) },
		cycle: onLeader(slowLeader),
		disks: true,
	},
}

// Faults lists the scenario names in the order the suite runs them.
func Faults() []string {
	out := make([]string, len(faultList))
	for i, f := range faultList {
		out[i] = f.name
	}
	return out
}

func faultByName(name string) (faultSpec, bool) {
	for _, f := range faultList {
		if f.name == name {
			return f, true
		}
	}
	return faultSpec{}, false
}

// scenario is one fault's run.
type scenario struct {
	e     *Env
	c     *Cluster
	h     *History
	w     *workload
	disks *disks // nil unless the fault needs them
	mu    struct {
		sync.Mutex
		notes    []string
		problems []string
	}
}

func (s *scenario) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.notes = append(s.mu.notes, fmt.Sprintf(format, args...))
}

// problem records a recovery failure: a violation of the scenario.
func (s *scenario) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.problems = append(s.mu.problems, fmt.Sprintf(format, args...))
}

// follower picks one of the nodes that do not lead.
func (s *scenario) follower(leader int) int {
	return (leader + 1 + rand.IntN(nodes-1)) % nodes
}

func (s *scenario) killRestart(ctx context.Context, i int, role string, hold time.Duration) error {
	t := time.Now()
	if err := s.c.signal(i, syscall.SIGKILL); err != nil {
		return err
	}
	s.h.Nemesis("inject", fmt.Sprintf("SIGKILL n%d (%s)", i, role), t)
	_ = clock.Sleep(ctx, hold)
	t = time.Now()
	if err := s.c.launch(i); err != nil {
		return err
	}
	err := s.c.waitReady(ctx, i, rejoinTimeout)
	s.h.Nemesis("heal", fmt.Sprintf("restarted n%d", i), t)
	if err != nil {
		s.problem("n%d (%s) not ready within %v of its restart: %v", i, role, rejoinTimeout, err)
		return nil
	}
	s.note("killed n%d (%s) for %v; ready %v after restart", i, role, hold, time.Since(t).Round(10*time.Millisecond))
	return nil
}

// isolate cuts node i off from the others for hold: all traffic, or with
// tcpPort > 0 only TCP to and from that port.
func (s *scenario) isolate(ctx context.Context, i int, role string, tcpPort int, hold time.Duration) error {
	var peers []string
	for j := 0; j < nodes; j++ {
		if j != i {
			peers = append(peers, s.e.nodeIP(j))
		}
	}
	t := time.Now()
	if err := s.e.fw.isolate(ctx, s.e, i, peers, tcpPort); err != nil {
		return err
	}
	what := "isolate"
	if tcpPort > 0 {
		what = fmt.Sprintf("cut TCP port %d of", tcpPort)
	}
	s.h.Nemesis("inject", fmt.Sprintf("%s n%d (%s) from %v", what, i, role, peers), t)
	_ = clock.Sleep(ctx, hold)
	t = time.Now()
	hctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.e.fw.heal(hctx, s.e, i)
	s.h.Nemesis("heal", fmt.Sprintf("n%d rejoined", i), t)
	if tcpPort > 0 {
		s.note("cut TCP port %d of n%d (%s) for %v", tcpPort, i, role, hold)
	} else {
		s.note("isolated n%d (%s) for %v", i, role, hold)
	}
	return err
}

// RunScenario runs one fault's sale on a fresh cluster and checks it. It
// never returns without stopping the cluster and healing the network.
func (e *Env) RunScenario(ctx context.Context, name, outDir string) (res Result) {
	f, ok := faultByName(name)
	if !ok {
		return Result{Fault: name, Error: "unknown fault"}
	}
	began := time.Now()
	res = Result{Fault: name, About: f.about}
	defer func() {
		res.Fault, res.About, res.Elapsed = name, f.about, time.Since(began).Round(time.Second)
		if b, err := json.MarshalIndent(res, "", "  "); err == nil {
			_ = os.WriteFile(filepath.Join(outDir, name, "result.json"), b, 0o644)
		}
	}()
	fail := func(err error) Result {
		res.Error = err.Error()
		e.logf("%s: %v", name, err)
		return res
	}
	dir := filepath.Join(outDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	dataDir := filepath.Join(e.cfg.StateDir, "run", name)
	defer os.RemoveAll(dataDir)

	nodeDSNs, localDSNs, err := e.createDatabases(ctx, strings.ReplaceAll(name, "-", "_"))
	if err != nil {
		return fail(err)
	}
	var dk *disks
	if f.disks {
		if dk, err = e.setupDisks(ctx, dataDir); err != nil {
			return fail(err)
		}
		// After the cluster is closed (defers run last first).
		defer dk.teardown(context.Background(), e)
	}
	e.logf("%s: starting a cluster", name)
	c, err := e.startCluster(ctx, dataDir, dir, nodeDSNs, dk, nodeArgs(f.payWindow)...)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	// Whatever happens, heal: the next scenario needs a clean network and
	// MariaDB.
	defer func() {
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.healNetwork(hctx); err != nil {
			e.logf("%s: heal network: %v", name, err)
		}
		if _, err := run(hctx, mariadbTimeout, nil, e.mariadbSh, "status", e.dbDir); err != nil {
			if err := e.startMariaDB(hctx); err != nil {
				e.logf("%s: restart MariaDB: %v", name, err)
			}
		}
	}()

	h, err := NewHistory(time.Now(), filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return fail(err)
	}
	defer h.Close()
	d := e.cfg.Duration
	w := newWorkload(c.api, h, d, e.cfg.Rate, e.cfg.Shoppers)
	w.setPayWindow(f.payWindow)
	for _, it := range []ItemSpec{w.hot, w.lim} {
		if err := c.createItem(ctx, it); err != nil {
			return fail(err)
		}
	}
	s := &scenario{e: e, c: c, h: h, w: w, disks: dk}

	// The sale, with the fault in cycles.
	hold := f.hold(d)
	if e.cfg.Hold > 0 {
		hold = e.cfg.Hold
	}
	warmup := min(max(d/5, warmupMin), warmupMax)
	tail := max(d/4, tailMin)
	runStart := time.Now()
	e.logf("%s: sale of %v (hot %d/s by %d shoppers; lim stock %d), fault after %v, held %v",
		name, d, e.cfg.Rate, e.cfg.Shoppers, w.lim.Stock, warmup, hold)
	w.start()
	stalls := watchStalls(h)
	_ = clock.Sleep(ctx, warmup)
	var cycles int
	var cycleErr error
	for ctx.Err() == nil {
		t := time.Now()
		cycles++
		if cycleErr = f.cycle(ctx, s, hold); cycleErr != nil {
			break
		}
		took := time.Since(t)
		if time.Now().Add(hold + took + tail).After(runStart.Add(d)) {
			break
		}
		_ = clock.Sleep(ctx, hold) // calm between cycles
	}
	end := runStart.Add(d)
	if t := time.Now().Add(tail); t.After(end) {
		end = t
	}
	_ = clock.Sleep(ctx, time.Until(end))
	w.end()
	runEnd := time.Now()
	for _, st := range stalls() {
		s.note("the suite itself was stalled %v at %+.1fs (host overloaded or paused): gaps around it are not the cluster's", st.d.Round(10*time.Millisecond), st.at.Seconds())
	}
	if cycleErr != nil {
		// Check what happened anyway; the scenario is an error.
		e.logf("%s: fault: %v", name, cycleErr)
		s.problem("fault could not be injected or healed: %v", cycleErr)
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	s.note("%d fault cycle(s)", cycles)
	e.logf("%s: sale over (%d events); settling, then checking", name, len(h.Events()))

	// Every node must be up again before the checks.
	for i := 0; i < nodes; i++ {
		if !c.running(i) {
			s.problem("n%d not running at the end of the sale", i)
			if err := c.launch(i); err != nil {
				return fail(err)
			}
		}
		if err := c.waitReady(ctx, i, rejoinTimeout); err != nil {
			s.problem("n%d not ready after the sale: %v", i, err)
		}
	}

	w.settle(ctx, h.Events())
	units := w.held(ctx, h.Events()) // with a payment window, after every order's window closed
	items := []ItemSpec{w.hot, w.lim}
	final := Final{Items: items, RunStartMs: h.Ms(runStart), RunEndMs: h.Ms(runEnd), HotItem: w.hot.ID, PayWindow: w.payWindow}
	final.Views = w.views(ctx, items, units)
	sold := map[string]int64{}
	for _, it := range items {
		agreed, _ := client.Agreed(final.Views, it.ID)
		sold[it.ID] = agreed.Sold
	}
	final.Store = storeState(ctx, localDSNs, sold, h.Events())
	w.lookups(ctx, h.Events())
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}

	c.saveStatus(ctx)
	res = Evaluate(name, h.Events(), final)
	if cycleErr != nil {
		res.Error = "fault: " + cycleErr.Error()
	}
	s.mu.Lock()
	res.Notes = append(res.Notes, s.mu.notes...)
	for _, p := range s.mu.problems {
		res.NoRecovery = true
		res.Violations = append(res.Violations, p)
	}
	s.mu.Unlock()
	res.Notes = append(res.Notes, fmt.Sprintf("lim: stock %d, %d sold; hot: %d sold", w.lim.Stock, res.Sold[w.lim.ID], res.Sold[w.hot.ID]))
	if res.Passed() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.dropDatabases(dctx, localDSNs)
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("databases kept: %v", localDSNs))
	}
	e.logf("%s: %s", name, res.summary())
	return res
}

// summary is a one-line account of a result.
func (r *Result) summary() string {
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	return fmt.Sprintf("%s: %d purchases (%d ok, %d failed, %d unknown -> %d settled), oversell %d, lost %d, duplicate %d, limit %d, max gap %v",
		verdict, r.Ops, r.OK, r.Failed, r.Unknown, r.Settled, r.Oversell, r.Lost, r.Duplicate, r.Limit, r.MaxGap.Round(time.Millisecond))
}

// Stall detection: a ticker that fires late by more than stallMin means
// the suite's own process (and likely the whole machine) did not run.
const (
	stallTick = 50 * time.Millisecond
	stallMin  = 750 * time.Millisecond
)

type stall struct {
	at time.Duration // since the start of the history
	d  time.Duration
}

// watchStalls records stalls of this process until the returned function
// is called; that function returns them.
func watchStalls(h *History) func() []stall {
	stop := make(chan struct{})
	done := make(chan []stall)
	go func() {
		var out []stall
		t := time.NewTicker(stallTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				done <- out
				return
			case <-t.C:
				now := time.Now()
				if late := now.Sub(last) - stallTick; late > stallMin {
					out = append(out, stall{at: last.Sub(h.t0), d: late})
				}
				last = now
			}
		}
	}()
	return func() []stall {
		close(stop)
		return <-done
	}
}
