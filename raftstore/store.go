package raftstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore/mux"
	"github.com/flashstock/flashstock/sale"
)

// Config configures a node's shard groups.
type Config struct {
	NodeID        string
	DataDir       string // raft state lives in DataDir/raft/<shard>/
	BindAddr      string // the one TCP listener all groups share
	AdvertiseAddr string // what peers dial; empty means the bound address
	Shards        int    // fixed when the data dir is first created

	// Bootstrap makes each group a one-voter cluster of this node when it has
	// no state yet (bootstrap-expect 1). A node with state never bootstraps.
	Bootstrap bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	MaxAppendEntries   int
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64 // entries since the last snapshot
	// SnapshotBytes takes a snapshot once this many bytes of commands
	// were applied since the last one, however few entries they were:
	// batched entries are large, and the log on disk must stay bounded.
	// 0 turns it off.
	SnapshotBytes uint64
	TrailingLogs  uint64
	ApplyTimeout  time.Duration // bound on enqueueing and on the post-election barrier

	FSM FSMConfig

	// PayWindow, when positive, gives buyers this long to pay; unpaid
	// orders then expire and their stock returns to the sale. The leader
	// checks for expired orders every ExpiryInterval.
	PayWindow      time.Duration
	ExpiryInterval time.Duration

	// WALSegmentSize is the size of the log's preallocated segment files
	// (raft-wal); 0 means 16 MiB. A shard's log holds two to three
	// segments, so it sets most of a fresh node's disk footprint.
	WALSegmentSize int
	// DiskReserve is the free space under which the store stops taking
	// purchases (DiskHealth), so that the log never runs out of room for
	// what it would confirm; 0 means one segment per shard plus 32 MiB.
	DiskReserve uint64
	// SlowWrite is the log write time (a write and an fsync) over which
	// a write counts as slow; when most writes of the last few seconds
	// are, the store is Sick ("disk_slow"). 0 turns it off.
	SlowWrite time.Duration

	// Allowed reports whether every voter of a shard runs a version that
	// applies entries of a feature (a new command); the shard writes such
	// entries only then. Nil means every node runs this version.
	Allowed func(shard int, f Feature) bool

	// OnLeadership, if set, is called when this node gains (after its
	// barrier) or loses leadership of a shard. It must not block.
	OnLeadership func(shard int, leader bool)

	// WrapListener, if set, wraps the one Raft listener before the mux
	// accepts on it, and Dial, if set, opens the connections to peers: the
	// seams of the cluster's mutual TLS (internal/clustertls). Nil: plain
	// TCP.
	WrapListener func(net.Listener) net.Listener
	Dial         mux.Dialer

	Now    func() time.Time
	Logger *slog.Logger
	// RaftLog receives hashicorp/raft's own log lines (hclog's text) at
	// RaftLogLevel and above; nil means standard error. A node routes them
	// into its own logger (internal/logbridge).
	RaftLog io.Writer
	// RaftLogLevel is hclog's level name for them ("" means "warn").
	RaftLogLevel string
}

// DefaultConfig returns production defaults.
func DefaultConfig() Config {
	return Config{
		DataDir:            "data",
		BindAddr:           "127.0.0.1:7000",
		Shards:             8,
		Bootstrap:          true,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      250 * time.Millisecond,
		MaxAppendEntries:   256,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  16384,
		SnapshotBytes:      64 << 20,
		TrailingLogs:       4096,
		ApplyTimeout:       5 * time.Second,
		FSM: FSMConfig{DedupRetention: 24 * time.Hour, DedupMax: 1_000_000,
			OrderRetention: 10 * time.Minute, OrderRetentionMax: 200_000},
		ExpiryInterval: time.Second,
		Now:            time.Now,
	}
}

// walSegmentSizeDefault is raft-wal's segment size unless configured:
// smaller than raft-wal's 64 MiB, since a shard snapshots every 64 MiB of
// commands and eight shards' preallocated segments made a fresh node take
// half a gigabyte of disk.
const walSegmentSizeDefault = 16 << 20

func (c Config) walSegmentSize() int {
	if c.WALSegmentSize > 0 {
		return c.WALSegmentSize
	}
	return walSegmentSizeDefault
}

