// Package breaker is a consecutive-failure circuit breaker: after Threshold
// failures in a row it opens for Cooldown, during which Allow says no at
// once; then it lets one trial call through (half-open), and a success
// closes it again. Callers that are told no answer fast (503, or a
// degraded answer) instead of waiting on a dependency that is down.
package breaker

import (
	"sync"
	"time"
)

// State is a breaker's state.
type State int

// Breaker states.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	}
	return "closed"
}

// Breaker is safe for concurrent use.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	trial     bool // a half-open trial call is in flight

	onChange func(from, to State) // may be nil
}

// OnChange sets a function called, outside the breaker's lock, on every
// change of state (closed -> open, open -> half-open when a trial starts,
// half-open -> closed or open). It must not block. Set it before use.
func (b *Breaker) OnChange(f func(from, to State)) { b.onChange = f }

// changed tells onChange of a move from one state to another.
func (b *Breaker) changed(from, to State) {
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}

// New returns a closed breaker. now may be nil.
func New(threshold int, cooldown time.Duration, now func() time.Time) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{threshold: threshold, cooldown: cooldown, now: now}
}

// Allow reports whether a call may proceed. Every allowed call must be
// followed by exactly one of Success, Failure or Cancel: a half-open
// breaker lets one trial through and waits for its outcome, so a trial
// never reported would keep the breaker shut for good.
func (b *Breaker) Allow() bool {
	b.mu.Lock()
	if b.failures < b.threshold {
		b.mu.Unlock()
		return true
	}
	if b.now().Before(b.openUntil) || b.trial {
		b.mu.Unlock()
		return false
	}
	b.trial = true // half-open: one trial
	b.mu.Unlock()
	b.changed(Open, HalfOpen)
	return true
}

// Success records a successful call and closes the breaker.
func (b *Breaker) Success() {
	b.mu.Lock()
	from := b.stateLocked()
	b.failures, b.trial = 0, false
	b.mu.Unlock()
	b.changed(from, Closed)
}

// Failure records a failed call; the threshold-th in a row opens the
// breaker, and a failed trial re-opens it.
func (b *Breaker) Failure() {
	b.mu.Lock()
	from := b.stateLocked()
	b.failures++
	b.trial = false
	if b.failures >= b.threshold {
		b.openUntil = b.now().Add(b.cooldown)
	}
	to := b.stateLocked()
	b.mu.Unlock()
	if from == HalfOpen && to == Open || from == Closed && to == Open {
		b.changed(from, to)
	}
}

// Cancel ends an allowed call that said nothing about the peer (it was
// never sent, or its caller gave up): a trial's slot is free again, and
// the counts do not change.
func (b *Breaker) Cancel() {
	b.mu.Lock()
	b.trial = false
	b.mu.Unlock()
}

// State returns the current state.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked()
}

func (b *Breaker) stateLocked() State {
	switch {
	case b.trial:
		return HalfOpen
	case b.failures < b.threshold:
		return Closed
	case b.now().Before(b.openUntil):
		return Open
	}
	return HalfOpen
}
