package faults

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flashstock/flashstock/internal/clock"
)

// Disk faults. For the disk scenarios each node's data dir is a file
// system of its own: an ext4 image on a loop device (no blocks reserved for
// root, so the node, which runs as root here, fills it as an unprivileged
// process would), mounted at the data dir, and each node process is in a
// blkio cgroup of its own. A full disk is a file that takes every free
// block; a slow disk is a write IOPS limit on the node's loop device in
// its cgroup (cgroup v1 blkio.throttle), which really slows its fsyncs:
// measured here, a 4 KiB O_DSYNC write went from 4 ms to 48 ms at 20 IOPS.
const (
	diskImageBytes = 512 << 20
	// slowDiskIOPS is the write IOPS the slow disk allows: a Raft log
	// write (data, then the journal's commit) takes 100 ms or more.
	slowDiskIOPS = 20
	// unreadyGoal is how soon a node whose disk filled must say so.
	unreadyGoal = 2 * time.Second
	// leaderMoveWait bounds the wait for a sick leader to hand its
	// shard away: the slow-disk judgement looks at 5 s of writes, the
	// reconciler acts within its 1 s round.
	leaderMoveWait = 20 * time.Second
)

// nodeDisk is one node's file system and cgroup.
type nodeDisk struct {
	image, dev, mount, cgroup string
	devNum                    string // "major:minor" of the loop device
}

// disks are the nodes' file systems of one scenario.
type disks [nodes]*nodeDisk

// setupDisks makes the nodes' file systems under dataDir (the data dirs
// dataDir/n0..) and their cgroups. On error it undoes what it made.
func (e *Env) setupDisks(ctx context.Context, dataDir string) (d *disks, err error) {
	d = new(disks)
	defer func() {
		if err != nil {
			d.teardown(context.Background(), e)
			d = nil
		}
	}()
	for i := range d {
		nd := &nodeDisk{
			image:  filepath.Join(e.cfg.StateDir, fmt.Sprintf("disk-n%d.img", i)),
			mount:  filepath.Join(dataDir, fmt.Sprintf("n%d", i)),
			cgroup: filepath.Join("/sys/fs/cgroup/blkio", fmt.Sprintf("%s-n%d", e.cfg.Prefix, i)),
		}
		d[i] = nd
		_ = os.Remove(nd.image)
		f, err := os.Create(nd.image)
		if err != nil {
			return d, err
		}
		err = f.Truncate(diskImageBytes)
		f.Close()
		if err != nil {
			return d, err
		}
		out, err := run(ctx, time.Minute, nil, "losetup", "--find", "--show", nd.image)
		if err != nil {
			return d, fmt.Errorf("faults: losetup: %v: %s", err, out)
		}
		nd.dev = strings.TrimSpace(out)
		if out, err = run(ctx, time.Minute, nil, "lsblk", "-dno", "MAJ:MIN", nd.dev); err != nil {
			return d, fmt.Errorf("faults: lsblk %s: %v: %s", nd.dev, err, out)
		}
		nd.devNum = strings.TrimSpace(out)
		if out, err := run(ctx, 2*time.Minute, nil, "mkfs.ext4", "-q", "-F", "-m", "0", nd.dev); err != nil {
			return d, fmt.Errorf("faults: mkfs.ext4 %s: %v: %s", nd.dev, err, out)
		}
		if err := os.MkdirAll(nd.mount, 0o755); err != nil {
			return d, err
		}
		if out, err := run(ctx, time.Minute, nil, "mount", nd.dev, nd.mount); err != nil {
			return d, fmt.Errorf("faults: mount %s: %v: %s", nd.dev, err, out)
		}
		if err := os.Mkdir(nd.cgroup, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return d, fmt.Errorf("faults: blkio cgroup (cgroup v1 with blkio needed): %w", err)
		}
	}
	return d, nil
}

