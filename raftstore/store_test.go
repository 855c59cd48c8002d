package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flashstock/flashstock/internal/testutil"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
	"github.com/flashstock/flashstock/sale"
)

// replicationErr reports whether err is one of the replication failures a
// caller must handle (as opposed to a business outcome).
func replicationErr(err error) bool {
	return errors.Is(err, sale.ErrNotLeader) || errors.Is(err, sale.ErrUnavailable) || errors.Is(err, sale.ErrUnknownOutcome)
}

func TestStoreConfigValidate(t *testing.T) {
	valid := raftstoretest.StoreConfig("dir", 2)
	if err := valid.Validate(); err != nil {
		t.Fatalf("Validate() of the test preset = %v; want nil", err)
	}
	tests := []struct {
		name   string
		change func(*raftstore.Config)
	}{
		{"no node id", func(c *raftstore.Config) { c.NodeID = "" }},
		{"no data dir", func(c *raftstore.Config) { c.DataDir = "" }},
		{"zero shards", func(c *raftstore.Config) { c.Shards = 0 }},
		{"too many shards", func(c *raftstore.Config) { c.Shards = orders.ShardsMax + 1 }},
		{"no apply timeout", func(c *raftstore.Config) { c.ApplyTimeout = 0 }},
		{"no dedup max", func(c *raftstore.Config) { c.FSM.DedupMax = 0 }},
		{"no dedup retention", func(c *raftstore.Config) { c.FSM.DedupRetention = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.change(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("Validate() = nil; want an error")
			}
			if c.DataDir != "" {
				c.DataDir = t.TempDir()
			}
			if s, err := raftstore.Open(c); err == nil {
				s.Close()
				t.Errorf("Open() = nil error; want the validation error")
			}
		})
	}
}

func TestShardFor(t *testing.T) {
	// Placement is part of the data format: pin it.
	tests := []struct {
		id     string
		shards int
		want   int
	}{
		{"sku-1", 1, 0}, {"sku-1", 8, 4}, {"sku-1", 3, 0},
		{"iphone-15", 8, 5}, {"iphone-15", 3, 1}, {"a", 8, 4}, {"a", 3, 1},
	}
	for _, tc := range tests {
		if got := raftstore.ShardFor(tc.id, tc.shards); got != tc.want {
			t.Errorf("ShardFor(%q, %d) = %d; want %d", tc.id, tc.shards, got, tc.want)
		}
	}
	counts := make([]int, 8)
	for i := 0; i < 8000; i++ {
		counts[raftstore.ShardFor("item-"+strconv.Itoa(i), 8)]++
	}
	for s, n := range counts {
		if n < 700 || n > 1300 {
			t.Errorf("ShardFor spreads 8000 items unevenly: shard %d has %d", s, n)
		}
	}
}

// storeState is the observable state of every shard of a store.
func storeState(s *raftstore.Store, items, users, requests []string) []observed {
	var out []observed
	for i := 0; i < s.Shards(); i++ {
		out = append(out, observe(s.Shard(i).FSM(), items, users, requests))
	}
	return out
}

