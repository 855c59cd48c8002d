package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of one exchange.
const (
	// bodyMax bounds how much of a response body is read; the rest is
	// discarded (up to the same amount, so the connection can be reused).
	bodyMax = 1 << 20
	// refusedFor is how long a target that refused a connection is skipped
	// by Next: a killed or restarting node is not asked again at once.
	refusedFor = 500 * time.Millisecond
	// dialTimeoutMax bounds the TCP connect of a request.
	dialTimeoutMax = 5 * time.Second
)

// DefaultTimeout bounds a request when Config.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// Any picks the target of a request round-robin (see Client.Next).
const Any = -1

// Config configures a Client.
type Config struct {
	// Targets are the base URLs of the nodes (or of a load balancer), such
	// as http://127.0.0.1:8080; a trailing slash is dropped. At least one
	// is required; a request's target is its index here.
	Targets []string
	// AdminToken is sent as a bearer token by requests made AsAdmin.
	AdminToken string
	// Identity names shoppers; nil is HeaderIdentity (X-User-ID).
	Identity Identity
	// Timeout bounds every request, from send to the end of the body; 0
	// is DefaultTimeout.
	Timeout time.Duration
	// Conns sizes the idle connection pool per target, for that many
	// concurrent requests; 0 keeps 64.
	Conns int
	// HTTPClient sends the requests; nil builds one from Timeout and Conns.
	// Requests honour HTTP_PROXY and NO_PROXY like any Go client.
	HTTPClient *http.Client
	// Now is the wall clock used for Retry-After dates; nil is time.Now.
	Now func() time.Time
}

// Client speaks Flashstock's HTTP API to a set of targets. It is safe for
// concurrent use; a request blocks for at most Config.Timeout.
type Client struct {
	http       *http.Client
	targets    []string
	identity   Identity
	adminToken string
	timeout    time.Duration
	now        func() time.Time
	next       atomic.Uint64
	// refusedUntil[i] is when target i may be picked again (unix
	// nanoseconds) after it refused a connection.
	refusedUntil []atomic.Int64
}

// New returns a client for cfg.
func New(cfg Config) *Client {
	c := &Client{
		http: cfg.HTTPClient, identity: cfg.Identity, adminToken: cfg.AdminToken,
		timeout: cfg.Timeout, now: cfg.Now, refusedUntil: make([]atomic.Int64, len(cfg.Targets)),
	}
	for _, t := range cfg.Targets {
		c.targets = append(c.targets, strings.TrimRight(t, "/"))
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.http == nil {
		c.http = NewHTTPClient(orDefault(cfg.Conns, 64), c.timeout)
	}
	if c.identity == nil {
		c.identity = HeaderIdentity{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// orDefault returns v, or def when v is not positive.
func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// NewHTTPClient returns an HTTP client sized for conns concurrent requests
// per target, each bounded by timeout. It follows no redirects: an API
// answer is never a redirect, and one would hide what the server said.
func NewHTTPClient(conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, dialTimeoutMax), KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			MaxIdleConns:          conns + 16,
			MaxIdleConnsPerHost:   conns + 16,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: timeout,
			DisableCompression:    true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close closes the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Targets returns the number of targets.
func (c *Client) Targets() int { return len(c.targets) }

// Next returns the next target round-robin, skipping targets that refused a
// connection in the last 500 ms (unless every target did).
func (c *Client) Next() int {
	n := len(c.targets)
	start := int((c.next.Add(1) - 1) % uint64(n))
	now := c.now().UnixNano()
	for k := range n {
		i := (start + k) % n
		if c.refusedUntil[i].Load() <= now {
			return i
		}
	}
	return start
}

// Auth is who a request is sent as.
type Auth struct {
	User  string // a shopper, through the Identity; "" for none
	Admin bool   // the admin token, when there is one (wins over User)
	// IdempotencyKey is sent as the Idempotency-Key header: a purchase's
	// request_id, which a proxy can see without reading the body (nginx
	// resends keyed purchases to another node).
	IdempotencyKey string
}

// AsAdmin sends a request with the admin token.
var AsAdmin = Auth{Admin: true}

// AsUser sends a request as shopper user.
func AsUser(user string) Auth { return Auth{User: user} }

// Reply is one exchange: the answer, or why there was none.
type Reply struct {
	Target     int     // the target asked
	Outcome    Outcome // see Classify; the typed calls refine it
	Status     int     // 0 if no answer
	Code       string  // the API error code of an error body
	RetryAfter time.Duration
	Body       []byte // the body, at most 1 MiB
	Err        error  // the transport error, or why the body was unusable
}

// errorBody is the API's error body.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Do sends one request to target (Any for the next one) and reads the
// answer. in, when not nil, is sent as the JSON body. The request is bounded
// by the client's timeout; ctx cancels it early.
func (c *Client) Do(ctx context.Context, target int, method, path string, in any, who Auth) Reply {
	if target == Any {
		target = c.Next()
	}
	r := Reply{Target: target}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			r.Outcome, r.Err = OutcomeClientError, fmt.Errorf("encode request: %w", err)
			return r
		}
		body = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, c.targets[target]+path, body)
	if err != nil {
		r.Outcome, r.Err = OutcomeClientError, err
		return r
	}
	c.authorize(req, in != nil, who)
	resp, err := c.http.Do(req)
	if err != nil {
		c.noteRefused(target, err)
		r.Outcome, r.Err = classifyErr(ctx, err), err
		return r
	}
	defer resp.Body.Close()
	r.Status = resp.StatusCode
	r.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
	r.Body, err = io.ReadAll(io.LimitReader(resp.Body, bodyMax))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, bodyMax)) // let the connection be reused
	if err != nil {
		r.Outcome, r.Err = classifyErr(ctx, err), fmt.Errorf("read body: %w", err)
		return r
	}
	if r.Status < 200 || r.Status >= 300 {
		var e errorBody
		if json.Unmarshal(r.Body, &e) == nil {
			r.Code = e.Error.Code
		}
	}
	r.Outcome = Classify(r.Status, r.Code)
	return r
}

// authorize sets the request's headers.
func (c *Client) authorize(req *http.Request, hasBody bool, who Auth) {
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case who.Admin && c.adminToken != "":
		req.Header.Set("Authorization", "Bearer "+c.adminToken)
	case who.User != "":
		c.identity.Authorize(req.Header, who.User)
	}
	if who.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", who.IdempotencyKey)
	}
}

// noteRefused marks target as refusing connections for a moment.
func (c *Client) noteRefused(target int, err error) {
	if errors.Is(err, syscall.ECONNREFUSED) {
		c.refusedUntil[target].Store(c.now().Add(refusedFor).UnixNano())
	}
}

// StatusError is an answer with an unexpected status.
type StatusError struct {
	Status int
	Code   string
}

func (e *StatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	return s
}

// Expect returns nil if r has status want, else why not: the transport
// error, or a *StatusError.
func (r Reply) Expect(want int) error {
	switch {
	case r.Status == 0 && r.Err != nil:
		return r.Err
	case r.Status != want:
		return &StatusError{Status: r.Status, Code: r.Code}
	}
	return nil
}

// Transient reports whether err (from Expect or a typed call) may go away
// on a retry: a transport error, 429 or 5xx.
func Transient(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return true // transport errors
	}
	return se.Status == http.StatusTooManyRequests || se.Status >= 500
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
