package raftstore

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
)

// TestDiskSlowJudgement: the log's writes make the disk slow when most of
// the last few seconds' writes were over the threshold, or one has been
// running for longer than stuckWrite; it is healthy again once fewer than
// a quarter are slow.
func TestDiskSlowJudgement(t *testing.T) {
	d := &diskMonitor{dir: t.TempDir(), slowWrite: 50 * time.Millisecond, inflight: []*atomic.Int64{new(atomic.Int64)},
		log: func(string, ...any) {}}
	now := time.Unix(1_000_000, 0)
	writes := func(at time.Time, n, slow int) {
		for i := range n {
			d.writes.observe(at, i < slow)
		}
	}
	judge := func(at time.Time) bool { d.judgeWrites(at); return d.slow.Load() }

	writes(now, 9, 9)
	if judge(now) {
		t.Fatal("slow after 9 writes; want at least slowMinWrites before judging")
	}
	writes(now.Add(time.Second), 3, 1) // 12 writes, 10 slow
	if !judge(now.Add(time.Second)) {
		t.Fatal("not slow with 10 of 12 writes slow")
	}
	// Half slow: neither healthy (a quarter) nor slow (most): it stays.
	later := now.Add(10 * time.Second)
	writes(later, 20, 10)
	if !judge(later) {
		t.Fatal("healthy again with half the writes slow; want the hysteresis to hold")
	}
	writes(later.Add(time.Second), 40, 0) // 60 writes, 10 slow
	if judge(later.Add(time.Second)) {
		t.Fatal("still slow with 10 of 60 writes slow")
	}
	// A write that never completes.
	d.inflight[0].Store(later.Add(2 * time.Second).UnixNano())
	if judge(later.Add(3 * time.Second)) {
		t.Fatal("slow after a write running 1 s")
	}
	if !judge(later.Add(2*time.Second + stuckWrite + time.Millisecond)) {
		t.Fatal("not slow with a write stuck past stuckWrite")
	}
	// Off: never judged.
	off := &diskMonitor{inflight: d.inflight, log: d.log}
	off.judgeWrites(later.Add(time.Hour))
	if off.slow.Load() {
		t.Fatal("judged slow with the judgement off")
	}
}

// TestTimedLogKeepsMonotonic: the timing wrapper must pass on raft-wal's
// IsMonotonic, or hashicorp/raft leaves a gap in the log after a snapshot
// install or a restore and the next append fails.
func TestTimedLogKeepsMonotonic(t *testing.T) {
	w, err := wal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var store raft.LogStore = timedLog{LogStore: w, disk: &diskMonitor{inflight: []*atomic.Int64{new(atomic.Int64)}}}
	cache, err := raft.NewLogCache(4, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []raft.LogStore{store, cache} {
		if m, ok := s.(raft.MonotonicLogStore); !ok || !m.IsMonotonic() {
			t.Errorf("%T: IsMonotonic not passed on", s)
		}
	}
}
