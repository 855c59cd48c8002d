package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/client"
	"github.com/flashstock/flashstock/internal/backoff"
	"github.com/flashstock/flashstock/internal/clock"
	"github.com/flashstock/flashstock/raftstore"
)

// Node ports, the same on every node: each has its own address.
const (
	httpPort   = 8080
	raftPort   = 7000
	gossipPort = 7946
	actorPort  = 8090
)

// Bounds on cluster waits.
const (
	readyTimeout  = 60 * time.Second // all nodes ready at start
	rejoinTimeout = 30 * time.Second // a restarted node ready again
	exitTimeout   = 10 * time.Second // a killed node reaped
	createTimeout = 30 * time.Second // the items created
	statusTimeout = 2 * time.Second  // one readiness or status request
	// shopperConns sizes the shoppers' connection pool per node.
	shopperConns = 256
)

// createBackoff spaces the attempts to create an item.
var createBackoff = backoff.Policy{Base: 200 * time.Millisecond, Max: 2 * time.Second}

// adminToken is the admin bearer token of every test cluster.
const adminToken = "faults-admin-token-0123456789abcdef"

// proc is one running node process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	exit error
}

// Cluster is three node processes, one per namespace, sharing two MySQL
// databases.
type Cluster struct {
	e      *Env
	dir    string // data dirs
	logDir string
	dsns   []string
	api    *client.Client
	keys   clusterKeys
	disks  *disks   // each node's file system and cgroup; nil for none
	extra  []string // the scenario's own node flags (a --payment-window)
	mu     sync.Mutex
	procs  [nodes]*proc
	starts [nodes]int
}

