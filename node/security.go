package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flashstock/flashstock/config"
	httpapi "github.com/flashstock/flashstock/http"
	"github.com/flashstock/flashstock/internal/clustertls"
	"github.com/flashstock/flashstock/internal/refusal"
)

// secretsCheckInterval is how often the node looks for renewed TLS files
// and a changed gossip key file (SIGHUP checks at once).
const secretsCheckInterval = 30 * time.Second

// security is a node's cluster-plane keys (docs/security.md): the mutual
// TLS of Raft and actor traffic, the gossip keys, and the log of refused
// peers. The zero value (no keys) is a loopback-only node.
type security struct {
	cfg      config.Config
	log      *slog.Logger
	refusals *refusal.Log
	tls      *clustertls.TLS // nil: plain TCP
	keys     [][]byte        // gossip keys in use, the primary first; nil: plain gossip

	reloadMu sync.Mutex // one reload at a time (SIGHUP and the periodic check)
	stop     chan struct{}
	wg       sync.WaitGroup
}

// newSecurity loads the files the configuration names and says, once, what
// is protected and what is not.
func newSecurity(cfg config.Config, log *slog.Logger) (*security, error) {
	s := &security{cfg: cfg, log: log, refusals: refusal.New(log, time.Minute, nil), stop: make(chan struct{})}
	var err error
	if s.keys, err = cfg.GossipKeyring(); err != nil {
		return nil, err
	}
	if cfg.TLSEnabled() {
		if s.tls, err = clustertls.Load(clustertls.Config{CAFile: cfg.TLSCA, CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey,
			Refusals: s.refusals, Logger: log}); err != nil {
			return nil, err
		}
		if left := time.Until(s.tls.NotAfter()); left < 30*24*time.Hour {
			log.Warn("cluster TLS certificate expires soon: renew it (node tls cert) and send SIGHUP", "cert", cfg.TLSCert, "expires_in", left.Round(time.Hour))
		}
	}
	switch {
	case !cfg.ClusterLoopback() && (s.tls == nil || s.keys == nil):
		log.Warn("--insecure-cluster: cluster ports are reachable from other hosts without the cluster's keys; anyone who reaches them can join, vote and sell",
			"gossip_encrypted", s.keys != nil, "raft_and_actor_tls", s.tls != nil)
	case s.tls != nil || s.keys != nil:
		log.Info("cluster plane secured", "gossip_keys", len(s.keys), "raft_and_actor_tls", s.tls != nil)
	}
	warnReadable(log, "--tls-key", cfg.TLSKey)
	warnReadable(log, "--gossip-key-file", cfg.GossipKeyFile)
	warnReadable(log, "SECKILL_ADMIN_TOKEN_FILE", cfg.AdminTokenFile)
	return s, nil
}

// warnReadable warns when a secret's file can be read by its group or by
// anyone: chmod 600 it.
func warnReadable(log *slog.Logger, what, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	if err != nil {
		return // reading it reports the error
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("a secret's file is readable by other users: chmod 600 it", "secret", what, "file", path, "mode", fmt.Sprintf("%04o", perm))
	}
}

// start runs the periodic check for renewed files, when there are any.
func (s *security) start() {
	if s.tls == nil && s.cfg.GossipKeyFile == "" {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(secretsCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				_ = s.reload(nil)
			}
		}
	}()
}

// close stops the periodic check and waits for it.
func (s *security) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
}

// gossipKeys is where reload hands new gossip keys.
type gossipKeys interface{ SetKeys([][]byte) error }

// reload re-reads the TLS files and the gossip key file, and applies what
// changed. A file that does not load keeps the current keys in force; the
// error says which.
func (s *security) reload(members gossipKeys) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	var errs []error
	if s.tls != nil {
		if _, err := s.tls.Reload(); err != nil {
			s.log.Error("cluster TLS reload: keeping the current certificate", "err", err)
			errs = append(errs, err)
		}
	}
	if s.cfg.GossipKeyFile != "" && members != nil {
		keys, err := config.ReadGossipKeyFile(s.cfg.GossipKeyFile)
		switch {
		case err != nil:
			s.log.Error("gossip key reload: keeping the current keys", "err", err)
			errs = append(errs, err)
		case !slices.EqualFunc(keys, s.keys, func(a, b []byte) bool { return string(a) == string(b) }):
			if err := members.SetKeys(keys); err != nil {
				s.log.Error("gossip key reload", "err", err)
				errs = append(errs, err)
				break
			}
			primaryChanged := string(keys[0]) != string(s.keys[0])
			s.keys = keys
			s.log.Info("gossip keys reloaded", "keys", len(keys), "primary_changed", primaryChanged)
		}
	}
	return errors.Join(errs...)
}

// Reload re-reads the cluster's TLS files and gossip key file (what
// SIGHUP does): a renewed certificate or a rotated key takes effect
// without a restart. It returns what failed to load; the keys in force
// then stay.
func (n *Node) Reload() error { return n.sec.reload(n.members) }

// metricsServer serves /metrics on its own listener (--metrics-addr).
type metricsServer struct {
	srv  *http.Server
	done chan struct{}
}

func (n *Node) serveMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", httpapi.MetricsHandler(n.metrics))
	m := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second},
		done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server", "err", err)
		}
	}()
	n.log.Info("metrics served apart from the API", "addr", ln.Addr().String())
	return m, nil
}

// close stops the metrics server within a second and waits for it.
func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if m.srv.Shutdown(ctx) != nil {
		_ = m.srv.Close()
	}
	<-m.done
}
