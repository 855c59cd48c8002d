package raftstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/raftstore/raftstoretest"
	"github.com/flashstock/flashstock/sale"
)

// backupOf takes a backup of shard on its leader in c and returns its bytes.
func backupOf(t *testing.T, c *raftstoretest.Cluster, shard int) ([]byte, raftstore.BackupHeader) {
	t.Helper()
	b, err := c.Leader(shard).Shard(shard).OpenBackup(context.Background())
	if err != nil {
		t.Fatalf("OpenBackup(%d) = %v; want nil", shard, err)
	}
	defer b.Close()
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	if err != nil || n != b.Header.Len() || int64(buf.Len()) != n {
		t.Fatalf("WriteTo = %d, %v (buffer %d); want %d, nil", n, err, buf.Len(), b.Header.Len())
	}
	return buf.Bytes(), b.Header
}

// buy confirms n purchases of item on shard through its leader in c and
// returns their orders.
func buy(t *testing.T, c *raftstoretest.Cluster, shard int, item, prefix string, n int) []orders.Order {
	t.Helper()
	var out []orders.Order
	for i := range n {
		user := fmt.Sprintf("%s-%d", prefix, i)
		res, err := c.Leader(shard).Shard(shard).PurchaseBatch(item, []raftstore.Purchase{{UserID: user, RequestID: "r", Quantity: 1}})
		if err != nil || res[0].Outcome != sale.OutcomeConfirmed {
			t.Fatalf("PurchaseBatch(%s, %s) = %v, %v; want confirmed", item, user, res, err)
		}
		out = append(out, res[0].Order)
	}
	return out
}

