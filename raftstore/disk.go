package raftstore

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Disk health. A node whose disk fills must say so and stop taking
// purchases before its write-ahead log has no room left for the entries it
// would confirm: raft-wal preallocates segments, so the log keeps
// accepting entries into the last segment while snapshots and the order
// store already fail, and when the next segment cannot be created the
// leader steps down mid-sale. So the store watches the free space of its
// data dir (statfs, every diskCheckInterval) against DiskReserve, and
// remembers the last write that failed for want of space. While either
// says trouble, DiskTrouble reports it: the engine refuses purchases with
// 503 unavailable (nothing confirmed is at risk: what is committed is on
// disk), the node is not ready, and metrics and a log line say why. Once
// space is freed it clears by itself, no restart needed.

// diskCheckInterval is how often the free space is read: the node turns
// unready within about this long of the disk crossing the reserve.
const diskCheckInterval = 500 * time.Millisecond

// writeErrorHold is how long a failed write keeps the disk in trouble
// after the last one.
const writeErrorHold = 10 * time.Second

// Slow disk. A disk can also fail slowly: a volume throttled or degraded
// takes tens or hundreds of milliseconds per fsync. Raft keeps working,
// but a leader on such a disk makes every purchase of its shards wait for
// it. So the store times its log's writes (raft-wal's StoreLogs: a write
// and an fsync) and judges, at every check, the last slowWindow seconds:
// the disk is slow when at least slowMinWrites writes were made and most
// of them took longer than SlowWrite, or when a write has been running for
// longer than stuckWrite (a disk that stopped answering completes
// nothing). It is healthy again when fewer than a quarter were slow. A
// slow disk does not refuse purchases (the shard still commits, just
// slowly); the cluster moves this node's leaderships to voters whose disks
// keep up (cluster.Reconciler), as it does for a node Raft cannot reach.
const (
	slowWindow    = 5 // seconds
	slowMinWrites = 10
	stuckWrite    = 2 * time.Second
)

// writeLatency is a sliding window of the log's write times, one bucket
// per second.
type writeLatency struct {
	mu      sync.Mutex
	buckets [slowWindow]latencyBucket
}

type latencyBucket struct {
	sec     int64
	n, slow int
}

// observe records one write that took d, at now; slow says d was over
// the threshold.
func (w *writeLatency) observe(now time.Time, slow bool) {
	sec := now.Unix()
	w.mu.Lock()
	b := &w.buckets[sec%slowWindow]
	if b.sec != sec {
		*b = latencyBucket{sec: sec}
	}
	b.n++
	if slow {
		b.slow++
	}
	w.mu.Unlock()
}

// window returns the writes and slow writes of the last slowWindow
// seconds before now.
func (w *writeLatency) window(now time.Time) (n, slow int) {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.buckets {
		if sec-b.sec < slowWindow {
			n, slow = n+b.n, slow+b.slow
		}
	}
	return n, slow
}

// diskMonitor is a store's view of its disk.
type diskMonitor struct {
	dir string
	mu  sync.Mutex // guards reserve, which tests change
	// reserve is the free space under which the disk is low.
	reserve uint64
	// slowWrite is the log write time over which a write counts as slow;
	// 0 turns the slow-disk judgement off.
	slowWrite time.Duration
	writes    writeLatency
	inflight  []*atomic.Int64 // per shard: start of the log write in progress, unix nanos; 0 for none
	slow      atomic.Bool

	free       atomic.Uint64 // bytes free at the last check
	low        atomic.Bool   // free < reserve at the last check
	lastErr    atomic.Int64  // unix nanos of the last write that failed for want of space
	writeFails atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
	log  func(msg string, args ...any)
}

func (d *diskMonitor) start() {
	d.stop = make(chan struct{})
	d.check()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(diskCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				d.check()
			}
		}
	}()
}

func (d *diskMonitor) close() {
	if d.stop != nil {
		close(d.stop)
		d.wg.Wait()
		d.stop = nil
	}
}

// check reads the free space and logs a crossing of the reserve.
func (d *diskMonitor) check() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &st); err != nil {
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	d.free.Store(free)
	d.mu.Lock()
	reserve := d.reserve
	d.mu.Unlock()
	d.judgeWrites(time.Now())
	low := free < reserve
	if was := d.low.Swap(low); was != low {
		if low {
			d.log("disk low: refusing purchases until space is freed", "dir", d.dir, "free_bytes", free, "reserve_bytes", reserve)
		} else {
			d.log("disk space back: taking purchases again", "dir", d.dir, "free_bytes", free)
		}
	}
}