func TestStoreReopen(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		name := "log replay"
		if snapshot {
			name = "snapshot and log"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 2))
			if got := s.Shards(); got != 2 {
				t.Fatalf("Shards() = %d; want 2", got)
			}
			ids := []string{raftstoretest.ItemIDForShard("a", 0, 2), raftstoretest.ItemIDForShard("a", 1, 2)}
			users := []string{"u1", "u2", "u3", "u4"}
			requests := []string{"r1", "r2", "r3", "r4"}
			originals := map[string]orders.Order{}
			for shardID, id := range ids {
				if got := s.ShardFor(id); got != shardID {
					t.Fatalf("ShardFor(%q) = %d; want %d", id, got, shardID)
				}
				sh := s.Shard(shardID)
				if _, err := sh.CreateItem(raftstore.CreateItem{ID: id, Name: "x", Stock: 10, PerUserLimit: 3}); err != nil {
					t.Fatalf("CreateItem(%q) = %v; want nil", id, err)
				}
				if _, err := sh.CreateItem(raftstore.CreateItem{ID: id, Stock: 1, PerUserLimit: 1}); !errors.Is(err, sale.ErrItemExists) {
					t.Fatalf("CreateItem(%q) again = %v; want sale.ErrItemExists", id, err)
				}
				res, err := sh.PurchaseBatch(id, []raftstore.Purchase{p("u1", "r1", 2), p("u2", "r2", 1), p("u3", "", 1), p("u1", "r3", 2)})
				if err != nil {
					t.Fatalf("PurchaseBatch(%q) = %v; want nil", id, err)
				}
				wantOut := []sale.Outcome{C, C, C, L}
				for i, pr := range res {
					if pr.Outcome != wantOut[i] {
						t.Errorf("PurchaseBatch(%q) #%d = %v; want %v", id, i, pr.Outcome, wantOut[i])
					}
				}
				originals[id] = res[0].Order
				if err := sh.MarkFlushed(sh.Unflushed(1)[0].Seq); err != nil {
					t.Fatalf("MarkFlushed = %v; want nil", err)
				}
				if _, err := sh.SetPaused(id, true); err != nil {
					t.Fatalf("SetPaused = %v", err)
				}
				if _, err := sh.SetPaused(id, false); err != nil {
					t.Fatalf("SetPaused = %v", err)
				}
				if _, err := sh.Restock(id, 5); err != nil {
					t.Fatalf("Restock = %v", err)
				}
				if _, err := sh.Restock(id, -100); !errors.Is(err, sale.ErrInvalidStock) {
					t.Fatalf("Restock(-100) = %v; want sale.ErrInvalidStock", err)
				}
				if snapshot {
					if err := sh.Raft().Snapshot().Error(); err != nil {
						t.Fatalf("Snapshot() = %v", err)
					}
					// And one entry after the snapshot, replayed from the log.
					if _, err := sh.PurchaseBatch(id, []raftstore.Purchase{p("u4", "r4", 1)}); err != nil {
						t.Fatalf("PurchaseBatch after snapshot = %v", err)
					}
				}
			}
			want := storeState(s, ids, users, requests)
			for i, st := range want {
				if len(st.Unflushed) == 0 || len(st.Requests) == 0 || st.FlushedUpTo == 0 {
					t.Fatalf("shard %d state too thin: %+v", i, st)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close() = %v; want nil", err)
			}

			s2 := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 2))
			// Entries after the last snapshot are applied once the new term commits.
			testutil.WaitFor(t, 10*time.Second, func() bool {
				return reflect.DeepEqual(storeState(s2, ids, users, requests), want)
			})
			for shardID, id := range ids {
				sh := s2.Shard(shardID)
				res, err := sh.PurchaseBatch(id, []raftstore.Purchase{p("u1", "r1", 2), p("u2", "r9", 3)})
				if err != nil {
					t.Fatalf("PurchaseBatch after reopen = %v; want nil", err)
				}
				if res[0].Outcome != D || !reflect.DeepEqual(res[0].Order, originals[id]) {
					t.Errorf("Purchase(%q) retried after reopen = %v %+v; want duplicate of %+v", "r1", res[0].Outcome, res[0].Order, originals[id])
				}
				if res[1].Outcome != L {
					t.Errorf("Purchase(u2, qty 3) after reopen = %v; want %v (limit remembered)", res[1].Outcome, L)
				}
			}
		})
	}
}

// TestStoreReopenAppliedIndex: the status page reports the FSM's applied
// index; after a restart from a snapshot it must not fall back to zero.
func TestStoreReopenAppliedIndex(t *testing.T) {
	dir := t.TempDir()
	s := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 1))
	sh := s.Shard(0)
	if _, err := sh.CreateItem(raftstore.CreateItem{ID: "a", Stock: 1, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	if err := sh.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot() = %v", err)
	}
	before := sh.FSM().AppliedIndex()
	s.Close()
	s2 := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 1))
	if got := s2.Shard(0).Status().AppliedIndex; got < before {
		t.Errorf("Status().AppliedIndex after restart from a snapshot = %d; want >= %d (Raft applied %d)", got, before, s2.Shard(0).Raft().AppliedIndex())
	}
}

func TestStoreShardCountFixed(t *testing.T) {
	dir := t.TempDir()
	s := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 2))
	s.Close()
	_, err := raftstore.Open(raftstoretest.StoreConfig(dir, 3))
	if err == nil {
		t.Fatalf("Open(%d shards) over a 2-shard data dir = nil error; want an error", 3)
	}
	if msg := err.Error(); !strings.Contains(msg, "2 shards") || !strings.Contains(msg, "3") || !strings.Contains(msg, "fixed") {
		t.Errorf("Open(3 shards) error = %q; want it to name both counts and say the count is fixed", msg)
	}
	// The refusal changed nothing: the right count still opens.
	s2 := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(dir, 2))
	if got := s2.Shards(); got != 2 {
		t.Errorf("Shards() = %d; want 2", got)
	}
}

