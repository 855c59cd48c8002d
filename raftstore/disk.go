package raftstore

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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

// diskMonitor is a store's view of its disk.
type diskMonitor struct {
	dir string
	mu  sync.Mutex // guards reserve, which tests change
	// reserve is the free space under which the disk is low.
	reserve uint64

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
	low := free < reserve
	if was := d.low.Swap(low); was != low {
		if low {
			d.log("disk low: refusing purchases until space is freed", "dir", d.dir, "free_bytes", free, "reserve_bytes", reserve)
		} else {
			d.log("disk space back: taking purchases again", "dir", d.dir, "free_bytes", free)
		}
	}
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
		WriteFailing: last != 0 && time.Since(time.Unix(0, last)) < writeErrorHold, WriteFails: d.writeFails.Load()}
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
