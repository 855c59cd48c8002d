// Package httpapi is Flashstock's HTTP API, built on Echo: the shopper
// routes (items, purchase, orders), the admin routes (create, restock,
// pause, list, cluster status, reconciliation, the console's dashboard),
// the operational ones (health, readiness, Prometheus metrics) and the
// admin console.
//
// The console (GET /console) is a page embedded in the binary: plain HTML,
// CSS and JavaScript under a strict Content-Security-Policy. It holds no
// data; it signs in with the admin token (kept in the browser's session
// storage) and makes one request per refresh, GET /v1/admin/dashboard,
// which a sampler on the node builds twice a second from what the node
// keeps anyway (its replicas' items, its view of the cluster, its
// counters), off the purchase path. Its actions go through the same admin
// routes as curl.
//
// Handlers validate everything before they touch the engine, so bad input
// gets a 4xx JSON error and changes nothing; they return errors, and one
// error handler maps each error to a status code and the body
// {"error":{"code":"...","message":"..."}}.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Engine is what the API needs from the stock engine; actors.Engine
// implements it. Every method is safe for concurrent use, returns when ctx
// ends at the latest, and fails with one of sale's errors (matched with
// errors.Is, answered through sale's error table) or with an error the API
// answers 500.
type Engine interface {
	// CreateItem creates an item from it's ID, name, stock, per-user limit
	// and sale window, and returns it as committed.
	CreateItem(ctx context.Context, it sale.Item) (sale.Item, error)
	// Item returns an item; it may lag the committed state by the bound
	// the engine documents (a replica's replication delay or its cache).
	Item(ctx context.Context, id string) (sale.Item, error)
	// Restock adds delta units (negative: removes unsold ones) and returns
	// the item as committed.
	Restock(ctx context.Context, id string, delta int64) (sale.Item, error)
	// SetPaused pauses or resumes an item's sale.
	SetPaused(ctx context.Context, id string, paused bool) (sale.Item, error)
	// EndSale closes an item's sale window now.
	EndSale(ctx context.Context, id string) (sale.Item, error)
	// CancelOrder cancels an order and returns its units to the sale.
	CancelOrder(ctx context.Context, id uint64) (orders.Order, error)
	// Purchase buys; it returns the order and whether it is the original
	// order of an earlier purchase with the same request ID. An error is
	// definite or leaves the outcome unknown, as sale.Definite tells.
	Purchase(ctx context.Context, r sale.Request) (o orders.Order, duplicate bool, err error)
	// Order returns an order in its latest state and whether that state is
	// in the order store.
	Order(ctx context.Context, id uint64) (o orders.Order, persisted bool, err error)
	// Pay pays a user's order within its payment window.
	Pay(ctx context.Context, id uint64, user string) (orders.Order, error)
	// UserOrders returns up to limit of a user's orders, newest first.
	UserOrders(ctx context.Context, user string, limit int) ([]orders.Order, error)
	// Reconcile compares the units sold in Raft with the order store.
	Reconcile(ctx context.Context) (orders.Reconciliation, error)
	// ListItems returns up to limit items whose IDs sort after `after`, in
	// ID order, from this node's replicas without asking other nodes;
	// more reports whether further items exist, missing the shards whose
	// items this node cannot list (it holds no replica of them).
	ListItems(ctx context.Context, after string, limit int) (items []sale.Item, more bool, missing []int, err error)
}

// Node is what the API needs to report on this node.
type Node interface {
	// Readiness reports what this node can serve now: each shard, and
	// whether it can serve any (Ready) and all (All) of them.
	Readiness() Readiness
	// Status returns the cluster status document.
	Status(ctx context.Context) any
	// ClusterView returns the cluster as this node sees it, for the
	// console. It reads local state only and returns promptly; the
	// console calls it twice a second.
	ClusterView(ctx context.Context) ClusterView
}