func TestStoreStatus(t *testing.T) {
	s := raftstoretest.NewStore(t, 2)
	if !s.Ready() {
		t.Fatalf("Ready() = false after WaitReady")
	}
	if a := s.Addr(); !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
		t.Errorf("Addr() = %q; want the bound 127.0.0.1 port", a)
	}
	for i := 0; i < 2; i++ {
		sh := s.Shard(i)
		st := sh.Status()
		if st.ID != i || st.State != "Leader" || st.Leader != "node-1" || len(st.Voters) != 1 || st.Term == 0 {
			t.Errorf("Shard(%d).Status() = %+v; want leader node-1, one voter", i, st)
		}
		if !sh.IsLeader() || !sh.Ready() || !sh.HasLeader() || !sh.IsFlushLeader() {
			t.Errorf("Shard(%d): IsLeader %v Ready %v HasLeader %v IsFlushLeader %v; want all true", i, sh.IsLeader(), sh.Ready(), sh.HasLeader(), sh.IsFlushLeader())
		}
	}
}

// TestShardReadyAfterFailedBarrier: a leader whose post-election barrier
// fails (here an enqueue timeout of 1ns, which loses the race against
// Raft's apply channel about half the time) keeps leading, and Raft sends
// no second LeaderCh signal for it. The shard must retry the barrier and
// become ready rather than lead without serving.
func TestShardReadyAfterFailedBarrier(t *testing.T) {
	cfg := raftstoretest.StoreConfig(t.TempDir(), 8)
	cfg.ApplyTimeout = time.Nanosecond
	s := raftstoretest.OpenStore(t, cfg)
	for i := 0; i < s.Shards(); i++ {
		if !s.Shard(i).Ready() {
			t.Errorf("Shard(%d).Ready() = false after WaitReady", i)
		}
	}
}

func TestShardApplyErrors(t *testing.T) {
	cmd := must((&raftstore.CreateItem{ID: "a", Stock: 1, PerUserLimit: 1}).Encode(nil))

	t.Run("closed", func(t *testing.T) {
		s := raftstoretest.NewStore(t, 2)
		sh := s.Shard(0)
		if err := s.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close() = %v; want nil", err)
		}
		if _, err := sh.Apply(cmd); !replicationErr(err) {
			t.Errorf("Apply on a closed shard = %v; want sale.ErrNotLeader, sale.ErrUnavailable or sale.ErrUnknownOutcome", err)
		}
		if _, err := sh.PurchaseBatch("a", []raftstore.Purchase{p("u", "", 1)}); !replicationErr(err) {
			t.Errorf("PurchaseBatch on a closed shard = %v; want a replication error", err)
		}
		if err := sh.MarkFlushed(1); !replicationErr(err) {
			t.Errorf("MarkFlushed on a closed shard = %v; want a replication error", err)
		}
		if sh.Ready() || sh.IsFlushLeader() {
			t.Errorf("closed shard: Ready() = true; want false")
		}
	})

	t.Run("not the leader", func(t *testing.T) {
		// A node that does not bootstrap has no leader: a follower's view.
		cfg := raftstoretest.StoreConfig(t.TempDir(), 1)
		cfg.Bootstrap = false
		s, err := raftstore.Open(cfg)
		if err != nil {
			t.Fatalf("Open() = %v", err)
		}
		defer s.Close()
		if _, err := s.Shard(0).Apply(cmd); !errors.Is(err, sale.ErrNotLeader) {
			t.Errorf("Apply on a follower = %v; want sale.ErrNotLeader", err)
		}
		if _, err := s.Shard(0).CreateItem(raftstore.CreateItem{ID: "a"}); !errors.Is(err, sale.ErrNotLeader) {
			t.Errorf("CreateItem on a follower = %v; want sale.ErrNotLeader", err)
		}
		if s.Ready() {
			t.Errorf("Ready() = true with no leader; want false")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := s.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitReady with no leader = %v; want context.DeadlineExceeded", err)
		}
	})

	t.Run("closed while applying", func(t *testing.T) {
		s := raftstoretest.NewStore(t, 1)
		sh := s.Shard(0)
		if _, err := sh.CreateItem(raftstore.CreateItem{ID: "a", Stock: 1 << 40, PerUserLimit: 1000}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 8; i++ {
					_, err := sh.PurchaseBatch("a", []raftstore.Purchase{p(fmt.Sprint("u", g), "", 1)})
					errs <- err
				}
			}()
		}
		testutil.WaitFor(t, 10*time.Second, func() bool { return len(errs) > 0 })
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !replicationErr(err) {
				t.Errorf("PurchaseBatch during Close = %v; want nil or a replication error", err)
			}
		}
	})
}

