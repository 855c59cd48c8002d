package raftstore_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/raftstore"
)

// legacyLog is the log behind testdata/snapshot-gob-v1.bin, a snapshot the
// previous version (gob, one map per memory) wrote after applying it with
// legacyConfig: items, buyers, request IDs, a payment window with a paid
// and two expired orders, a flushed watermark and recent orders. The Pay
// command pays the first order of entry 4.
func legacyLog(payID uint64) []encoder {
	const sec = int64(time.Second)
	pw := int64(60 * time.Second)
	pb := func(stamp int64, item string, window int64, ps ...raftstore.Purchase) *raftstore.PurchaseBatch {
		return &raftstore.PurchaseBatch{Stamp: stamp, ItemID: item, Purchases: ps, PayWindow: window}
	}
	return []encoder{
		&raftstore.CreateItem{Stamp: 1 * sec, ID: "a", Name: "A", Stock: 10, PerUserLimit: 2},
		&raftstore.CreateItem{Stamp: 2 * sec, ID: "b", Name: "B", Stock: 5, PerUserLimit: 1, StartsAt: 3 * sec, EndsAt: 1000 * sec},
		pb(10*sec, "a", 0, p("u1", "r1", 2), p("u2", "r1", 1), p("u3", "", 1)),
		pb(20*sec, "b", pw, p("u1", "r2", 1), p("u2", "r2", 1), p("u3", "r3", 1)),
		&raftstore.MarkFlushed{Stamp: 21 * sec, UpTo: 2},
		&raftstore.Pay{Stamp: 30 * sec, OrderID: payID, UserID: "u1"},
		&raftstore.SetPaused{Stamp: 31 * sec, ItemID: "b", Paused: true},
		&raftstore.Restock{Stamp: 32 * sec, ItemID: "a", Delta: 3},
		&raftstore.Expire{Stamp: 85 * sec},
		pb(86*sec, "a", 0, p("u4", "r5", 1)),
	}
}

var legacyConfig = raftstore.FSMConfig{DedupRetention: 100 * time.Second, DedupMax: 50, OrderRetention: time.Hour, OrderRetentionMax: 100}

