package mysql

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flashstock/flashstock/orders"
)

// benchBatchRows is the flusher's batch size the benchmarks write.
const benchBatchRows = 500

// batchMaker fills batches of fresh orders: unique IDs across all goroutines,
// users spread over 100k IDs, 10 items (a flash sale has few, hot items).
type batchMaker struct {
	next  atomic.Uint64 // next log index
	users []string
	items []string
}

func newBatchMaker() *batchMaker {
	m := &batchMaker{users: make([]string, 100_000), items: make([]string, 10)}
	for i := range m.users {
		m.users[i] = fmt.Sprintf("user-%d", i)
	}
	for i := range m.items {
		m.items[i] = fmt.Sprintf("item-%d", i)
	}
	return m
}

// fill overwrites batch with fresh orders from Raft shard shard.
func (m *batchMaker) fill(batch []orders.Order, shard int) {
	index := m.next.Add(1)
	for i := range batch {
		h := index*uint64(len(batch)) + uint64(i)
		batch[i] = orders.Order{
			ID:        orders.MakeID(shard, index, i),
			ItemID:    m.items[h%uint64(len(m.items))],
			UserID:    m.users[(h*2654435761)%uint64(len(m.users))],
			RequestID: m.users[h%uint64(len(m.users))],
			Quantity:  1,
			Status:    orders.StatusConfirmed,
			CreatedAt: baseTime,
			Shard:     shard,
			LogIndex:  index,
		}
	}
}

// BenchmarkWrite measures Write with flusher-sized batches over 2 databases x
// 16 tables on the server in FLASHSTOCK_TEST_MYSQL_DSNS, durable commits
// included:
//
//	fresh       one writer, every order new
//	reflush     one writer re-writing an already stored batch (the no-op path)
//	parallel-4  four writers (four Raft shards' flushers), every order new
func BenchmarkWrite(b *testing.B) {
	s := openSink(b, testConfig(b))
	m := newBatchMaker()

	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		ctx := testCtx(b)
		batch := make([]orders.Order, benchBatchRows)
		for b.Loop() {
			m.fill(batch, 0)
			if err := s.Write(ctx, batch); err != nil {
				b.Fatalf("Write: %v", err)
			}
		}
		b.ReportMetric(float64(b.N*benchBatchRows)/b.Elapsed().Seconds(), "orders/s")
	})

	b.Run("reflush", func(b *testing.B) {
		b.ReportAllocs()
		ctx := testCtx(b)
		batch := make([]orders.Order, benchBatchRows)
		m.fill(batch, 1)
		if err := s.Write(ctx, batch); err != nil {
			b.Fatalf("Write: %v", err)
		}
		for b.Loop() {
			if err := s.Write(ctx, batch); err != nil {
				b.Fatalf("Write: %v", err)
			}
		}
		b.ReportMetric(float64(b.N*benchBatchRows)/b.Elapsed().Seconds(), "orders/s")
	})

	b.Run("parallel-4", func(b *testing.B) {
		const writers = 4
		b.ReportAllocs()
		ctx := testCtx(b)
		var done atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for w := range writers {
			wg.Go(func() {
				batch := make([]orders.Order, benchBatchRows)
				for done.Add(1) <= int64(b.N) {
					m.fill(batch, 2+w)
					if err := s.Write(ctx, batch); err != nil {
						b.Errorf("Write: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N*benchBatchRows)/b.Elapsed().Seconds(), "orders/s")
	})
}