// startCluster launches the three nodes, with the flags extra added, and
// waits until all are ready.
func (e *Env) startCluster(ctx context.Context, dataDir, logDir string, dsns []string, dk *disks, extra ...string) (*Cluster, error) {
	c := &Cluster{e: e, dir: dataDir, logDir: logDir, dsns: dsns, disks: dk, extra: extra}
	var err error
	if c.keys, err = makeClusterKeys(filepath.Join(dataDir, "keys"), e); err != nil {
		return nil, err
	}
	urls := make([]string, nodes)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s:%d", e.nodeIP(i), httpPort)
	}
	c.api = client.New(client.Config{Targets: urls, AdminToken: adminToken, Timeout: attemptTimeout, Conns: shopperConns})
	for i := 0; i < nodes; i++ {
		if err := c.launch(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := 0; i < nodes; i++ {
		if err := c.waitReady(ctx, i, readyTimeout); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// launch starts node i on its data dir (a restart keeps it).
func (c *Cluster) launch(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[i]; p != nil && !p.exited() {
		return fmt.Errorf("faults: n%d is still running", i)
	}
	ip := c.e.nodeIP(i)
	var join []string
	for j := 0; j < nodes; j++ {
		join = append(join, fmt.Sprintf("%s:%d", c.e.nodeIP(j), gossipPort))
	}
	args := []string{
		"netns", "exec", c.e.nodeNS(i), c.e.nodeBin,
		"--name", fmt.Sprintf("n%d", i),
		"--data-dir", filepath.Join(c.dir, fmt.Sprintf("n%d", i)),
		"--http-addr", fmt.Sprintf("%s:%d", ip, httpPort),
		"--raft-addr", fmt.Sprintf("%s:%d", ip, raftPort),
		"--gossip-addr", fmt.Sprintf("%s:%d", ip, gossipPort),
		"--actor-addr", fmt.Sprintf("%s:%d", ip, actorPort),
		"--join", strings.Join(join, ","),
		"--bootstrap-expect", fmt.Sprint(nodes),
		"--shards", fmt.Sprint(shards),
		"--gossip-profile", "local",
		"--raft-heartbeat-timeout", heartbeatTimeout.String(),
		"--dead-node-grace", deadNodeGrace.String(),
		"--request-timeout", requestTimeout.String(),
		"--orders-dsn", strings.Join(c.dsns, ","),
		"--admin-token", adminToken,
		"--trust-user-header",
		"--log-level", "info",
	}
	// The cluster's keys, as production runs: the nodes' addresses are not
	// loopback, so a node would refuse to start without them.
	args = append(args, c.keys.args(i)...)
	args = append(args, c.extra...)
	logf, err := os.OpenFile(filepath.Join(c.logDir, fmt.Sprintf("n%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c.starts[i]++
	fmt.Fprintf(logf, "=== faults: start %d of n%d at %s\n", c.starts[i], i, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("faults: start n%d: %w", i, err)
	}
	if c.disks != nil {
		if err := c.disks[i].join(cmd.Process.Pid); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
			return fmt.Errorf("faults: n%d into its blkio cgroup: %w", i, err)
		}
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exit = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.procs[i] = p
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to node i; SIGKILL also waits for the exit.
func (c *Cluster) signal(i int, sig syscall.Signal) error {
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if p == nil || p.exited() {
		return fmt.Errorf("faults: n%d is not running", i)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("faults: signal n%d: %w", i, err)
	}
	if sig == syscall.SIGKILL {
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			return fmt.Errorf("faults: n%d did not exit within %v of SIGKILL", i, exitTimeout)
		}
	}
	return nil
}

// running reports whether node i's process is alive.
func (c *Cluster) running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[i] != nil && !c.procs[i].exited()
}

// waitReady waits until node i answers /readyz with 200.
func (c *Cluster) waitReady(ctx context.Context, i int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !c.running(i) {
			c.mu.Lock()
			exit := c.procs[i].exit
			c.mu.Unlock()
			return fmt.Errorf("faults: n%d exited: %v; log %s", i, exit, c.logTail(i))
		}
		err := c.ready(ctx, i)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: n%d not ready within %v (last: %v)", i, timeout, err)
		}
		if err := clock.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// ready asks node i whether it is ready, bounded by statusTimeout.
func (c *Cluster) ready(ctx context.Context, i int) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return c.api.Ready(ctx, i)
}

// status reads node i's cluster status, bounded by statusTimeout.
func (c *Cluster) status(ctx context.Context, i int) (client.ClusterStatus, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return c.api.ClusterStatus(ctx, i)
}

// leaderOf asks every running node for the cluster status and returns the
// node leading the item's shard in the highest term seen.
func (c *Cluster) leaderOf(ctx context.Context, item string) (int, error) {
	shard := raftstore.ShardFor(item, shards)
	best, bestTerm := -1, uint64(0)
	for i := 0; i < nodes; i++ {
		if !c.running(i) {
			continue
		}
		st, _, err := c.status(ctx, i)
		if err != nil || shard >= len(st.Shards) {
			continue
		}
		var idx int
		if _, err := fmt.Sscanf(st.Shards[shard].Leader, "n%d", &idx); err != nil || idx < 0 || idx >= nodes {
			continue
		}
		if term := st.Shards[shard].Term; best < 0 || term > bestTerm {
			best, bestTerm = idx, term
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("faults: no node knows the leader of shard %d", shard)
	}
	return best, nil
}

// unflushed returns the confirmed orders waiting for the order store, summed
// over the shards as the first node that answers reports them; -1 if none
// answers.
func (c *Cluster) unflushed(ctx context.Context) int64 {
	for i := 0; i < nodes; i++ {
		st, _, err := c.status(ctx, i)
		if err != nil {
			continue
		}
		var n int64
		for _, sh := range st.Shards {
			n += sh.UnflushedOrders
		}
		return n
	}
	return -1
}

// saveStatus writes every node's /v1/cluster/status to status-n<i>.json in
// the log dir, for the record.
func (c *Cluster) saveStatus(ctx context.Context) {
	for i := 0; i < nodes; i++ {
		_, raw, err := c.status(ctx, i)
		var b []byte
		if err != nil {
			b = []byte(fmt.Sprintf("{\"error\": %q}\n", err.Error()))
		} else {
			var doc any
			_ = json.Unmarshal(raw, &doc)
			b, _ = json.MarshalIndent(doc, "", "  ")
		}
		_ = os.WriteFile(filepath.Join(c.logDir, fmt.Sprintf("status-n%d.json", i)), b, 0o644)
	}
}

// waitLeader waits for a known leader of the item's shard.
func (c *Cluster) waitLeader(ctx context.Context, item string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := c.leaderOf(ctx, item)
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, err
		}
		if err := clock.Sleep(ctx, 200*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// createItem creates an item through the nodes in turn, retrying what a
// retry may change (503s, transport errors).
func (c *Cluster) createItem(ctx context.Context, it ItemSpec) error {
	body := client.NewItem{ID: it.ID, Name: it.ID, Stock: it.Stock, PerUserLimit: it.Limit}
	deadline := time.Now().Add(createTimeout)
	for k := 0; ; k++ {
		err := c.api.CreateItem(ctx, k%nodes, body)
		switch {
		case err == nil || errors.Is(err, client.ErrItemExists): // an earlier attempt may have created it
			return nil
		case !client.Transient(err) || time.Now().After(deadline):
			return fmt.Errorf("faults: %w", err)
		}
		if err := createBackoff.Sleep(ctx, k, nil); err != nil {
			return err
		}
	}
}

// logTail returns the end of node i's log.
func (c *Cluster) logTail(i int) string {
	b, err := os.ReadFile(filepath.Join(c.logDir, fmt.Sprintf("n%d.log", i)))
	if err != nil {
		return err.Error()
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Close kills every node (resuming paused ones first) and waits for them.
func (c *Cluster) Close() error {
	var errs []error
	for i := 0; i < nodes; i++ {
		c.mu.Lock()
		p := c.procs[i]
		c.mu.Unlock()
		if p == nil || p.exited() {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(exitTimeout):
			errs = append(errs, fmt.Errorf("faults: n%d did not exit", i))
		}
	}
	c.api.Close()
	return errors.Join(errs...)
}