func (c Config) diskReserve() uint64 {
	if c.DiskReserve > 0 {
		return c.DiskReserve
	}
	return uint64(c.walSegmentSize()*c.Shards) + 32<<20
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("raftstore: node id is required")
	case c.DataDir == "":
		return errors.New("raftstore: data dir is required")
	case c.Shards < 1 || c.Shards > orders.ShardsMax:
		return fmt.Errorf("raftstore: shards must be 1..%d", orders.ShardsMax)
	case c.ApplyTimeout <= 0:
		return errors.New("raftstore: apply timeout must be positive")
	case c.WALSegmentSize < 0 || (c.WALSegmentSize > 0 && c.WALSegmentSize < 1<<20):
		return errors.New("raftstore: WAL segment size must be at least 1 MiB")
	case c.FSM.DedupMax < 1 || c.FSM.DedupRetention <= 0:
		return errors.New("raftstore: dedup retention and max must be positive")
	case c.FSM.OrderRetention < 0 || c.FSM.OrderRetentionMax < 0:
		return errors.New("raftstore: order retention must not be negative")
	case c.PayWindow < 0 || (c.PayWindow > 0 && c.ExpiryInterval <= 0):
		return errors.New("raftstore: pay window must not be negative, and needs a positive expiry interval")
	}
	return nil
}

// Store is a node's set of shard groups.
type Store struct {
	cfg    Config
	log    *slog.Logger
	mux    *mux.Listener
	shards []*Shard
	disk   diskMonitor
}

// Open creates or recovers every shard group under cfg.DataDir and starts
// them. It does not wait for leaders: see WaitReady.
func Open(cfg Config) (*Store, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root := filepath.Join(cfg.DataDir, "raft")
	if err := checkShardCount(root, cfg.Shards); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("raftstore: listen %s: %w", cfg.BindAddr, err)
	}
	var adv net.Addr
	if cfg.AdvertiseAddr != "" {
		if adv, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("raftstore: advertise address: %w", err)
		}
	}
	if cfg.WrapListener != nil {
		ln = cfg.WrapListener(ln)
	}
	s := &Store{cfg: cfg, log: cfg.Logger, mux: mux.New(ln, mux.Config{Shards: cfg.Shards, Advertise: adv, Dial: cfg.Dial, Logger: cfg.Logger})}
	s.disk.slowWrite = cfg.SlowWrite
	s.disk.inflight = make([]*atomic.Int64, cfg.Shards)
	for i := range s.disk.inflight {
		s.disk.inflight[i] = new(atomic.Int64)
	}
	for i := 0; i < cfg.Shards; i++ {
		sh, err := s.openShard(i, filepath.Join(root, strconv.Itoa(i)))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("raftstore: shard %d: %w", i, err)
		}
		s.shards = append(s.shards, sh)
	}
	s.disk.dir, s.disk.reserve, s.disk.log = cfg.DataDir, cfg.diskReserve(), s.log.Warn
	s.disk.start()
	return s, nil
}

// checkShardCount records the shard count on first start and refuses a
// different one later: items are placed by hash mod S, so S is fixed.
func checkShardCount(root string, shards int) error {
	if err := os.MkdirAll(root, 0o750); err != nil {
		return fmt.Errorf("raftstore: %w", err)
	}
	path := filepath.Join(root, "shards")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(path, []byte(strconv.Itoa(shards)+"\n"), 0o640)
	}
	if err != nil {
		return fmt.Errorf("raftstore: %w", err)
	}
	have, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("raftstore: corrupt %s: %w", path, err)
	}
	if have != shards {
		return fmt.Errorf("raftstore: this data dir was created with %d shards; the shard count is fixed (asked for %d)", have, shards)
	}
	return nil
}

// Shards returns the number of shard groups.
func (s *Store) Shards() int { return len(s.shards) }

// Shard returns shard i.
func (s *Store) Shard(i int) *Shard { return s.shards[i] }

// ShardFor returns the shard that owns an item.
func (s *Store) ShardFor(itemID string) int { return ShardFor(itemID, len(s.shards)) }

// ShardFor maps an item to one of n shards by a stable hash (FNV-1a).
func ShardFor(itemID string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(itemID))
	return int(h.Sum32() % uint32(n))
}

// Block cuts this node's Raft traffic to the given addresses, for fault
// injection in tests; see mux.Listener.Block.
func (s *Store) Block(addrs []string) { s.mux.Block(addrs) }