// TestFSMRestoresEarlierFormat: a node upgraded in place restores the gob
// snapshot its previous version wrote, into the same state as applying the
// log that made it, and both answer the next commands alike.
func TestFSMRestoresEarlierFormat(t *testing.T) {
	data, err := os.ReadFile("testdata/snapshot-gob-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	r := newFSMRig(t, 2, legacyConfig)
	var payID uint64
	for i := range len(legacyLog(0)) {
		resp := r.apply(legacyLog(payID)[i])
		if rs, ok := resp.([]raftstore.PurchaseResult); ok && i == 3 {
			payID = rs[0].Order.ID
		}
	}
	g := restored(t, 2, legacyConfig, data)
	items, users, requests := []string{"a", "b"}, []string{"u1", "u2", "u3", "u4"}, []string{"r1", "r2", "r3", "r5"}
	want := observe(r.f, items, users, requests)
	if want.Stats.Awaiting != 0 || want.Stats.Pending == 0 || len(want.Requests) < 5 {
		t.Fatalf("the log's state is not what the fixture was made from: %+v", want.Stats)
	}
	if d := diffObserved(observe(g, items, users, requests), want); d != "" {
		t.Fatalf("restored from the earlier format, the state differs:\n%s", d)
	}
	for _, id := range []uint64{payID, payID + 1, payID + 2} {
		a, aStored, aOK := r.f.LookupOrder(id)
		b, bStored, bOK := g.LookupOrder(id)
		if a != b || aStored != bStored || aOK != bOK {
			t.Errorf("LookupOrder(%d): applied %+v %v %v; restored %+v %v %v", id, a, aStored, aOK, b, bStored, bOK)
		}
	}
	gr := &fsmRig{t: t, shard: 2, f: g, index: r.index, now: r.now}
	for i, cmd := range []encoder{
		&raftstore.Pay{Stamp: 90 * time.Second.Nanoseconds(), OrderID: payID, UserID: "u1"},
		batch(91*time.Second.Nanoseconds(), "a", p("u1", "r1", 1), p("u4", "r6", 1), p("u5", "r7", 2)),
		&raftstore.MarkFlushed{Stamp: 200 * time.Second.Nanoseconds(), UpTo: 100},
	} {
		if a, b := r.apply(cmd), gr.apply(cmd); !reflect.DeepEqual(a, b) {
			t.Errorf("next command %d (%T): applied = %+v; restored = %+v", i, cmd, a, b)
		}
	}
}

// TestFSMSnapshotUnderConcurrentApply takes snapshots the way Raft does (on
// the apply goroutine, then Persist on another while Apply goes on) at
// random points of a random log, restores each and compares it with an FSM
// that applied the log up to the snapshot's entry: the view must be the
// state at its index, whatever was applied while it was written.
func TestFSMSnapshotUnderConcurrentApply(t *testing.T) {
	cfg := raftstore.FSMConfig{DedupRetention: 50 * time.Second, DedupMax: 300, OrderRetention: 20 * time.Second, OrderRetentionMax: 200}
	for seed := uint64(1); seed <= 4; seed++ {
		log := crowdLog(rand.New(rand.NewPCG(seed, 7)), 3000)
		r := newFSMRig(t, 1, cfg)
		type taken struct {
			at   int
			data chan []byte
		}
		var snaps []taken
		var wg sync.WaitGroup
		for i, cmd := range log {
			r.apply(cmd)
			if i%400 != 399 {
				continue
			}
			snap, err := r.f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			tk := taken{at: i, data: make(chan []byte, 1)}
			snaps = append(snaps, tk)
			wg.Add(1)
			go func() { // Persist concurrently with the next applies
				defer wg.Done()
				defer snap.Release()
				var sink memSink
				if err := snap.Persist(&sink); err != nil {
					t.Errorf("Persist: %v", err)
				}
				tk.data <- sink.Bytes()
			}()
		}
		wg.Wait()
		for _, tk := range snaps {
			ref := newFSMRig(t, 1, cfg)
			for _, cmd := range log[:tk.at+1] {
				ref.apply(cmd)
			}
			got := restored(t, 1, cfg, <-tk.data)
			want, _ := ref.f.Dump()
			have, _ := got.Dump()
			if !bytes.Equal(have, want) {
				t.Fatalf("seed %d: the snapshot taken after entry %d restores to another state than the log up to it", seed, tk.at+1)
			}
		}
	}
}

// crowdLog is a log of purchases by a crowd over a few items, with
// payments, expiries, flushes and restocks.
func crowdLog(rnd *rand.Rand, n int) []encoder {
	const sec = int64(time.Second)
	out := []encoder{item("x", 100000, 3), item("y", 500, 1)}
	var seq uint64
	for i := 0; len(out) < n; i++ {
		stamp := int64(i+2) * sec / 10
		switch k := rnd.IntN(20); {
		case k < 14:
			var ps []raftstore.Purchase
			for range 1 + rnd.IntN(30) {
				req := ""
				if rnd.IntN(4) > 0 {
					req = fmt.Sprint("r", rnd.IntN(40))
				}
				ps = append(ps, p(fmt.Sprint("u", rnd.IntN(600)), req, int32(1+rnd.IntN(2))))
			}
			it := "x"
			if k%3 == 0 {
				it = "y"
			}
			out = append(out, &raftstore.PurchaseBatch{Stamp: stamp, ItemID: it, Purchases: ps, PayWindow: int64(rnd.IntN(2)) * 5 * sec})
			seq += uint64(len(ps))
		case k < 16:
			out = append(out, &raftstore.MarkFlushed{Stamp: stamp, UpTo: seq / 2})
		case k < 18:
			out = append(out, &raftstore.Expire{Stamp: stamp})
		case k < 19:
			out = append(out, &raftstore.Restock{Stamp: stamp, ItemID: "y", Delta: int64(rnd.IntN(20))})
		default:
			out = append(out, &raftstore.SetPaused{Stamp: stamp, ItemID: "y", Paused: rnd.IntN(2) == 0})
		}
	}
	return out
}

// BenchmarkFSMSnapshotPause is how long Apply waits for Snapshot, and what
// Persist costs, with a million buyers and request IDs remembered.
func BenchmarkFSMSnapshotPause(b *testing.B) {
	const buyers = 1_000_000
	cfg := raftstore.FSMConfig{DedupRetention: time.Hour, DedupMax: 2 * buyers, OrderRetention: time.Minute, OrderRetentionMax: 10000}
	r := newFSMRig(b, 1, cfg)
	r.create(*item("x", 1<<40, 1))
	for i := 0; i < buyers; i += 1000 {
		ps := make([]raftstore.Purchase, 1000)
		for j := range ps {
			ps[j] = p(fmt.Sprint("user-", i+j), "req", 1)
		}
		r.buy(int64(i+2), "x", ps...)
		r.apply(&raftstore.MarkFlushed{Stamp: int64(i + 2), UpTo: uint64(i + 1000)})
	}
	var pause, persist time.Duration
	var size int
	for b.Loop() {
		start := time.Now()
		snap, err := r.f.Snapshot()
		pause += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		var sink memSink
		start = time.Now()
		if err := snap.Persist(&sink); err != nil {
			b.Fatal(err)
		}
		persist += time.Since(start)
		size = sink.Len()
		snap.Release()
		r.buy(int64(buyers+10), "x", p("late", "", 1)) // a write, so the next Snapshot seals a layer
	}
	b.ReportMetric(float64(pause.Microseconds())/float64(b.N), "pause-µs/op")
	b.ReportMetric(float64(persist.Milliseconds())/float64(b.N), "persist-ms/op")
	b.ReportMetric(float64(size)/buyers, "bytes/buyer")
}

// BenchmarkFSMMemoryPerOrder is the heap an order leaves behind once it is
// flushed and out of its retention: its buyer's row (the per-user limit)
// and its remembered request ID.
func BenchmarkFSMMemoryPerOrder(b *testing.B) {
	const n = 500_000
	cfg := raftstore.FSMConfig{DedupRetention: time.Hour, DedupMax: 2 * n, OrderRetention: time.Nanosecond, OrderRetentionMax: 1}
	for b.Loop() {
		r := newFSMRig(b, 1, cfg)
		r.create(*item("x", 1<<40, 1))
		before := heapInUse()
		for i := 0; i < n; i += 1000 {
			ps := make([]raftstore.Purchase, 1000)
			for j := range ps {
				ps[j] = p(fmt.Sprint("user-", i+j), fmt.Sprint("req-", i+j), 1)
			}
			r.buy(int64(i+2), "x", ps...)
			r.apply(&raftstore.MarkFlushed{Stamp: int64(i + 3), UpTo: uint64(i + 1000)})
		}
		r.apply(&raftstore.MarkFlushed{Stamp: int64(n + 10), UpTo: n}) // the last retention expires
		b.ReportMetric(float64(heapInUse()-before)/n, "heap-bytes/order")
		runtime.KeepAlive(r)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}