// judgeWrites decides whether the log's writes are persistently slow, and
// logs a change.
func (d *diskMonitor) judgeWrites(now time.Time) {
	if d.slowWrite <= 0 {
		return
	}
	n, slowN := d.writes.window(now)
	var stuck time.Duration
	for _, in := range d.inflight {
		if start := in.Load(); start != 0 {
			stuck = max(stuck, now.Sub(time.Unix(0, start)))
		}
	}
	was := d.slow.Load()
	slow := was
	switch {
	case stuck > stuckWrite:
		slow = true
	case n >= slowMinWrites && 2*slowN > n:
		slow = true
	case 4*slowN < n || n == 0:
		slow = false
	}
	if slow == was {
		return
	}
	d.slow.Store(slow)
	if slow {
		d.log("disk slow: the log's writes take longer than the threshold; handing this node's leaderships to voters with faster disks",
			"dir", d.dir, "threshold", d.slowWrite, "writes", n, "slow_writes", slowN, "stuck_for", stuck)
	} else {
		d.log("disk no longer slow", "dir", d.dir, "writes", n, "slow_writes", slowN)
	}
}

// timeWrite runs the log write f of shard, timing it.
func (d *diskMonitor) timeWrite(shard int, f func() error) error {
	start := time.Now()
	in := d.inflight[shard]
	in.Store(start.UnixNano())
	err := f()
	in.Store(0)
	if d.slowWrite > 0 {
		d.writes.observe(start, time.Since(start) > d.slowWrite)
	}
	return err
}

// noteWriteError records err if it is a write that failed for want of
// space (or quota).
func (d *diskMonitor) noteWriteError(err error) {
	if err == nil || !(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return
	}
	d.writeFails.Add(1)
	if prev := d.lastErr.Swap(time.Now().UnixNano()); time.Since(time.Unix(0, prev)) > writeErrorHold {
		d.log("disk full: a write failed", "dir", d.dir, "err", err)
	}
}

// DiskHealth is the store's view of its disk.
type DiskHealth struct {
	FreeBytes    uint64
	ReserveBytes uint64
	Low          bool   // free space under the reserve
	WriteFailing bool   // a write failed for want of space within writeErrorHold
	WriteFails   uint64 // such writes since start
	// Slow is set while the log's writes are persistently slow (see
	// writeLatency).
	Slow bool
}

// Trouble reports whether the store must not take purchases.
func (h DiskHealth) Trouble() bool { return h.Low || h.WriteFailing }

// DiskHealth returns the store's view of its disk.
func (s *Store) DiskHealth() DiskHealth {
	d := &s.disk
	last := d.lastErr.Load()
	d.mu.Lock()
	reserve := d.reserve
	d.mu.Unlock()
	return DiskHealth{FreeBytes: d.free.Load(), ReserveBytes: reserve, Low: d.low.Load(),
		WriteFailing: last != 0 && time.Since(time.Unix(0, last)) < writeErrorHold, WriteFails: d.writeFails.Load(),
		Slow: d.slow.Load()}
}

// Sick names what makes this node a poor leader now: "disk_full" (it
// refuses purchases), "disk_slow" (its log's writes are persistently
// slow), or "" when nothing does. The cluster hands a sick node's
// leaderships to healthy voters and gives it none.
func (s *Store) Sick() string {
	switch {
	case s.DiskTrouble():
		return "disk_full"
	case s.disk.slow.Load():
		return "disk_slow"
	}
	return ""
}

// DiskTrouble reports whether the store must not take purchases now: its
// disk is under the reserve, or a write failed for want of space lately.
func (s *Store) DiskTrouble() bool {
	if s.disk.low.Load() {
		return true
	}
	last := s.disk.lastErr.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < writeErrorHold
}

// SetDiskReserveForTest changes the reserve of a running store: fault
// injection for tests, which cannot fill the machine's disk.
func (s *Store) SetDiskReserveForTest(bytes uint64) {
	s.disk.mu.Lock()
	s.disk.reserve = bytes
	s.disk.mu.Unlock()
}

// timedLog is a shard's log store with its writes timed for the slow-disk
// judgement.
type timedLog struct {
	raft.LogStore
	disk  *diskMonitor
	shard int
}

// StoreLog implements raft.LogStore.
func (l timedLog) StoreLog(e *raft.Log) error {
	return l.disk.timeWrite(l.shard, func() error { return l.LogStore.StoreLog(e) })
}

// StoreLogs implements raft.LogStore.
func (l timedLog) StoreLogs(es []*raft.Log) error {
	return l.disk.timeWrite(l.shard, func() error { return l.LogStore.StoreLogs(es) })
}

// IsMonotonic implements raft.MonotonicLogStore: raft-wal
// refuses an append that does not follow its last entry, so after a user
// restore (and a follower's snapshot install) hashicorp/raft must empty the
// log rather than leave a gap in it, and it asks the log store it was
// given. Without this the timing wrapper hid raft-wal's answer and the
// first entry after a restore failed ("non-monotonic log entries"), every
// new leader stepping down on it.
func (l timedLog) IsMonotonic() bool {
	m, ok := l.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}