// Addr returns the address peers dial for this node's Raft traffic.
func (s *Store) Addr() string { return s.mux.Addr().String() }

// WaitReady waits until every shard has a leader and, where this node
// leads, has applied everything committed before its term.
func (s *Store) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if s.Ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("raftstore: waiting for shard leaders: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// logCacheEntries is how many of a group's newest log entries are kept in
// memory for replication (~1 KiB each with batched purchases).
const logCacheEntries = 512

// barrierRetry is the pause between post-election barrier attempts.
const barrierRetry = 100 * time.Millisecond

// Ready reports whether every shard has a known leader and every shard this
// node leads has passed its post-election barrier.
func (s *Store) Ready() bool {
	for _, sh := range s.shards {
		if !sh.HasLeader() || (sh.IsLeader() && !sh.Ready()) {
			return false
		}
	}
	return true
}

// Close shuts every group down and closes the listener.
func (s *Store) Close() error {
	s.disk.close()
	var errs []error
	for _, sh := range s.shards {
		if err := sh.close(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.mux.Close())
	return errors.Join(errs...)
}

// Shard is one Raft group: its FSM, log and transport.
type Shard struct {
	id    int
	cfg   *Config
	log   *slog.Logger
	fsm   *FSM
	raft  *raft.Raft
	wal   *wal.WAL
	trans *raft.NetworkTransport

	batch  batcher      // group commit of purchases (batcher.go)
	disk   *diskMonitor // the store's
	ready  atomic.Bool  // leader and post-election barrier done
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool

	obs     *raft.Observer
	peersMu sync.Mutex
	failing map[string]time.Time // followers whose heartbeats fail -> last failure (while leading)

	guard backupGuard // restores against the flusher's watermark (backup.go)
}

func (s *Store) openShard(id int, dir string) (*Shard, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	cfg := &s.cfg
	out := cfg.RaftLog
	if out == nil {
		out = os.Stderr
	}
	hlog := hclog.New(&hclog.LoggerOptions{
		Name:   "raft-" + strconv.Itoa(id),
		Level:  hclog.LevelFromString(cmp.Or(cfg.RaftLogLevel, "warn")),
		Output: out,
	})
	walDir := filepath.Join(dir, "wal")
	if err := os.MkdirAll(walDir, 0o750); err != nil {
		return nil, err
	}
	w, err := wal.Open(walDir, wal.WithLogger(hlog), wal.WithSegmentSize(cfg.walSegmentSize()))
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hlog)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open snapshots: %w", err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  s.mux.Layer(id),
		MaxPool: 3,
		Timeout: 5 * time.Second,
		// 1 turns pipelining off. hashicorp/raft v1.8.0's pipeline can
		// deadlock: after a follower answers Success=false the decoder quits,
		// one more send parks on a channel nobody reads, and replication to
		// that follower stops for good while heartbeats go on (seen here as
		// a Raft.Shutdown that never returned; grafana/pyroscope#5518). The
		// research measured no throughput difference between 1 and 2.
		MaxRPCsInFlight: 1,
		Logger:          hlog,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = cfg.MaxAppendEntries
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	if err := raft.ValidateConfig(rc); err != nil {
		w.Close()
		trans.Close()
		return nil, err
	}
	sh := &Shard{id: id, cfg: cfg, log: s.log.With("shard", id), fsm: NewFSM(id, cfg.FSM), wal: w, trans: trans, stop: make(chan struct{})}
	sh.batch.sh = sh
	sh.disk = &s.disk
	sh.fsm.onWriteError = s.disk.noteWriteError

	if cfg.Bootstrap {
		has, err := raft.HasExistingState(w, w, snaps)
		if err != nil {
			w.Close()
			trans.Close()
			return nil, err
		}
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(rc, w, w, snaps, trans, conf); err != nil {
				w.Close()
				trans.Close()
				return nil, fmt.Errorf("bootstrap: %w", err)
			}
		}
	}
	// The leader replicates the newest entries; keep them in memory rather
	// than read each back from the WAL file for every follower.
	logs, err := raft.NewLogCache(logCacheEntries, timedLog{LogStore: w, disk: &s.disk, shard: id})
	if err != nil {
		w.Close()
		trans.Close()
		return nil, err
	}
	r, err := raft.NewRaft(rc, sh.fsm, logs, w, snaps, trans)
	if err != nil {
		w.Close()
		trans.Close()
		return nil, err
	}
	sh.raft = r
	obsCh := make(chan raft.Observation, 256)
	sh.failing = make(map[string]time.Time)
	sh.obs = raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(sh.obs)
	sh.wg.Add(3)
	go sh.watchLeadership()
	go sh.watchPeers(obsCh)
	go sh.housekeep()
	if cfg.PayWindow > 0 {
		sh.wg.Add(1)
		go sh.expireLoop()
	}
	return sh, nil
}

