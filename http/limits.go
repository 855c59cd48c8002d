package httpapi

import (
	"math"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flashstock/flashstock/internal/ratelimit"
)

// limitBuckets is the number of token buckets per keyed limiter: bounded
// memory whatever the number of users or IPs.
const limitBuckets = 1 << 16

// limits are the token buckets of the rate limits; a nil limiter is off.
type limits struct {
	node, user, ip *ratelimit.Limiter
	// authFail counts failed authentications per client IP: an empty
	// bucket turns the IP away before its credential is checked.
	authFail *ratelimit.Limiter
}

func newLimits(cfg Config, now func() time.Time) limits {
	mk := func(rate float64, n int) *ratelimit.Limiter {
		if rate <= 0 {
			return nil
		}
		return ratelimit.New(rate, int(math.Max(1, 2*rate)), n, now)
	}
	return limits{node: mk(cfg.RateNode, 1), user: mk(cfg.RateUser, limitBuckets), ip: mk(cfg.RateIP, limitBuckets),
		authFail: mk(cfg.RateAuthFail, limitBuckets)}
}

func rateLimited(wait time.Duration) error {
	return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
		message: "too many requests; retry after " + wait.Round(time.Millisecond).String(), retry: retryAfter(wait)}
}

// retryAfter is a Retry-After value in whole seconds, at least 1.
func retryAfter(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}

// limitNode caps the requests this node takes, before any other work.
// Health, readiness, metrics and the admin console are exempt, so a flood
// does not blind the operators.
func (s *Server) limitNode(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limits.node == nil {
		return next
	}
	return func(c echo.Context) error {
		switch c.Path() {
		case "/healthz", "/readyz", "/metrics", "/v1/admin/dashboard", "/console", "/console/", "/console/app.js", "/console/app.css":
			return next(c)
		}
		if ok, wait := s.limits.node.Allow(""); !ok {
			return rateLimited(wait)
		}
		return next(c)
	}
}

// limitUser caps each shopper's purchases; it runs after identity.
func (s *Server) limitUser(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limits.user == nil {
		return next
	}
	return func(c echo.Context) error {
		if ok, wait := s.limits.user.Allow(c.Get(ctxUser).(string)); !ok {
			return rateLimited(wait)
		}
		return next(c)
	}
}

// limitIP caps each client IP on unauthenticated routes.
func (s *Server) limitIP(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limits.ip == nil {
		return next
	}
	return func(c echo.Context) error {
		if ok, wait := s.limits.ip.Allow(c.RealIP()); !ok {
			return rateLimited(wait)
		}
		return next(c)
	}
}

// authGate turns away a client IP that failed authentication more than
// RateAuthFail times a second (burst twice that), before its credential is
// checked: a flood of invalid tokens costs a bucket lookup, not a JWT
// verification, and cannot guess tokens faster than the limit.
func (s *Server) authGate(c echo.Context) error {
	if s.limits.authFail == nil {
		return nil
	}
	if empty, wait := s.limits.authFail.Exhausted(c.RealIP()); empty {
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many failed authentications from this address; retry after " + wait.Round(time.Millisecond).String(),
			retry:   retryAfter(wait)}
	}
	return nil
}

// authFailed counts a failed authentication against the client's IP.
func (s *Server) authFailed(c echo.Context) {
	s.m.AuthFailures.Inc()
	if s.limits.authFail != nil {
		s.limits.authFail.Allow(c.RealIP())
	}
}
