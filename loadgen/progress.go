package loadgen

import (
	"fmt"
	"time"

	"github.com/flashstock/flashstock/client"
)

// startProgress writes a progress line every ProgressInterval until the
// returned stop is called; stop waits for the writer goroutine to end.
func (e *engine) startProgress(start time.Time) (stop func()) {
	if e.cfg.ProgressInterval <= 0 || e.deps.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() { // owned by stop
		defer close(finished)
		t := time.NewTicker(e.cfg.ProgressInterval)
		defer t.Stop()
		last := start
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				p := e.rec.tick()
				fmt.Fprintln(e.deps.Progress, progressLine(p, now.Sub(start), now.Sub(last)))
				last = now
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

// progressLine formats one progress sample: the request rate and latency of
// the last interval, and the counts of answers so far (confirmed: new orders,
// 201; rejected: 429 and 503; other: everything but those, sold_out, replays
// and page views).
func progressLine(p progress, elapsed, interval time.Duration) string {
	var rejected, other int64
	for o, n := range p.requests {
		switch o := client.Outcome(o); {
		case o.Rejected():
			rejected += n
		case o.OK(), o == client.OutcomeSoldOut, o == client.OutcomePage: // shown, or not a problem
		default:
			other += n
		}
	}
	rate := 0.0
	if interval > 0 {
		rate = float64(p.intervalN) / interval.Seconds()
	}
	return fmt.Sprintf("[%6.1fs] rate=%.0f/s confirmed=%d sold_out=%d rejected=%d other=%d dropped=%d inflight=%d p50=%s p99=%s",
		elapsed.Seconds(), rate, p.requests[client.OutcomeConfirmed], p.requests[client.OutcomeSoldOut],
		rejected, other, p.dropped, p.inFlight, fmtUs(p.intervalP50), fmtUs(p.intervalP99))
}

// fmtUs formats microseconds compactly: 850µs, 1.25ms, 2.50s.
func fmtUs(us uint64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%dµs", us)
	case us < 1_000_000:
		return fmt.Sprintf("%.2fms", float64(us)/1e3)
	default:
		return fmt.Sprintf("%.2fs", float64(us)/1e6)
	}
}
