package orders

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/flashstock/flashstock/internal/backoff"
)

// Source is a shard's queue of confirmed, unflushed orders. raftstore.Shard
// implements it. Methods must be safe for concurrent use and must not block
// longer than the shard's apply timeout.
type Source interface {
	// IsFlushLeader reports whether this node should flush the shard now.
	IsFlushLeader() bool
	// Unflushed returns up to max of the oldest outbox entries (new orders
	// and status changes), in Seq order.
	Unflushed(max int) []Order
	// MarkFlushed advances the flushed watermark (an outbox Seq) through
	// Raft.
	MarkFlushed(upToSeq uint64) error
}

// FlusherConfig tunes the flush loop.
type FlusherConfig struct {
	BatchMax     int           // orders per Sink.Write
	Interval     time.Duration // poll interval when idle
	WriteTimeout time.Duration // bound on one Sink.Write
	BackoffMin   time.Duration // first retry delay after a failure
	BackoffMax   time.Duration
}

// DefaultFlusherConfig returns the defaults: 500 orders or 50 ms.
func DefaultFlusherConfig() FlusherConfig {
	return FlusherConfig{
		BatchMax:     500,
		Interval:     50 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		BackoffMin:   100 * time.Millisecond,
		BackoffMax:   5 * time.Second,
	}
}

// Validate reports the first invalid setting.
func (c FlusherConfig) Validate() error {
	if c.BatchMax < 1 || c.Interval <= 0 || c.WriteTimeout <= 0 || c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin {
		return errors.New("orders: flusher batch, interval, timeout and backoff must be positive")
	}
	return nil
}

// FlushObserver receives flush outcomes, for metrics. It must not block.
type FlushObserver interface {
	FlushedBatch(shard int, orders int, elapsed time.Duration)
	FlushFailed(shard int, err error)
}

// Flusher copies confirmed orders from Sources to a Sink: one goroutine per
// shard, active only while this node leads the shard. A write that fails is
// retried with jittered exponential backoff; the orders stay in Raft until a
// write succeeds and the new watermark commits, so a crash anywhere in the
// loop re-sends rows the Sink already has, which it ignores.
type Flusher struct {
	cfg     FlusherConfig
	sink    Sink
	sources []Source
	obs     FlushObserver
	log     *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewFlusher returns a flusher for sources (indexed by shard). obs may be nil.
// It refuses an invalid configuration.
func NewFlusher(cfg FlusherConfig, sink Sink, sources []Source, obs FlushObserver, log *slog.Logger) (*Flusher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Flusher{cfg: cfg, sink: sink, sources: sources, obs: obs, log: log}, nil
}

// Start starts one loop per shard. Stop ends them.
func (f *Flusher) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for i, src := range f.sources {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.loop(ctx, i, src)
		}()
	}
}

// Stop stops the loops and waits for them. An in-flight write finishes or
// times out; its orders are flushed again by whoever leads next.
func (f *Flusher) Stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// Drain flushes every shard this node leads until nothing is pending or ctx
// ends. Call it after Stop, during a graceful shutdown.
func (f *Flusher) Drain(ctx context.Context) error {
	for i, src := range f.sources {
		for src.IsFlushLeader() {
			n, err := f.flushOnce(ctx, i, src)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return nil
}

func (f *Flusher) loop(ctx context.Context, shard int, src Source) {
	retry := backoff.Policy{Base: f.cfg.BackoffMin, Max: f.cfg.BackoffMax}
	failures := 0
	timer := time.NewTimer(f.cfg.Interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wait := f.cfg.Interval
		if src.IsFlushLeader() {
			n, err := f.flushOnce(ctx, shard, src)
			switch {
			case err != nil:
				wait = retry.Delay(failures, nil)
				failures++
			case n == f.cfg.BatchMax:
				failures, wait = 0, 0 // more is waiting: go again at once
			default:
				failures = 0
			}
		}
		timer.Reset(wait)
	}
}

// flushOnce writes one batch and advances the watermark. It returns how many
// orders it flushed.
func (f *Flusher) flushOnce(ctx context.Context, shard int, src Source) (int, error) {
	batch := src.Unflushed(f.cfg.BatchMax)
	if len(batch) == 0 {
		return 0, nil
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, f.cfg.WriteTimeout)
	err := f.sink.Write(wctx, batch)
	cancel()
	if err == nil {
		err = src.MarkFlushed(batch[len(batch)-1].Seq)
	}
	if err != nil {
		if f.obs != nil {
			f.obs.FlushFailed(shard, err)
		}
		if ctx.Err() == nil {
			f.log.Warn("order flush", "shard", shard, "orders", len(batch), "err", err)
		}
		return 0, err
	}
	if f.obs != nil {
		f.obs.FlushedBatch(shard, len(batch), time.Since(start))
	}
	return len(batch), nil
}