// Config configures the API.
type Config struct {
	Addr            string
	AuthSecret      []byte // HS256 key for shopper JWTs; nil disables JWTs
	TrustUserHeader bool   // take the shopper from X-User-ID
	AdminToken      string
	BodyLimit       int64 // bytes
	RequestTimeout  time.Duration

	// Token-bucket rate limits in requests per second (burst: twice the
	// rate); 0 turns one off. RateNode caps all requests to this node,
	// RateUser each shopper's purchases, RateIP each client IP's
	// unauthenticated reads.
	RateNode float64
	RateUser float64
	RateIP   float64
	// RateAuthFail caps failed authentications per client IP and second
	// (burst: twice the rate); past it the IP gets 429 on shopper and
	// admin routes before its credential is checked. 0 turns it off.
	RateAuthFail float64
	// MetricsElsewhere leaves /metrics off this server: the node serves it
	// on its own listener (--metrics-addr).
	MetricsElsewhere bool
	// TrustedProxies are the CIDRs of proxies (e.g. the Nginx tier) whose
	// X-Forwarded-For names the client. Empty: the socket's address is the
	// client, and forwarding headers are ignored.
	TrustedProxies []string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", BodyLimit: 4 << 10, RequestTimeout: 5 * time.Second,
		RateUser: 5, RateIP: 100, RateAuthFail: 10}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	switch {
	case c.AdminToken == "":
		return errors.New("httpapi: admin token is required")
	case len(c.AdminToken) < 16:
		return errors.New("httpapi: admin token must be at least 16 characters")
	case c.AuthSecret == nil && !c.TrustUserHeader:
		return errors.New("httpapi: no way to identify shoppers: give an auth secret or trust the user header")
	case c.AuthSecret != nil && len(c.AuthSecret) < 16:
		return errors.New("httpapi: auth secret must be at least 16 bytes")
	case c.BodyLimit < 64:
		return errors.New("httpapi: body limit must be at least 64 bytes")
	case c.RequestTimeout <= 0:
		return errors.New("httpapi: request timeout must be positive")
	case c.RateNode < 0 || c.RateUser < 0 || c.RateIP < 0 || c.RateAuthFail < 0:
		return errors.New("httpapi: rate limits must not be negative")
	}
	if _, err := parseCIDRs(c.TrustedProxies); err != nil {
		return err
	}
	return nil
}

func parseCIDRs(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, s := range list {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("httpapi: trusted proxy %q: want a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// Server is the HTTP API of one node.
type Server struct {
	cfg    Config
	engine Engine
	node   Node
	m      *metrics.Metrics
	log    *slog.Logger
	echo   *echo.Echo
	now    func() time.Time
	limits limits
	// console samples the node for the admin console (GET /console).
	console *console
}

// New returns a server; Serve starts it.
func New(cfg Config, engine Engine, node Node, m *metrics.Metrics, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, engine: engine, node: node, m: m, log: log, now: time.Now}
	s.limits = newLimits(cfg, s.now)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Client IPs come from the socket, or from X-Forwarded-For only when the
	// socket is a configured trusted proxy; X-Real-IP is never read (Echo
	// advisories GO-2026-6872, GO-2026-6875).
	e.IPExtractor = echo.ExtractIPDirect()
	if nets, _ := parseCIDRs(cfg.TrustedProxies); len(nets) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range nets {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	e.HTTPErrorHandler = s.handleError
	e.Server.ReadHeaderTimeout = 5 * time.Second
	e.Server.ReadTimeout = 10 * time.Second
	e.Server.WriteTimeout = cfg.RequestTimeout + 5*time.Second
	e.Server.IdleTimeout = 120 * time.Second
	e.Server.MaxHeaderBytes = 16 << 10
	e.Use(s.observe, s.recover, s.limitNode, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if !cfg.MetricsElsewhere {
		e.GET("/metrics", echo.WrapHandler(MetricsHandler(m)))
	}

	v1 := e.Group("/v1")
	v1.GET("/items/:id", s.getItem, s.limitIP)
	v1.POST("/items", s.createItem, s.requireAdmin)
	v1.POST("/items/:id/stock", s.restock, s.requireAdmin)
	v1.POST("/items/:id/pause", s.pause, s.requireAdmin)
	v1.POST("/items/:id/resume", s.resume, s.requireAdmin)
	v1.POST("/items/:id/end", s.endSale, s.requireAdmin)
	v1.POST("/items/:id/purchase", s.purchase, s.requireShopper, s.limitUser)
	v1.GET("/orders/:id", s.getOrder, s.requireShopperOrAdmin)
	v1.POST("/orders/:id/pay", s.payOrder, s.requireShopper, s.limitUser)
	v1.POST("/orders/:id/cancel", s.cancelOrder, s.requireAdmin)
	v1.GET("/users/me/orders", s.myOrders, s.requireShopper)
	v1.GET("/cluster/status", s.clusterStatus, s.requireAdmin)
	v1.GET("/admin/reconcile", s.reconcile, s.requireAdmin)
	if b, ok := node.(Backups); ok { // a core node: shard backups (backup.go)
		s.routeBackups(v1, b)
	}
	s.console = newConsole(engine, node, m, log, s.now, s.itemJSON)
	s.routeConsole(e, v1)
	s.echo = e
	return s, nil
}

// MetricsHandler serves the Prometheus text of m.
func MetricsHandler(m *metrics.Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Handler returns the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.echo.Listener = ln
	s.console.start()
	err := s.echo.Start("")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends; then it stops the console's sampler.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.console.close()
	return s.echo.Shutdown(ctx)
}

// observe records every request's route, status and latency.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // writes the response now, so the status is known
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		code := c.Response().Status
		outcome, _ := c.Get(ctxOutcome).(string)
		if outcome == "" {
			outcome = strconv.Itoa(code)
		}
		s.m.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		s.m.HTTPDuration.WithLabelValues(route, outcome).Observe(time.Since(start).Seconds())
		return nil
	}
}

// recover turns a handler panic into a 500 and a log line.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("handler panic", "route", c.Path(), "panic", r)
				err = errInternal
			}
		}()
		return next(c)
	}
}