// housekeep runs the shard's periodic chores. It takes a snapshot whenever
// SnapshotBytes of commands were applied since the last one. Raft's own trigger counts entries, and a
// busy shard's entries carry hundreds of purchases each: counted in
// entries alone, its log would grow to gigabytes between snapshots, or
// with a small count it would snapshot every few seconds for nothing.
//
// On the leader, it switches the shard's outbox to one entry
// per change (CmdOutboxAppend) once every server applies it: a cluster
// upgraded from a version without it switches once its last voter is new.
func (sh *Shard) housekeep() {
	defer sh.wg.Done()
	t := time.NewTicker(snapshotCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case <-t.C:
		}
		sh.switchOutbox()
		if sh.cfg.SnapshotBytes == 0 || sh.fsm.bytesSinceSnapshot() < sh.cfg.SnapshotBytes {
			continue
		}
		if err := sh.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			sh.log.Warn("snapshot by size", "err", err)
		}
	}
}

// switchOutbox writes CmdOutboxAppend on the leader of a shard that has
// not switched, once every server can apply it.
func (sh *Shard) switchOutbox() {
	if !sh.Ready() || sh.fsm.AppendsChanges() || !sh.allowed(FeatureOutboxAppend) {
		return
	}
	if _, err := sh.apply(&OutboxAppend{Stamp: sh.stamp()}, 16); err != nil {
		sh.log.Debug("switch outbox", "err", err)
	}
}

// snapshotCheckInterval is how often a shard compares the bytes applied
// since its last snapshot with SnapshotBytes.
const snapshotCheckInterval = time.Second

// watchLeadership runs a barrier after each election this node wins, so
// that the FSM holds every entry committed in earlier terms before any
// reader (the item actor) trusts it.
func (sh *Shard) watchLeadership() {
	defer sh.wg.Done()
	ch := sh.raft.LeaderCh()
	for {
		select {
		case <-sh.stop:
			return
		case leader := <-ch:
			if !leader {
				if sh.ready.Swap(false) && sh.cfg.OnLeadership != nil {
					sh.cfg.OnLeadership(sh.id, false)
				}
				continue
			}
			if !sh.barrier() {
				continue // leadership lost: a new LeaderCh signal follows
			}
			if sh.raft.State() == raft.Leader {
				sh.ready.Store(true)
				sh.switchOutbox() // at once, not at the next housekeeping round
				if sh.cfg.OnLeadership != nil {
					sh.cfg.OnLeadership(sh.id, true)
				}
			}
		}
	}
}

// watchPeers tracks, while this node leads, the followers its heartbeats
// fail to reach, for Unreachable.
func (sh *Shard) watchPeers(ch <-chan raft.Observation) {
	defer sh.wg.Done()
	for {
		select {
		case <-sh.stop:
			return
		case o := <-ch:
			sh.peersMu.Lock()
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				sh.failing[string(d.PeerID)] = time.Now()
			case raft.ResumedHeartbeatObservation:
				delete(sh.failing, string(d.PeerID))
			case raft.LeaderObservation: // a new term: replication to every peer starts afresh
				clear(sh.failing)
			}
			sh.peersMu.Unlock()
		}
	}
}

// peerFailWindow is how long a failed heartbeat marks a follower
// unreachable without a newer failure. A follower that stays unreachable
// fails again at least every transport timeout plus half a heartbeat
// timeout (hashicorp/raft's capped backoff); the window only matters if
// the observation that it recovered was dropped (observers never block
// Raft, so a full channel drops).
const peerFailWindow = 30 * time.Second

