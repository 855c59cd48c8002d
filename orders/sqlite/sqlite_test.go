package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashstock/flashstock/orders"
)

func open(tb testing.TB) *Sink {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "orders.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

var created = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// batch returns n orders from log entry index of shard 1, spread over
// users u0..u9 and items a, b.
func batch(index uint64, n int) []orders.Order {
	out := make([]orders.Order, n)
	for i := range out {
		out[i] = orders.Order{
			ID: orders.MakeID(1, index, i), ItemID: []string{"a", "b"}[i%2], UserID: fmt.Sprintf("u%d", i%10),
			RequestID: fmt.Sprintf("r%d-%d", index, i), Quantity: int32(1 + i%3), Status: orders.StatusConfirmed,
			CreatedAt: created.Add(time.Duration(i) * time.Millisecond), Shard: 1, LogIndex: index,
		}
	}
	return out
}

// TestWriteIdempotentAndForwardOnly writes batches of sizes around the
// statement sizes twice, then settles some orders and re-flushes the stale
// confirmed copies: every order is stored once, exactly as written, and a
// status never moves back.
func TestWriteIdempotentAndForwardOnly(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	var all []orders.Order
	for i, n := range []int{1, 2, 9, 10, 11, 99, 100, 101, 3*100 + 2*10 + 7} {
		b := batch(uint64(10+i), n)
		all = append(all, b...)
		for range 2 { // a re-flush after a crash between Write and the watermark
			if err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	settled := []orders.Order{all[0], all[1], all[5], all[3]}
	settled[0].Status, settled[1].Status, settled[2].Status, settled[3].Status = orders.StatusPaid, orders.StatusExpired, orders.StatusPaid, orders.StatusCancelled
	if err := s.Write(ctx, settled); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, all[:6]); err != nil { // stale confirmed copies
		t.Fatal(err)
	}
	want := map[uint64]orders.Status{all[0].ID: orders.StatusPaid, all[1].ID: orders.StatusExpired, all[5].ID: orders.StatusPaid, all[3].ID: orders.StatusCancelled}
	var units int64
	for _, o := range all {
		got, err := s.Get(ctx, o.ID)
		if err != nil {
			t.Fatalf("order %d: %v", o.ID, err)
		}
		o.Status = orders.StatusConfirmed
		if st, ok := want[o.ID]; ok {
			o.Status = st
		}
		if got != o {
			t.Fatalf("order %d: got %+v, want %+v", o.ID, got, o)
		}
		if !o.Status.Returned() {
			units += int64(o.Quantity)
		}
	}
	sold, err := s.SoldByItem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sold["a"]+sold["b"] != units {
		t.Fatalf("sold by item %v, want %d units in all", sold, units)
	}
	if _, err := s.Get(ctx, orders.MakeID(1, 99, 0)); err != orders.ErrNotFound {
		t.Fatalf("missing order: err %v, want ErrNotFound", err)
	}
	list, err := s.ListByUser(ctx, "u3", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range list {
		if o.UserID != "u3" || (i > 0 && o.ID >= list[i-1].ID) {
			t.Fatalf("ListByUser: %d: %+v", i, o)
		}
	}
}

// BenchmarkEmbeddedWrite measures Write with flusher-sized batches of new orders,
// durable commits included.
func BenchmarkEmbeddedWrite(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	const rows = 500 // orders.DefaultFlusherConfig().BatchMax
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.Write(ctx, batch(uint64(i+1), rows)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "orders/s")
}