// benchItem is a stock and limit no benchmark can exhaust.
func benchItem(id string) raftstore.CreateItem {
	return raftstore.CreateItem{ID: id, Name: "bench", Stock: math.MaxInt64 / 2, PerUserLimit: math.MaxInt32}
}

// benchBatches returns k distinct batches of size purchases each.
func benchBatches(k, size int) [][]raftstore.Purchase {
	out := make([][]raftstore.Purchase, k)
	for b := range out {
		ps := make([]raftstore.Purchase, size)
		for i := range ps {
			ps[i] = raftstore.Purchase{UserID: fmt.Sprintf("user-%d-%d", b, i), Quantity: 1}
		}
		out[b] = ps
	}
	return out
}

func BenchmarkFSMApply(b *testing.B) {
	for _, size := range []int{1, 64, 1024} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			f := raftstore.NewFSM(0, raftstore.FSMConfig{DedupRetention: time.Hour, DedupMax: 1 << 20})
			c := benchItem("a")
			c.Stamp = 1
			f.Apply(logEntry(1, must(c.Encode(nil))))
			var entries [][]byte
			for i, ps := range benchBatches(64, size) {
				entries = append(entries, must((&raftstore.PurchaseBatch{Stamp: int64(i + 2), ItemID: "a", Purchases: ps}).Encode(nil)))
			}
			index := uint64(1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				index++
				res := f.Apply(logEntry(index, entries[i%len(entries)])).([]raftstore.PurchaseResult)
				if res[0].Outcome != C {
					b.Fatalf("Purchase = %v; want confirmed", res[0].Outcome)
				}
				if i%64 == 63 { // keep the pending list bounded, as the flusher does
					index++
					f.Apply(logEntry(index, must((&raftstore.MarkFlushed{Stamp: 1, UpTo: lastSeq(f)}).Encode(nil))))
				}
			}
			b.ReportMetric(float64(b.N)*float64(size)/b.Elapsed().Seconds(), "purchases/s")
		})
	}
}

func BenchmarkShardPurchaseBatch(b *testing.B) {
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprint("batch=", size), func(b *testing.B) {
			s := raftstoretest.NewStore(b, 1)
			sh := s.Shard(0)
			if _, err := sh.CreateItem(benchItem("a")); err != nil {
				b.Fatal(err)
			}
			batches := benchBatches(64, size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := sh.PurchaseBatch("a", batches[i%len(batches)])
				if err != nil || res[0].Outcome != C {
					b.Fatalf("PurchaseBatch = %v, %v; want confirmed", res, err)
				}
				if i%64 == 63 {
					if err := sh.MarkFlushed(lastSeq(sh.FSM())); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)*float64(size)/b.Elapsed().Seconds(), "purchases/s")
		})
	}
}

// lastSeq returns the Seq of the newest outbox entry.
func lastSeq(f *raftstore.FSM) uint64 {
	u := f.Unflushed(1 << 30)
	if len(u) == 0 {
		return 0
	}
	return u[len(u)-1].Seq
}

// TestShardUnreachable: a leader whose heartbeats to a follower fail
// reports the follower unreachable (the leader balancer then never hands
// it the leadership), and reachable again once heartbeats resume.
func TestShardUnreachable(t *testing.T) {
	leader := raftstoretest.OpenStore(t, raftstoretest.StoreConfig(t.TempDir(), 1))
	var followers []*raftstore.Store
	for _, id := range []string{"node-2", "node-3"} {
		cfg := raftstoretest.StoreConfig(t.TempDir(), 1)
		cfg.NodeID, cfg.Bootstrap = id, false
		s, err := raftstore.Open(cfg)
		if err != nil {
			t.Fatalf("Open(%s): %v", id, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := leader.Shard(0).Promote(id, s.Addr()); err != nil {
			t.Fatalf("Promote(%s): %v", id, err)
		}
		followers = append(followers, s)
	}
	sh := leader.Shard(0)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
		}
	}
	if sh.Unreachable("node-2") || sh.Unreachable("node-3") {
		t.Fatalf("a follower is unreachable before any fault")
	}
	leader.Block([]string{followers[0].Addr()})
	eventually("node-2 unreachable", func() bool { return sh.Unreachable("node-2") })
	if sh.Unreachable("node-3") {
		t.Errorf("node-3 unreachable; only node-2 is blocked")
	}
	if _, err := sh.CreateItem(raftstore.CreateItem{ID: "x", Stock: 1}); err != nil {
		t.Errorf("CreateItem with one of two followers cut off = %v; want nil (quorum holds)", err)
	}
	leader.Block(nil)
	eventually("node-2 reachable again", func() bool { return !sh.Unreachable("node-2") })
}