// Unreachable reports whether this node, leading the shard, currently
// fails to heartbeat the follower id: Raft cannot reach it even though
// gossip may (an asymmetric partition, a blocked Raft port). Handing it
// the leadership would stall the shard's writes for an election timeout
// and fail.
func (sh *Shard) Unreachable(id string) bool {
	sh.peersMu.Lock()
	defer sh.peersMu.Unlock()
	t, ok := sh.failing[id]
	return ok && time.Since(t) < peerFailWindow
}

// barrier commits a barrier in this node's term and reports whether it did.
// A barrier that fails while this node still leads (an enqueue timeout
// under load) is retried: Raft sends no new LeaderCh signal for a leader it
// keeps, so giving up would leave a leader that never serves. It gives up
// when leadership is lost or the shard stops.
func (sh *Shard) barrier() bool {
	for {
		err := sh.raft.Barrier(sh.cfg.ApplyTimeout).Error()
		if err == nil {
			return true
		}
		sh.log.Warn("post-election barrier", "err", err)
		if sh.raft.State() != raft.Leader {
			return false
		}
		select {
		case <-sh.stop:
			return false
		case <-time.After(barrierRetry):
		}
	}
}

// ID returns the shard number.
func (sh *Shard) ID() int { return sh.id }

// FSM returns the shard's state machine, for reads.
func (sh *Shard) FSM() *FSM { return sh.fsm }

// Raft returns the underlying Raft instance, for membership and status.
func (sh *Shard) Raft() *raft.Raft { return sh.raft }

// IsLeader reports whether this node leads the shard.
func (sh *Shard) IsLeader() bool { return sh.raft.State() == raft.Leader }

// Ready reports whether this node leads the shard and its FSM is current.
func (sh *Shard) Ready() bool { return sh.ready.Load() && sh.IsLeader() }

// HasLeader reports whether the shard has a known leader.
func (sh *Shard) HasLeader() bool {
	addr, _ := sh.raft.LeaderWithID()
	return addr != ""
}

// Term returns the shard's current Raft term as this node knows it.
func (sh *Shard) Term() uint64 { return sh.raft.CurrentTerm() }

// Leader returns the leader's address and ID, empty if unknown.
func (sh *Shard) Leader() (addr, id string) {
	a, i := sh.raft.LeaderWithID()
	return string(a), string(i)
}

// command is a log command that encodes itself.
type command interface {
	Encode(dst []byte) ([]byte, error)
}

// apply encodes a command and replicates it. A command the decoder would
// refuse is refused here, before Raft: it answers sale.ErrInvalidRequest
// and the log is untouched.
func (sh *Shard) apply(c command, sizeHint int) (any, error) {
	b, err := c.Encode(make([]byte, 0, sizeHint))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", sale.ErrInvalidRequest, err)
	}
	return sh.Apply(b)
}

// Apply replicates one encoded command and returns the FSM's response.
// It blocks until the entry is applied on this node, leadership is lost, or
// the shard shuts down. sale.ErrNotLeader and sale.ErrUnavailable mean the command was
// not applied; sale.ErrUnknownOutcome means it may have been.
func (sh *Shard) Apply(cmd []byte) (any, error) {
	if sh.raft.State() != raft.Leader {
		return nil, sale.ErrNotLeader
	}
	f := sh.raft.Apply(cmd, sh.cfg.ApplyTimeout)
	// hashicorp/raft may never answer a future whose entry was committed
	// but not yet applied when it shuts down (hashicorp/raft#498). A closing
	// shard therefore answers for it: the outcome is unknown. The goroutine
	// ends when Raft answers, or with the process.
	errc := make(chan error, 1)
	go func() { errc <- f.Error() }()
	select {
	case err := <-errc:
		if err != nil {
			sh.disk.noteWriteError(err)
			return nil, mapRaftError(err)
		}
		return f.Response(), nil
	case <-sh.stop:
		return nil, sale.ErrUnknownOutcome
	}
}

func mapRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return sale.ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return sale.ErrUnavailable
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", sale.ErrUnknownOutcome, err)
	}
	return fmt.Errorf("%w: %v", sale.ErrUnavailable, err)
}

// applyItem applies a command whose response is an Item or an error.
func (sh *Shard) applyItem(c command) (sale.Item, error) {
	resp, err := sh.apply(c, 64)
	if err != nil {
		return sale.Item{}, err
	}
	switch r := resp.(type) {
	case sale.Item:
		return r, nil
	case error:
		return sale.Item{}, r
	}
	return sale.Item{}, fmt.Errorf("raftstore: unexpected response %T", resp)
}

