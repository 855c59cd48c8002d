package faults

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver for the scenario databases
)

// Bounds on the suite's own waits.
const (
	commandTimeout   = 30 * time.Second // one ip/tc/iptables call
	buildTimeout     = 5 * time.Minute  // go build of the node binary
	mariadbTimeout   = 2 * time.Minute  // scripts/mariadb.sh start or stop
	mysqlPort        = 3306             // the forwarder's port on the subnet
	delayQueue       = 7                // the NFQUEUE queue number
	delayMean        = 50 * time.Millisecond
	delayJitter      = 20 * time.Millisecond
	delayLossPercent = 5
)

// ErrEnvironment wraps every reason the suite cannot run here: not Linux,
// not root, a missing tool.
var ErrEnvironment = errors.New("faults: environment")

// Env is what all scenarios of one run share: the network namespaces,
// MariaDB and its forwarder, the node binary, the firewall backend. Close
// removes everything, also after a failed Setup.
type Env struct {
	cfg       Config
	root      string
	netnsSh   string
	mariadbSh string
	nodeBin   string
	dbDir     string
	dbPort    int
	delay     string // "netem" or "nfqueue"
	fw        firewall
	fwd       *forwarder
	lock      *os.File
	logw      io.Writer
	logMu     sync.Mutex
	commitID  string
	netUp     bool
	dbUp      bool
	seq       int
}

// Setup checks the machine, cleans up after an interrupted earlier run,
// builds the node binary, creates the network and starts MariaDB.
func Setup(ctx context.Context, cfg Config) (e *Env, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e = &Env{cfg: cfg, logw: cfg.Log}
	if e.logw == nil {
		e.logw = io.Discard
	}
	env := e // a failing return below sets e to nil
	defer func() {
		if err != nil {
			env.Close()
			e = nil
		}
	}()
	if err := checkHost(); err != nil {
		return nil, err
	}
	if e.root, err = moduleRoot(cfg.Root); err != nil {
		return nil, err
	}
	e.netnsSh = filepath.Join(e.root, "scripts", "netns.sh")
	e.mariadbSh = filepath.Join(e.root, "scripts", "mariadb.sh")
	if err := checkTools(cfg.NodeBin == ""); err != nil {
		return nil, err
	}
	if e.fw, err = pickFirewall(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("faults: state dir: %w", err)
	}
	if e.lock, err = lockFile(filepath.Join(cfg.StateDir, "lock")); err != nil {
		return nil, err
	}
	e.dbDir = filepath.Join(cfg.StateDir, "mariadb")

	// Whatever an interrupted run left: its namespaces (and the node
	// processes in them), its MariaDB, its node data.
	e.netUp, e.dbUp = true, true
	if err := e.stopMariaDB(ctx); err != nil {
		return nil, err
	}
	if err := e.netns(ctx, "down"); err != nil {
		return nil, err
	}
	e.netUp, e.dbUp = false, false
	if err := os.RemoveAll(filepath.Join(cfg.StateDir, "run")); err != nil {
		return nil, fmt.Errorf("faults: clean state dir: %w", err)
	}

	e.commitID = e.commit(ctx) // before the build: what the binary is built from
	if e.nodeBin = cfg.NodeBin; e.nodeBin == "" {
		e.nodeBin = filepath.Join(cfg.StateDir, "node")
		e.logf("building %s", e.nodeBin)
		bctx, cancel := context.WithTimeout(ctx, buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(bctx, "go", "build", "-o", e.nodeBin, "./cmd/node")
		cmd.Dir = e.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("faults: build node: %w\n%s", err, out)
		}
	}

	e.netUp = true
	if err := e.netns(ctx, "up", strconv.Itoa(nodes)); err != nil {
		return nil, err
	}
	if e.delay, err = e.pickDelay(ctx); err != nil {
		return nil, err
	}
	e.logf("network up (%s.0/24), firewall %s, delay and loss by %s", cfg.Subnet, e.fw.name(), e.delay)

	if e.dbPort, err = freePort(); err != nil {
		return nil, err
	}
	e.dbUp = true
	if err := e.startMariaDB(ctx); err != nil {
		return nil, err
	}
	if err := e.dropStaleDatabases(ctx); err != nil {
		return nil, err
	}
	if e.fwd, err = startForwarder(net.JoinHostPort(e.rootIP(), strconv.Itoa(mysqlPort)), e.localDBAddr()); err != nil {
		return nil, err
	}
	return e, nil
}