// TestShardRefusesOutOfBoundsCommands: a command the decoder would refuse
// must never reach the log. A batch of 4,097 purchases once committed, and
// every replica then panicked applying it, at every restart.
func TestShardRefusesOutOfBoundsCommands(t *testing.T) {
	s := raftstoretest.NewStore(t, 1)
	sh := s.Shard(0)
	if _, err := sh.CreateItem(raftstore.CreateItem{ID: "a", Stock: 1 << 20, PerUserLimit: 1}); err != nil {
		t.Fatalf("CreateItem = %v", err)
	}
	long := strings.Repeat("x", sale.IDLenMax+1)
	tooMany := make([]raftstore.Purchase, sale.PurchasesPerEntryMax+1)
	for i := range tooMany {
		tooMany[i] = p("u"+strconv.Itoa(i), "", 1)
	}
	before := sh.Raft().LastIndex()
	refuse := []struct {
		name string
		do   func() error
	}{
		{"a batch over the bound", func() error { _, err := sh.PurchaseBatch("a", tooMany); return err }},
		{"a user id over the bound", func() error { _, err := sh.PurchaseBatch("a", []raftstore.Purchase{p(long, "", 1)}); return err }},
		{"a request id over the bound", func() error { _, err := sh.PurchaseBatch("a", []raftstore.Purchase{p("u", long, 1)}); return err }},
		{"an item id over the bound", func() error { _, err := sh.Restock(long, 1); return err }},
		{"a name over the bound", func() error {
			_, err := sh.CreateItem(raftstore.CreateItem{ID: "b", Name: strings.Repeat("n", sale.NameLenMax+1), Stock: 1, PerUserLimit: 1})
			return err
		}},
		{"a payer id over the bound", func() error { _, err := sh.Pay(1, long); return err }},
	}
	for _, tc := range refuse {
		if err := tc.do(); !errors.Is(err, sale.ErrInvalidRequest) || !errors.Is(err, raftstore.ErrOutOfBounds) {
			t.Errorf("%s: err = %v; want sale.ErrInvalidRequest wrapping raftstore.ErrOutOfBounds", tc.name, err)
		}
	}
	if after := sh.Raft().LastIndex(); after != before {
		t.Errorf("log grew from %d to %d entries; want refused commands kept out of the log", before, after)
	}
	// The largest batch the bound allows commits and applies.
	res, err := sh.PurchaseBatch("a", tooMany[:sale.PurchasesPerEntryMax])
	if err != nil || len(res) != sale.PurchasesPerEntryMax {
		t.Fatalf("PurchaseBatch(%d purchases) = %d results, %v; want all answered", sale.PurchasesPerEntryMax, len(res), err)
	}
}

// TestShardSnapshotsBySize: a shard whose commands add up to SnapshotBytes
// takes a snapshot however few entries they were, so the log on disk stays
// bounded when each entry carries hundreds of purchases.
func TestShardSnapshotsBySize(t *testing.T) {
	cfg := raftstoretest.StoreConfig(t.TempDir(), 1)
	cfg.SnapshotThreshold = 1 << 30 // never by count
	cfg.SnapshotBytes = 32 << 10
	s := raftstoretest.OpenStore(t, cfg)
	sh := s.Shard(0)
	if _, err := sh.CreateItem(raftstore.CreateItem{ID: "a", Stock: 1 << 20, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	for i := 0; sh.FSM().SnapshotStats().Count == 0; i++ {
		if i == 200 {
			t.Fatalf("no snapshot after %d batches of 100 purchases", i)
		}
		ps := make([]raftstore.Purchase, 100)
		for j := range ps {
			ps[j] = p(fmt.Sprintf("user-%d-%d", i, j), fmt.Sprintf("req-%d", j), 1)
		}
		if _, err := sh.PurchaseBatch("a", ps); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := sh.FSM().SnapshotStats()
	if st.LastBytes == 0 || st.LastPersist == 0 {
		t.Errorf("SnapshotStats() = %+v; want a persisted snapshot's size and time", st)
	}
}
