// Package backoff computes how long to wait before retrying: exponential
// growth from a base delay up to a cap, with "equal jitter" so that many
// callers that failed together do not retry together, and optionally never
// sooner than a server's Retry-After.
//
// It holds no state: a caller counts its own retries and asks Policy.Delay
// for the wait before the next one.
package backoff

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/flashstock/flashstock/internal/clock"
)

// Policy is a retry schedule. The delay before retry n (n = 0 before the
// first retry) is drawn uniformly from [d/2, d] with d = min(Max, Base·2^n):
// never zero, never more than Max, and spread so that callers do not retry
// in lockstep (AWS's "equal jitter").
type Policy struct {
	Base time.Duration // the first delay, before jitter
	Max  time.Duration // the cap on the exponential part
}

// ErrInvalid is Validate's answer for a policy without 0 < Base <= Max.
var ErrInvalid = errors.New("backoff: want 0 < base <= max")

// Validate reports whether p can be used.
func (p Policy) Validate() error {
	if p.Base <= 0 || p.Max < p.Base {
		return ErrInvalid
	}
	return nil
}

// Delay returns how long to wait before retry n. rnd returns a uniform
// number in [0, 1); nil uses math/rand/v2.
func (p Policy) Delay(n int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	d := p.Base
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2 // d < Max before doubling, so this cannot overflow
	}
	d = min(d, p.Max)
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// DelayAfter is Delay, but never shorter than retryAfter (a server's
// Retry-After; 0 for none). When the drawn delay is shorter, the wait is
// retryAfter plus up to Base/2: the herd that got the same answer spreads
// over the next half base period instead of returning at once.
func (p Policy) DelayAfter(n int, retryAfter time.Duration, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	delay := p.Delay(n, rnd)
	if retryAfter > 0 && delay < retryAfter {
		delay = retryAfter + time.Duration(rnd()*float64(p.Base/2))
	}
	return delay
}

// Sleep waits Delay(n), or until ctx ends; it returns ctx's error if ctx
// ended first.
func (p Policy) Sleep(ctx context.Context, n int, rnd func() float64) error {
	return clock.Sleep(ctx, p.Delay(n, rnd))
}