// limitBody caps request bodies; larger ones get 413. A shard restore's
// body is a backup: BackupBodyMax.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		limit := s.cfg.BodyLimit
		if c.Path() == restoreRoute {
			limit = BackupBodyMax
		}
		if r.ContentLength > limit {
			return errTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		return next(c)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// Readiness is what a node can serve: the body of GET /readyz.
type Readiness struct {
	// Status is "ready" or "not_ready": the answer to what was asked
	// (every shard with ?all=1).
	Status string `json:"status"`
	// Ready: the node is up and reaches the leader of at least one shard,
	// so a load balancer should send it shoppers. One shard without a
	// quorum must not take every node, and the other shards with them,
	// out of the pool: its items answer 503 on every node alike.
	Ready bool `json:"ready"`
	// All: every shard has a leader this node reaches.
	All    bool             `json:"all"`
	Shards []ShardReadiness `json:"shards"`
}

// ShardReadiness is one shard as this node can serve it.
type ShardReadiness struct {
	Shard  int    `json:"shard"`
	Leader string `json:"leader,omitempty"` // the leader this node reaches; empty: none
	Seat   bool   `json:"seat"`             // this node is a server of the shard's group, as its replica knows
	Served bool   `json:"served"`           // this node can serve the shard's items now
}

// readyz answers 200 while the node can serve (Readiness.Ready), or, with
// ?all=1, while it can serve every shard; else 503. The body tells which
// shards it can serve.
func (s *Server) readyz(c echo.Context) error {
	r := s.node.Readiness()
	ok := r.Ready
	if all := c.QueryParam("all"); all != "" && all != "0" {
		ok = r.All
	}
	if !ok {
		r.Status = "not_ready"
		return c.JSON(http.StatusServiceUnavailable, r)
	}
	r.Status = "ready"
	return c.JSON(http.StatusOK, r)
}

// reconcilePageMax caps the items of one GET /v1/admin/reconcile answer.
const reconcilePageMax = 1000

// reconcile answers one page of the reconciliation report: ?limit=n (at
// most reconcilePageMax, the default) items after the item ID ?after=,
// with "next" naming the cursor of the next page.
func (s *Server) reconcile(c echo.Context) error {
	limit := reconcilePageMax
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > reconcilePageMax {
			return invalid("limit must be 1..%d", reconcilePageMax)
		}
		limit = n
	}
	after := c.QueryParam("after")
	if after != "" && !sale.ValidID(after) {
		return invalid("after must be an item id (" + sale.IDRule + ")")
	}
	rep, err := s.engine.Reconcile(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep.Page(after, limit))
}

func (s *Server) clusterStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, s.node.Status(c.Request().Context()))
}