// TestBackupRestoreIntoAnotherCluster: a shard's backup, taken on its
// leader while it sells, restores into a fresh three-node group: every
// replica holds the backed-up state, its orders and request IDs are there,
// and orders confirmed after the restore get IDs above every restored one.
// Refused backups (another shard, another shard count, a flipped byte, a
// cut, over the bound, a follower) change nothing.
func TestBackupRestoreIntoAnotherCluster(t *testing.T) {
	const shards = 2
	src := raftstoretest.NewCluster(t, 3, shards)
	item := raftstoretest.ItemIDForShard("phone", 0, shards)
	if _, err := src.Leader(0).Shard(0).CreateItem(raftstore.CreateItem{ID: item, Stock: 100, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	before := buy(t, src, 0, item, "a", 30)
	data, h := backupOf(t, src, 0)
	after := buy(t, src, 0, item, "late", 5) // not in the backup
	if h.Shard != 0 || h.Shards != shards || h.Size <= 0 || time.Since(h.Created) > time.Minute {
		t.Fatalf("header = %+v", h)
	}
	for _, o := range before {
		if o.LogIndex > h.Index {
			t.Fatalf("order %d at index %d, past the backup's index %d", o.ID, o.LogIndex, h.Index)
		}
	}
	if after[0].LogIndex <= h.Index {
		t.Fatalf("order after the backup at index %d; the backup covers %d", after[0].LogIndex, h.Index)
	}
	if _, err := raftstore.ReadBackup(io.Discard, bytes.NewReader(data), raftstore.BackupSizeMax); err != nil {
		t.Fatalf("ReadBackup = %v; want nil", err)
	}
	for _, s := range src.Stores {
		if s != src.Leader(0) {
			if _, err := s.Shard(0).OpenBackup(context.Background()); !errors.Is(err, sale.ErrNotLeader) {
				t.Fatalf("OpenBackup on a follower = %v; want ErrNotLeader", err)
			}
			break
		}
	}

	dst := raftstoretest.NewCluster(t, 3, shards)
	// The flusher read the outbox before the restore: its watermark must
	// not be committed after it.
	stale := dst.Leader(0).Shard(0)
	stale.Unflushed(10)
	other := raftstoretest.NewStore(t, 3)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 1
	refusals := []struct {
		name  string
		shard *raftstore.Shard
		body  []byte
		max   int64
		want  error
	}{
		{"another shard", dst.Leader(1).Shard(1), data, raftstore.BackupSizeMax, raftstore.ErrBackupMismatch},
		{"another shard count", other.Shard(0), data, raftstore.BackupSizeMax, raftstore.ErrBackupMismatch},
		{"flipped byte", dst.Leader(0).Shard(0), flipped, raftstore.BackupSizeMax, raftstore.ErrBackupInvalid},
		{"cut short", dst.Leader(0).Shard(0), data[:len(data)-40], raftstore.BackupSizeMax, raftstore.ErrBackupInvalid},
		{"header only", dst.Leader(0).Shard(0), data[:20], raftstore.BackupSizeMax, raftstore.ErrBackupInvalid},
		{"trailing data", dst.Leader(0).Shard(0), append(bytes.Clone(data), 'x'), raftstore.BackupSizeMax, raftstore.ErrBackupInvalid},
		{"over the bound", dst.Leader(0).Shard(0), data, h.Size - 1, raftstore.ErrBackupTooLarge},
		{"not a backup", dst.Leader(0).Shard(0), bytes.Repeat([]byte("x"), 200), raftstore.BackupSizeMax, raftstore.ErrBackupInvalid},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			if _, err := r.shard.RestoreBackup(context.Background(), bytes.NewReader(r.body), r.max); !errors.Is(err, r.want) {
				t.Fatalf("RestoreBackup = %v; want %v", err, r.want)
			}
		})
	}
	for _, s := range dst.Stores {
		if n := s.Shard(0).FSM().Stats().Items; n != 0 {
			t.Fatalf("a refused restore left %d items", n)
		}
	}
	var follower *raftstore.Store
	for _, s := range dst.Stores {
		if s != dst.Leader(0) {
			follower = s
		}
	}
	if _, err := follower.Shard(0).RestoreBackup(context.Background(), bytes.NewReader(data), raftstore.BackupSizeMax); !errors.Is(err, sale.ErrNotLeader) {
		t.Fatalf("RestoreBackup on a follower = %v; want ErrNotLeader", err)
	}

	got, err := dst.Leader(0).Shard(0).RestoreBackup(context.Background(), bytes.NewReader(data), raftstore.BackupSizeMax)
	if err != nil || got != h {
		t.Fatalf("RestoreBackup = %+v, %v; want %+v, nil", got, err, h)
	}
	if err := stale.MarkFlushed(1); err == nil {
		t.Fatal("MarkFlushed with an outbox read before the restore = nil; want a refusal")
	}
	dst.EnsureSame(t, 0)
	for i, s := range dst.Stores {
		fsm := s.Shard(0).FSM()
		if rem, ok := fsm.Remaining(item); !ok || rem != 100-int64(len(before)) {
			t.Fatalf("node-%d remaining %d, %v; want %d", i+1, rem, ok, 100-len(before))
		}
		for _, o := range before {
			if got, _, ok := fsm.LookupOrder(o.ID); !ok || got.UserID != o.UserID || got.ItemID != item {
				t.Fatalf("node-%d order %d = %+v, %v; want %s's", i+1, o.ID, got, ok, o.UserID)
			}
		}
		if o, ok := fsm.LookupRequest(item, after[0].UserID, "r"); ok {
			t.Fatalf("node-%d holds order %d, confirmed after the backup", i+1, o.ID)
		}
	}
	// A request ID of the backup is remembered: its retry is a duplicate.
	res, err := dst.Leader(0).Shard(0).PurchaseBatch(item, []raftstore.Purchase{{UserID: before[0].UserID, RequestID: "r", Quantity: 1}})
	if err != nil || res[0].Outcome != sale.OutcomeDuplicate || res[0].Order.ID != before[0].ID {
		t.Fatalf("retry of a restored request = %+v, %v; want the duplicate of %d", res, err, before[0].ID)
	}
	next := buy(t, dst, 0, item, "b", 3)
	for _, o := range next {
		if o.LogIndex <= h.Index {
			t.Fatalf("order %d after the restore at index %d; the restored ones go up to %d", o.ID, o.LogIndex, h.Index)
		}
	}
	// The flusher goes on once it has read the restored outbox.
	sh := dst.Leader(0).Shard(0)
	pending := sh.Unflushed(1000)
	if len(pending) != len(before)+len(next) {
		t.Fatalf("outbox holds %d orders; want %d", len(pending), len(before)+len(next))
	}
	if err := sh.MarkFlushed(pending[len(pending)-1].Seq); err != nil {
		t.Fatalf("MarkFlushed after reading the restored outbox = %v; want nil", err)
	}
}