// Close stops MariaDB and removes the network; it is safe to call twice.
func (e *Env) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if e.fwd != nil {
		e.fwd.Close()
		e.fwd = nil
	}
	if e.dbUp {
		if err := e.stopMariaDB(ctx); err != nil {
			errs = append(errs, err)
		}
		e.dbUp = false
	}
	if e.netUp {
		if err := e.netns(ctx, "down"); err != nil {
			errs = append(errs, err)
		}
		e.netUp = false
	}
	if e.lock != nil {
		e.lock.Close()
		e.lock = nil
	}
	return errors.Join(errs...)
}

// commit names the source the node binary was built from: the short commit,
// "+dirty" when Go files differ from it, or "unknown".
func (e *Env) commit(ctx context.Context) string {
	if e.cfg.NodeBin != "" {
		return "unknown (prebuilt " + filepath.Base(e.cfg.NodeBin) + ")"
	}
	out, err := run(ctx, commandTimeout, nil, "git", "-C", e.root, "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(out)
	if st, err := run(ctx, commandTimeout, nil, "git", "-C", e.root, "status", "--porcelain", "--untracked-files=no", "--", "*.go"); err == nil && strings.TrimSpace(st) != "" {
		c += "+dirty"
	}
	return c
}

// Commit names the source the node binary was built from.
func (e *Env) Commit() string { return e.commitID }

// DelayMethod reports how packet delay and loss are made: netem or nfqueue.
func (e *Env) DelayMethod() string { return e.delay }

// FirewallName reports the partition backend: iptables or nft.
func (e *Env) FirewallName() string { return e.fw.name() }

func (e *Env) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.logw, "%s faults: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func (e *Env) rootIP() string      { return e.cfg.Subnet + ".1" }
func (e *Env) nodeIP(i int) string { return fmt.Sprintf("%s.%d", e.cfg.Subnet, 11+i) }
func (e *Env) nodeNS(i int) string { return fmt.Sprintf("%s-n%d", e.cfg.Prefix, i) }
func (e *Env) localDBAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(e.dbPort)) }

// run runs a command with a bounded time and returns its combined output.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	return runCmd(ctx, timeout, env, "", name, args...)
}

// runStdin is run with stdin.
func runStdin(ctx context.Context, timeout time.Duration, stdin, name string, args ...string) (string, error) {
	return runCmd(ctx, timeout, nil, stdin, name, args...)
}

