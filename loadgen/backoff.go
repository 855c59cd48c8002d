package loadgen

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is the retry schedule of a shopper told to come back later (429,
// 503) or left without an answer (timeout, connection error). The delay before
// retry n (n = 0 for the first retry) is drawn from [d/2, d] with
// d = min(Max, Base*2^n) ("equal jitter": never zero, never in lockstep), and
// is never shorter than the server's Retry-After.
type Backoff struct {
	Base time.Duration // the first delay, before jitter
	Max  time.Duration // the cap on the exponential part
}

// Delay returns how long to wait before retry n. retryAfter is the server's
// Retry-After (0 if none); rnd returns a uniform number in [0, 1).
func (b Backoff) Delay(n int, retryAfter time.Duration, rnd func() float64) time.Duration {
	d := b.Base
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2 // d < Max before doubling, so this cannot overflow
	}
	d = min(d, b.Max)
	delay := d/2 + time.Duration(rnd()*float64(d/2))
	if retryAfter > 0 && delay < retryAfter {
		// Honour Retry-After, and spread the herd that got the same answer
		// over the next half base period instead of having it return at once.
		delay = retryAfter + time.Duration(rnd()*float64(b.Base/2))
	}
	return delay
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP-date (RFC 9110 10.2.3). Anything else, or a date in the past, gives 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
