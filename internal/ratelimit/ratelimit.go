// Package ratelimit implements token buckets keyed by string with bounded
// memory: keys hash into a fixed array of buckets, so a flood of distinct
// keys (users, client IPs) cannot grow memory. Two keys that share a bucket
// share its budget, which can only make the limit stricter for them; with
// the default 65,536 buckets that is rare.
package ratelimit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets. It is safe for concurrent use.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time
	seed  maphash.Seed

	stripes [64]struct {
		sync.Mutex
		_ [56]byte // keep stripes on separate cache lines
	}
	buckets []bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last refill; 0 = never used
}

// New returns a limiter of rate tokens per second with the given burst,
// over n buckets (rounded up to a power of two). now may be nil.
func New(rate float64, burst int, n int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	size := 1
	for size < n {
		size <<= 1
	}
	return &Limiter{rate: rate, burst: float64(burst), now: now, seed: maphash.MakeSeed(), buckets: make([]bucket, size)}
}

// Allow takes one token for key. When none is left it returns false and
// how long until one is.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	return l.take(maphash.String(l.seed, key))
}

// AllowPair is Allow for the key made of a and b (a shopper and an item,
// say), without building it.
func (l *Limiter) AllowPair(a, b string) (bool, time.Duration) {
	return l.take(maphash.Comparable(l.seed, [2]string{a, b}))
}

// Exhausted reports, without taking a token, whether key's bucket is
// empty, and how long until it holds one: a gate in front of work whose
// failures (not its attempts) take tokens.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	b, mu := l.lock(maphash.String(l.seed, key))
	defer mu.Unlock()
	if b.last == 0 {
		return false, 0
	}
	if tokens := l.refilled(b, l.now().UnixNano()); tokens < 1 {
		return true, l.waitFor(tokens)
	}
	return false, 0
}

func (l *Limiter) take(hash uint64) (bool, time.Duration) {
	b, mu := l.lock(hash)
	defer mu.Unlock()
	now := l.now().UnixNano()
	b.tokens = l.refilled(b, now)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.waitFor(b.tokens)
}

// lock returns the bucket of hash and its stripe's mutex, locked.
func (l *Limiter) lock(hash uint64) (*bucket, *sync.Mutex) {
	idx := hash & uint64(len(l.buckets)-1)
	mu := &l.stripes[idx%uint64(len(l.stripes))].Mutex
	mu.Lock()
	return &l.buckets[idx], mu
}

// refilled returns b's tokens at now (a bucket never used is full); the
// caller holds b's stripe.
func (l *Limiter) refilled(b *bucket, now int64) float64 {
	switch elapsed := now - b.last; {
	case b.last == 0:
		return l.burst
	case elapsed > 0:
		return math.Min(l.burst, b.tokens+float64(elapsed)*l.rate/1e9)
	}
	return b.tokens
}

// waitFor is how long until a bucket holding tokens (< 1) has one.
func (l *Limiter) waitFor(tokens float64) time.Duration {
	return time.Duration((1 - tokens) / l.rate * 1e9)
}
