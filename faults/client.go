package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"
)

// Client timing. A purchase waits up to requestTimeout in the node, so an
// attempt gives up a little later; a paused node is found out by that.
const (
	attemptTimeout = requestTimeout + 1500*time.Millisecond
	dialTimeout    = 1 * time.Second
	refusedBackoff = 500 * time.Millisecond // skip a node that refused for this long
	bodyMax        = 1 << 20
)

// api is an HTTP client for the three nodes.
type api struct {
	urls      []string
	token     string
	hc        *http.Client
	rr        atomic.Uint64
	downUntil [nodes]atomic.Int64 // unix nanos: node refused a connection
}

func newAPI(urls []string, token string) *api {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost: 256,
		MaxConnsPerHost:     512,
		IdleConnTimeout:     30 * time.Second,
	}
	return &api{urls: urls, token: token, hc: &http.Client{Transport: tr}}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// reply is one HTTP answer, or the error that stood for it.
type reply struct {
	status int
	body   map[string]any
	err    error
}

func (r reply) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r reply) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func (r reply) num(key string) (int64, bool) {
	f, ok := r.body[key].(float64)
	return int64(f), ok
}

// do sends one request to node i, bounded by timeout. user "admin" sends
// the admin token; another non-empty user goes in X-User-ID.
func (a *api) do(ctx context.Context, i int, method, path, user string, body any, timeout time.Duration) reply {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return reply{err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.urls[i]+path, rd)
	if err != nil {
		return reply{err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch user {
	case "":
	case "admin":
		req.Header.Set("Authorization", "Bearer "+a.token)
	default:
		req.Header.Set("X-User-ID", user)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			a.downUntil[i].Store(time.Now().Add(refusedBackoff).UnixNano())
		}
		return reply{err: err}
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode}
	b, err := io.ReadAll(io.LimitReader(resp.Body, bodyMax))
	if err != nil {
		r.err = fmt.Errorf("read body: %w", err)
		return r
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.body); err != nil {
			r.err = fmt.Errorf("decode body: %w", err)
		}
	}
	return r
}

// pick returns the next node round-robin, skipping nodes that refused a
// connection a moment ago (unless every node did).
func (a *api) pick() int {
	now := time.Now().UnixNano()
	start := int(a.rr.Add(1) % nodes)
	for k := 0; k < nodes; k++ {
		i := (start + k) % nodes
		if a.downUntil[i].Load() <= now {
			return i
		}
	}
	return start
}

// classify maps an answer to an outcome: ok with an order, a definite
// failure, or unknown.
func classify(r reply) string {
	switch {
	case r.err != nil:
		return OutcomeInfo
	case (r.status == http.StatusOK || r.status == http.StatusCreated) && r.str("order_id") != "":
		return OutcomeOK
	case r.status == http.StatusConflict, r.status == http.StatusForbidden, r.status == http.StatusNotFound,
		r.status == http.StatusBadRequest, r.status == http.StatusUnauthorized:
		return OutcomeFail
	}
	// 503 (unavailable, overloaded), 500 and anything else: the purchase
	// may or may not have committed.
	return OutcomeInfo
}

// expectedCode reports whether a definite failure is one a sale produces.
func expectedCode(code string) bool { return code == "sold_out" || code == "limit_exceeded" }
