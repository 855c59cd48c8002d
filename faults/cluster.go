package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

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
)

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
	api    *api
	mu     sync.Mutex
	procs  [nodes]*proc
	starts [nodes]int
}

// startCluster launches the three nodes and waits until all are ready.
func (e *Env) startCluster(ctx context.Context, dataDir, logDir string, dsns []string) (*Cluster, error) {
	c := &Cluster{e: e, dir: dataDir, logDir: logDir, dsns: dsns}
	urls := make([]string, nodes)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s:%d", e.nodeIP(i), httpPort)
	}
	c.api = newAPI(urls, adminToken)
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
		r := c.api.do(ctx, i, http.MethodGet, "/readyz", "", nil, 2*time.Second)
		if r.err == nil && r.status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: n%d not ready within %v (last: %d %v)", i, timeout, r.status, r.err)
		}
		if err := clock.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// leaderOf asks every running node for the cluster status and returns the
// node leading the item's shard in the highest term seen.
func (c *Cluster) leaderOf(ctx context.Context, item string) (int, error) {
	shard := raftstore.ShardFor(item, shards)
	best, bestTerm := -1, int64(-1)
	for i := 0; i < nodes; i++ {
		if !c.running(i) {
			continue
		}
		r := c.api.do(ctx, i, http.MethodGet, "/v1/cluster/status", "admin", nil, 2*time.Second)
		if r.err != nil || r.status != http.StatusOK {
			continue
		}
		list, _ := r.body["shards"].([]any)
		if shard >= len(list) {
			continue
		}
		st, _ := list[shard].(map[string]any)
		name, _ := st["leader"].(string)
		term, _ := st["term"].(float64)
		var idx int
		if _, err := fmt.Sscanf(name, "n%d", &idx); err != nil || idx < 0 || idx >= nodes {
			continue
		}
		if int64(term) > bestTerm {
			best, bestTerm = idx, int64(term)
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
		r := c.api.do(ctx, i, http.MethodGet, "/v1/cluster/status", "admin", nil, 2*time.Second)
		if r.err != nil || r.status != http.StatusOK {
			continue
		}
		list, _ := r.body["shards"].([]any)
		var n int64
		for _, v := range list {
			st, _ := v.(map[string]any)
			f, _ := st["unflushed_orders"].(float64)
			n += int64(f)
		}
		return n
	}
	return -1
}

// saveStatus writes every node's /v1/cluster/status to status-n<i>.json in
// the log dir, for the record.
func (c *Cluster) saveStatus(ctx context.Context) {
	for i := 0; i < nodes; i++ {
		r := c.api.do(ctx, i, http.MethodGet, "/v1/cluster/status", "admin", nil, 2*time.Second)
		var b []byte
		if r.err != nil {
			b = []byte(fmt.Sprintf("{\"error\": %q}\n", r.err.Error()))
		} else {
			b, _ = json.MarshalIndent(r.body, "", "  ")
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

// createItem creates an item through any node, retrying 503s.
func (c *Cluster) createItem(ctx context.Context, it ItemSpec) error {
	body := map[string]any{"id": it.ID, "name": it.ID, "stock": it.Stock, "per_user_limit": it.Limit}
	deadline := time.Now().Add(30 * time.Second)
	for k := 0; ; k++ {
		r := c.api.do(ctx, k%nodes, http.MethodPost, "/v1/items", "admin", body, attemptTimeout)
		switch {
		case r.err == nil && r.status == http.StatusCreated:
			return nil
		case r.err == nil && r.status == http.StatusConflict && r.code() == "item_exists":
			return nil // an earlier attempt created it
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("faults: create item %s: %d %v %v", it.ID, r.status, r.body, r.err)
		}
		if err := clock.Sleep(ctx, 200*time.Millisecond); err != nil {
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
	c.api.close()
	return errors.Join(errs...)
}
