// Package httpapi is Flashstock's HTTP API, built on Echo: the shopper
// routes (items, purchase, orders), the admin routes (create, restock,
// pause, cluster status) and the operational ones (health, readiness,
// Prometheus metrics).
//
// Handlers validate everything before they touch the engine, so bad input
// gets a 4xx JSON error and changes nothing; they return errors, and one
// error handler maps each error to a status code and the body
// {"error":{"code":"...","message":"..."}}.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flashstock/flashstock/actors"
	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/raftstore"
)

// Engine is what the API needs from the stock engine. actors.Engine
// implements it. Every method honours ctx and returns a package sentinel
// error (raftstore, actors) that the error handler maps to a status.
type Engine interface {
	CreateItem(ctx context.Context, c raftstore.CreateItem) (raftstore.Item, error)
	Item(ctx context.Context, id string) (raftstore.Item, error)
	Restock(ctx context.Context, id string, delta int64) (raftstore.Item, error)
	SetPaused(ctx context.Context, id string, paused bool) (raftstore.Item, error)
	Purchase(ctx context.Context, r actors.Request) (orders.Order, bool, error)
	Order(ctx context.Context, id uint64) (orders.Order, bool, error)
}

// Node is what the API needs to report on this node.
type Node interface {
	// Ready reports whether the node can serve purchases.
	Ready() bool
	// Status returns the cluster status document.
	Status(ctx context.Context) any
}

// Config configures the API.
type Config struct {
	Addr            string
	AuthSecret      []byte // HS256 key for shopper JWTs; nil disables JWTs
	TrustUserHeader bool   // take the shopper from X-User-ID
	AdminToken      string
	BodyLimit       int64 // bytes
	RequestTimeout  time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", BodyLimit: 4 << 10, RequestTimeout: 10 * time.Second}
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
	}
	return nil
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
}

// New returns a server; Serve starts it.
func New(cfg Config, engine Engine, node Node, m *metrics.Metrics, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, engine: engine, node: node, m: m, log: log, now: time.Now}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// Client IPs come from the socket only: X-Forwarded-For and X-Real-IP
	// are never trusted (Echo advisories GO-2026-6872, GO-2026-6875).
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.handleError
	e.Server.ReadHeaderTimeout = 5 * time.Second
	e.Server.ReadTimeout = 10 * time.Second
	e.Server.WriteTimeout = cfg.RequestTimeout + 5*time.Second
	e.Server.IdleTimeout = 120 * time.Second
	e.Server.MaxHeaderBytes = 16 << 10
	e.Use(s.observe, s.recover, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})))

	v1 := e.Group("/v1")
	v1.GET("/items/:id", s.getItem)
	v1.POST("/items", s.createItem, s.requireAdmin)
	v1.POST("/items/:id/stock", s.restock, s.requireAdmin)
	v1.POST("/items/:id/pause", s.pause, s.requireAdmin)
	v1.POST("/items/:id/resume", s.resume, s.requireAdmin)
	v1.POST("/items/:id/purchase", s.purchase, s.requireShopper)
	v1.GET("/orders/:id", s.getOrder, s.requireShopperOrAdmin)
	v1.GET("/cluster/status", s.clusterStatus, s.requireAdmin)
	s.echo = e
	return s, nil
}

// Handler returns the HTTP handler, for tests.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.echo.Listener = ln
	err := s.echo.Start("")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.echo.Shutdown(ctx) }

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

// limitBody caps request bodies; larger ones get 413.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.cfg.BodyLimit {
			return errTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.BodyLimit)
		return next(c)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	if !s.node.Ready() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not_ready"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) clusterStatus(c echo.Context) error {
	return c.JSON(http.StatusOK, s.node.Status(c.Request().Context()))
}