func (sh *Shard) stamp() int64 { return sh.cfg.Now().UnixNano() }

// CreateItem creates an item; sale.ErrItemExists if the ID is taken.
func (sh *Shard) CreateItem(c CreateItem) (sale.Item, error) {
	c.Stamp = sh.stamp()
	return sh.applyItem(&c)
}

// Restock adds delta units to an item's stock.
func (sh *Shard) Restock(itemID string, delta int64) (sale.Item, error) {
	return sh.applyItem(&Restock{Stamp: sh.stamp(), ItemID: itemID, Delta: delta})
}

// SetPaused pauses or resumes an item's sale.
func (sh *Shard) SetPaused(itemID string, paused bool) (sale.Item, error) {
	return sh.applyItem(&SetPaused{Stamp: sh.stamp(), ItemID: itemID, Paused: paused})
}

// EndSale closes an item's sale window now. It is refused with
// sale.ErrFeatureUnavailable while a server of the shard runs a version
// that cannot apply it.
func (sh *Shard) EndSale(itemID string) (sale.Item, error) {
	if !sh.allowed(FeatureAdminCommands) {
		return sale.Item{}, sale.ErrFeatureUnavailable
	}
	return sh.applyItem(&EndSale{Stamp: sh.stamp(), ItemID: itemID})
}

// Cancel cancels an order (FSM.cancelLocked says which) and returns it,
// cancelled. Like EndSale it waits for every server of the shard to apply
// it.
//
// It also waits for the shard's outbox switch (CmdOutboxAppend): before it,
// a cancel applied while the flusher held the order's entry would never
// reach the store, and the store would go on counting a unit the sale
// sells again. (Pay and expiry keep the earlier versions' way until the
// switch, which the leader writes within a second of the last voter's
// upgrade.)
func (sh *Shard) Cancel(orderID uint64) (orders.Order, error) {
	if !sh.allowed(FeatureAdminCommands) || !sh.fsm.AppendsChanges() {
		return orders.Order{}, sale.ErrFeatureUnavailable
	}
	return sh.applyOrder(&Cancel{Stamp: sh.stamp(), OrderID: orderID}, 24)
}

// applyOrder applies a command whose response is an order or an error.
func (sh *Shard) applyOrder(c command, size int) (orders.Order, error) {
	resp, err := sh.apply(c, size)
	if err != nil {
		return orders.Order{}, err
	}
	switch r := resp.(type) {
	case orders.Order:
		return r, nil
	case error:
		return orders.Order{}, r
	}
	return orders.Order{}, fmt.Errorf("raftstore: unexpected response %T", resp)
}

// PurchaseBatch applies a batch of purchases of one item through the
// shard's batcher (batcher.go): with the batches other items sent while
// the previous entry was in flight, in one entry. On success the results
// are in the batch's order.
func (sh *Shard) PurchaseBatch(itemID string, ps []Purchase) ([]PurchaseResult, error) {
	return sh.batch.purchase(itemID, ps)
}

// purchaseBatch stamps and applies one item's batch as its own entry.
func (sh *Shard) purchaseBatch(itemID string, ps []Purchase) ([]PurchaseResult, error) {
	b := PurchaseBatch{Stamp: sh.stamp(), ItemID: itemID, Purchases: ps, PayWindow: int64(sh.cfg.PayWindow)}
	resp, err := sh.apply(&b, 16+len(ps)*32)
	if err != nil {
		return nil, err
	}
	res, ok := resp.([]PurchaseResult)
	if !ok || len(res) != len(ps) {
		return nil, fmt.Errorf("raftstore: unexpected purchase response %T", resp)
	}
	sh.batch.entries.Add(1)
	sh.batch.purchases.Add(uint64(len(ps)))
	return res, nil
}

// PurchaseStats counts the purchase entries this node wrote as the shard's
// leader.
type PurchaseStats struct {
	Entries          uint64 // purchase entries, of either kind
	MultiItemEntries uint64 // of which PurchaseEntry (several items)
	Purchases        uint64 // purchases they carried
}