// teardown unmounts, detaches and removes what setupDisks made; it is safe
// on a partial setup and on nil.
func (d *disks) teardown(ctx context.Context, e *Env) {
	if d == nil {
		return
	}
	for _, nd := range d {
		if nd == nil {
			continue
		}
		if nd.dev != "" {
			_ = nd.throttle(0)
			_, _ = run(ctx, time.Minute, nil, "umount", "-l", nd.mount)
			_, _ = run(ctx, time.Minute, nil, "losetup", "-d", nd.dev)
		}
		// The cgroup empties once its node exits; it may still be
		// exiting.
		for range 50 {
			if err := os.Remove(nd.cgroup); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = os.Remove(nd.image)
	}
	e.logf("disks torn down")
}

// join moves a node process into the disk's cgroup.
func (nd *nodeDisk) join(pid int) error {
	return os.WriteFile(filepath.Join(nd.cgroup, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// throttle limits the node's writes to its loop device to iops; 0 lifts
// the limit.
func (nd *nodeDisk) throttle(iops int) error {
	return os.WriteFile(filepath.Join(nd.cgroup, "blkio.throttle.write_iops_device"),
		[]byte(fmt.Sprintf("%s %d", nd.devNum, iops)), 0o644)
}

// fill takes every free block of the disk with one file, and returns its
// size.
func (nd *nodeDisk) fill() (int64, error) {
	path := filepath.Join(nd.mount, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(nd.mount, &st); err != nil {
		return 0, err
	}
	size := int64(st.Bfree) * st.Bsize
	// Most in one allocation, then what is left in small writes until the
	// file system refuses: the node's own writes go on meanwhile.
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, max(size-(1<<20), 0)); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return 0, err
	}
	buf := make([]byte, 64<<10)
	off, _ := f.Seek(0, 2)
	for {
		n, err := f.WriteAt(buf, off)
		off += int64(n)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return off, nil
			}
			return off, err
		}
	}
}

// free removes the filler.
func (nd *nodeDisk) free() error { return os.Remove(filepath.Join(nd.mount, "filler")) }

// fillLeader fills the disk of the hot shard's leader mid-sale: the node
// must turn unready within unreadyGoal (it checks its free space every
// 500 ms), refuse purchases rather than confirm what it could not log,
// hand its leaderships to the healthy nodes, and take purchases again,
// without a restart, once the filler is removed. The checker then finds
// every confirmed order in the order store.
func fillLeader(ctx context.Context, s *scenario, l int, hold time.Duration) error {
	nd := s.disks[l]
	t := time.Now()
	size, err := nd.fill()
	if err != nil {
		_ = nd.free()
		return fmt.Errorf("fill n%d's disk: %w", l, err)
	}
	s.h.Nemesis("inject", fmt.Sprintf("filled n%d's disk (leader): %d MiB", l, size>>20), t)
	unready := s.waitUnready(ctx, l, 10*time.Second)
	switch {
	case unready < 0:
		s.problem("n%d still ready 10 s after its disk filled", l)
	case unready > unreadyGoal:
		s.problem("n%d unready %v after its disk filled; want within %v", l, unready.Round(time.Millisecond), unreadyGoal)
	default:
		s.note("n%d unready %v after its disk filled", l, unready.Round(time.Millisecond))
	}
	s.noteLeaderMove(ctx, l, t, "its disk filled")
	_ = clock.Sleep(ctx, hold-time.Since(t))
	t = time.Now()
	err = nd.free()
	s.h.Nemesis("heal", fmt.Sprintf("freed n%d's disk", l), t)
	if err != nil {
		return err
	}
	if err := s.c.waitReady(ctx, l, rejoinTimeout); err != nil {
		s.problem("n%d not ready within %v of its disk being freed: %v", l, rejoinTimeout, err)
		return nil
	}
	s.note("n%d ready again %v after its disk was freed, no restart", l, time.Since(t).Round(10*time.Millisecond))
	return nil
}

// slowLeader throttles the disk of the hot shard's leader to
// slowDiskIOPS writes a second: a gray failure, the node stays up and in
// the cluster. Its leaderships must move to the nodes whose disks keep up
// (the slow-disk judgement, then the reconciler); the scenario notes when,
// and the purchases' latency while the disk was slow.
func slowLeader(ctx context.Context, s *scenario, l int, hold time.Duration) error {
	nd := s.disks[l]
	t := time.Now()
	if err := nd.throttle(slowDiskIOPS); err != nil {
		return fmt.Errorf("throttle n%d's disk: %w", l, err)
	}
	s.h.Nemesis("inject", fmt.Sprintf("n%d's disk (leader) slowed to %d write IOPS", l, slowDiskIOPS), t)
	s.noteLeaderMove(ctx, l, t, "its disk slowed")
	_ = clock.Sleep(ctx, hold-time.Since(t))
	healAt := time.Now()
	err := nd.throttle(0)
	s.h.Nemesis("heal", fmt.Sprintf("n%d's disk at full speed", l), healAt)
	s.noteLatency(t, healAt, "while the leader's disk was slow")
	return err
}

// waitUnready polls node i's /readyz until it answers anything but 200,
// and returns how long that took; -1 if it did not within timeout.
func (s *scenario) waitUnready(ctx context.Context, i int, timeout time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout && ctx.Err() == nil {
		if s.c.ready(ctx, i) != nil {
			return time.Since(start)
		}
		_ = clock.Sleep(ctx, 50*time.Millisecond)
	}
	return -1
}

// noteLeaderMove waits until node l no longer leads the hot item's shard
// and notes how long after since that took; it is a problem if it does
// not within leaderMoveWait.
func (s *scenario) noteLeaderMove(ctx context.Context, l int, since time.Time, why string) {
	for time.Since(since) < leaderMoveWait && ctx.Err() == nil {
		if now, err := s.c.leaderOf(ctx, s.w.hot.ID); err == nil && now != l {
			s.note("the hot shard's leadership moved from n%d to n%d %v after %s", l, now, time.Since(since).Round(10*time.Millisecond), why)
			return
		}
		_ = clock.Sleep(ctx, 100*time.Millisecond)
	}
	s.problem("n%d still led the hot shard %v after %s", l, leaderMoveWait, why)
}

// noteLatency notes the hot item's confirmed purchases between from and
// to: their count, and the median and 99th percentile of their latency.
func (s *scenario) noteLatency(from, to time.Time, what string) {
	lo, hi := s.h.Ms(from), s.h.Ms(to)
	var ms []float64
	for _, e := range s.h.Events() {
		if e.Phase == PhaseRun && e.Item == s.w.hot.ID && e.Outcome == OutcomeOK && e.StartMs >= lo && e.EndMs <= hi {
			ms = append(ms, e.EndMs-e.StartMs)
		}
	}
	if len(ms) == 0 {
		s.note("no confirmed hot purchase %s", what)
		return
	}
	slices.Sort(ms)
	at := func(q float64) time.Duration {
		return msDuration(ms[min(len(ms)-1, int(math.Ceil(q*float64(len(ms))))-1)])
	}
	s.note("%d hot purchases confirmed %s: median %v, p99 %v", len(ms), what,
		at(0.5).Round(100*time.Microsecond), at(0.99).Round(100*time.Microsecond))
}