func runCmd(ctx context.Context, timeout time.Duration, env []string, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// inNS runs a command in node i's namespace.
func (e *Env) inNS(ctx context.Context, i int, name string, args ...string) (string, error) {
	return run(ctx, commandTimeout, nil, "ip", append([]string{"netns", "exec", e.nodeNS(i), name}, args...)...)
}

func (e *Env) netns(ctx context.Context, args ...string) error {
	_, err := run(ctx, 2*time.Minute, []string{
		"FLASHSTOCK_NETNS_PREFIX=" + e.cfg.Prefix, "FLASHSTOCK_NETNS_SUBNET=" + e.cfg.Subnet,
	}, e.netnsSh, args...)
	if err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

func (e *Env) startMariaDB(ctx context.Context) error {
	if _, err := run(ctx, mariadbTimeout, nil, e.mariadbSh, "start", e.dbDir, strconv.Itoa(e.dbPort)); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

func (e *Env) stopMariaDB(ctx context.Context) error {
	if _, err := run(ctx, mariadbTimeout, nil, e.mariadbSh, "stop", e.dbDir); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	return nil
}

// createDatabases creates two empty databases for one scenario and returns
// the nodes' DSNs (through the forwarder) and the suite's (direct).
func (e *Env) createDatabases(ctx context.Context, tag string) (nodeDSNs, localDSNs []string, err error) {
	db, err := sql.Open("mysql", "root@tcp("+e.localDBAddr()+")/?timeout=5s")
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	e.seq++
	for i := 0; i < 2; i++ {
		name := fmt.Sprintf("fsfault_%d_%d_%s_%d", os.Getpid(), e.seq, tag, i)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := db.ExecContext(cctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("faults: create database %s: %w", name, err)
		}
		nodeDSNs = append(nodeDSNs, fmt.Sprintf("root@tcp(%s:%d)/%s", e.rootIP(), mysqlPort, name))
		localDSNs = append(localDSNs, fmt.Sprintf("root@tcp(%s)/%s", e.localDBAddr(), name))
	}
	return nodeDSNs, localDSNs, nil
}

// dropDatabases drops a scenario's databases.
func (e *Env) dropDatabases(ctx context.Context, localDSNs []string) error {
	db, err := sql.Open("mysql", "root@tcp("+e.localDBAddr()+")/?timeout=5s")
	if err != nil {
		return err
	}
	defer db.Close()
	var errs []error
	for _, dsn := range localDSNs {
		name := dsn[strings.LastIndex(dsn, "/")+1:]
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := db.ExecContext(cctx, "DROP DATABASE IF EXISTS `"+name+"`")
		cancel()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dropStaleDatabases drops the databases earlier runs kept for inspection
// (their histories and reports stay in their output dirs).
func (e *Env) dropStaleDatabases(ctx context.Context) error {
	db, err := sql.Open("mysql", "root@tcp("+e.localDBAddr()+")/?timeout=5s")
	if err != nil {
		return err
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'fsfault\\_%'")
	if err != nil {
		return fmt.Errorf("faults: list databases: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.ExecContext(qctx, "DROP DATABASE `"+n+"`"); err != nil {
			return fmt.Errorf("faults: drop %s: %w", n, err)
		}
	}
	return rows.Err()
}

// pickDelay decides between netem and the NFQUEUE delayer by trying netem
// on node 0's interface.
func (e *Env) pickDelay(ctx context.Context) (string, error) {
	if e.cfg.Delay == "nfqueue" {
		return "nfqueue", nil
	}
	_, err := e.inNS(ctx, 0, "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "1ms")
	if err == nil {
		_, err = e.inNS(ctx, 0, "tc", "qdisc", "del", "dev", "eth0", "root")
		return "netem", err
	}
	if e.cfg.Delay == "netem" {
		return "", fmt.Errorf("%w: tc netem does not work here (kernel without sch_netem?): %v", ErrEnvironment, err)
	}
	return "nfqueue", nil
}

// checkHost checks the operating system and the user.
func checkHost() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("%w: needs Linux (network namespaces), not %s", ErrEnvironment, runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces, veth, iptables, tc)", ErrEnvironment)
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("%w: no network namespaces: %v", ErrEnvironment, err)
	}
	return nil
}

// tools lists what the suite runs and the Debian package that has it.
var tools = []struct{ names, pkg string }{
	{"ip", "iproute2"},
	{"tc", "iproute2"},
	{"iptables|nft", "iptables (or nftables)"},
	{"mariadbd|mysqld", "mariadb-server"},
	{"mariadb-install-db|mysql_install_db", "mariadb-server"},
	{"mariadb|mysql", "mariadb-client"},
	{"mariadb-admin|mysqladmin", "mariadb-client"},
	{"flock", "util-linux"},
	{"setsid", "util-linux"},
	// The disk faults (disk.go): a file system per node on a loop device.
	{"losetup", "mount"},
	{"lsblk", "util-linux"},
	{"mkfs.ext4", "e2fsprogs"},
}

// checkTools fails with the Debian packages to install when a tool is
// missing.
func checkTools(needGo bool) error {
	var missing, pkgs []string
	seen := map[string]bool{}
	want := tools
	if needGo {
		want = append(want, struct{ names, pkg string }{"go", "a Go toolchain"})
	}
	for _, t := range want {
		found := false
		for _, n := range strings.Split(t.names, "|") {
			if _, err := lookPath(n); err == nil {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, strings.ReplaceAll(t.names, "|", " or "))
			if !seen[t.pkg] {
				seen[t.pkg] = true
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s; on Debian: apt-get install -y %s",
			ErrEnvironment, strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// lookPath finds a program on PATH or in the sbin directories, which are
// often not on a non-login PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// moduleRoot returns dir, or the nearest parent of the working directory
// with Flashstock's go.mod.
func moduleRoot(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/flashstock/flashstock\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("faults: no Flashstock go.mod above %s; set Config.Root", wd)
		}
	}
}

// lockFile takes an exclusive lock so that two runs never share the
// namespaces, the subnet or the state dir.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("faults: another run holds %s: %w", path, err)
	}
	return f, nil
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