// PurchaseStats returns what this node wrote as the shard's leader.
func (sh *Shard) PurchaseStats() PurchaseStats {
	return PurchaseStats{Entries: sh.batch.entries.Load(), MultiItemEntries: sh.batch.multi.Load(), Purchases: sh.batch.purchases.Load()}
}

// allowed reports whether every voter of the shard reads entries of
// feature f.
func (sh *Shard) allowed(f Feature) bool {
	return sh.cfg.Allowed == nil || sh.cfg.Allowed(sh.id, f)
}

// Pay pays an order within its payment window.
func (sh *Shard) Pay(orderID uint64, userID string) (orders.Order, error) {
	return sh.applyOrder(&Pay{Stamp: sh.stamp(), OrderID: orderID, UserID: userID}, 32)
}

// PayWindow returns the configured payment window (0: orders are final).
func (sh *Shard) PayWindow() time.Duration { return sh.cfg.PayWindow }

// IsFlushLeader reports whether this node should flush the shard's orders.
// It implements orders.Source.
func (sh *Shard) IsFlushLeader() bool { return sh.Ready() }

// Unflushed implements orders.Source.
func (sh *Shard) Unflushed(max int) []orders.Order {
	sh.guard.noteRead()
	return sh.fsm.Unflushed(max)
}

// MarkFlushed records the flushed watermark, an outbox Seq, through Raft.
// It implements orders.Source.
// It is refused if the shard was restored since the outbox was read.
func (sh *Shard) MarkFlushed(upTo uint64) error {
	return sh.guard.markFlushed(func() error {
		_, err := sh.apply(&MarkFlushed{Stamp: sh.stamp(), UpTo: upTo}, 24)
		return err
	})
}

// ShardStatus is a point-in-time view of a shard for the status endpoint.
type ShardStatus struct {
	ID           int      `json:"id"`
	State        string   `json:"state"`
	Leader       string   `json:"leader"`
	LeaderAddr   string   `json:"leader_addr"`
	Voters       []string `json:"voters"`
	NonVoters    []string `json:"non_voters"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	LastContact  string   `json:"last_contact"`
	Items        int      `json:"items"`
	Unflushed    int      `json:"unflushed_orders"` // outbox entries not yet in the order store
	Awaiting     int      `json:"awaiting_payment"`
	FlushedSeq   uint64   `json:"flushed_seq"` // outbox watermark
}

// Status returns the shard's status.
func (sh *Shard) Status() ShardStatus {
	st := sh.raft.Stats()
	addr, id := sh.Leader()
	fs := sh.fsm.Stats()
	ss := ShardStatus{
		ID:           sh.id,
		State:        sh.raft.State().String(),
		Leader:       id,
		LeaderAddr:   addr,
		Voters:       []string{},
		NonVoters:    []string{},
		Term:         parseUint(st["term"]),
		CommitIndex:  sh.raft.CommitIndex(),
		AppliedIndex: sh.raft.AppliedIndex(), // includes entries the FSM does not see (barriers, configuration)
		LastContact:  st["last_contact"],
		Items:        fs.Items,
		Unflushed:    fs.Pending,
		Awaiting:     fs.Awaiting,
		FlushedSeq:   fs.FlushedUpTo,
	}
	if f := sh.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			if srv.Suffrage == raft.Voter {
				ss.Voters = append(ss.Voters, string(srv.ID))
			} else {
				ss.NonVoters = append(ss.NonVoters, string(srv.ID))
			}
		}
	}
	return ss
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

func (sh *Shard) close() error {
	if sh.closed.Swap(true) {
		return nil
	}
	close(sh.stop)
	sh.raft.DeregisterObserver(sh.obs)
	// Raft's shutdown joins all its goroutines; one stuck in the library
	// (see "No pipelined replication" in DESIGN.md) would hold the node's
	// exit forever. Past shutdownMax the shard is abandoned as it is: its
	// log is on disk, and the process is about to exit.
	done := make(chan error, 1)
	go func() { done <- sh.raft.Shutdown().Error() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(shutdownMax):
		return fmt.Errorf("raftstore: shard %d: raft did not shut down within %s", sh.id, shutdownMax)
	}
	sh.wg.Wait()
	return errors.Join(err, sh.trans.Close(), sh.wal.Close())
}

// shutdownMax bounds how long closing a shard waits for Raft to stop.
const shutdownMax = 10 * time.Second
