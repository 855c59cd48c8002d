// Package clustertls is the mutual TLS of a node's cluster ports: the Raft
// mux (a net.Listener and a Dialer) and protoactor's gRPC remoting
// (transport credentials for its server and its dials).
//
// Both ends of every connection present a certificate, and each checks the
// other's:
//
//   - TLS 1.3 only;
//   - the peer's chain must end at the cluster CA (the --tls-ca file);
//   - the peer's certificate must allow both server and client
//     authentication (ExtKeyUsage), since every node is both;
//   - the node name and address in the certificate are not compared with
//     the address dialed: the cluster CA is the trust boundary, and every
//     certificate it issued is a member with the same rights (addresses
//     change under containers; names are not authenticated by gossip).
//     Issue node certificates from a CA used for nothing else.
//
// The files are re-read by Reload (SIGHUP, and the node's periodic check):
// a renewed certificate, key or CA takes effect for the next handshake
// without a restart; connections already open keep their session. Files
// that do not load, or a certificate the CA does not verify, leave the
// current ones in place, and Reload says why.
//
// Every refused handshake is reported to a refusal.Log, which logs it once
// per peer and minute.
package clustertls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/flashstock/flashstock/internal/refusal"
)

// Config names the files and the collaborators.
type Config struct {
	CAFile   string // PEM: the cluster CA certificate(s)
	CertFile string // PEM: this node's certificate (and intermediates)
	KeyFile  string // PEM: its private key
	// Refusals receives refused handshakes; nil logs nothing.
	Refusals *refusal.Log
	Logger   *slog.Logger
	Now      func() time.Time // nil means time.Now
}

// TLS holds the current certificate and CA and hands out listeners,
// dialers and gRPC credentials that always use the current ones. It is
// safe for concurrent use.
type TLS struct {
	cfg Config
	log *slog.Logger
	gen atomic.Pointer[generation]

	reloadMu sync.Mutex // one Reload at a time

	handshakes atomic.Uint64 // completed, both directions
}

// Handshakes returns how many handshakes completed (accepted and dialed,
// Raft and actors): a steady cluster keeps its connections, so a count
// that keeps rising means connections churn, each paying a handshake.
func (t *TLS) Handshakes() uint64 { return t.handshakes.Load() }

// generation is one loaded set of files and the configs built from them.
type generation struct {
	sum      [sha256.Size]byte // of the three files' contents
	cert     *tls.Certificate  // Leaf set
	pool     *x509.CertPool
	server   *tls.Config // for accepted connections
	client   *tls.Config // for dialed ones
	grpcSrv  credentials.TransportCredentials
	grpcDial credentials.TransportCredentials
}

// Load reads and checks the files.
func Load(cfg Config) (*TLS, error) {
	if cfg.CAFile == "" || cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("clustertls: the CA, certificate and key files are all required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &TLS{cfg: cfg, log: cfg.Logger}
	g, err := t.load()
	if err != nil {
		return nil, err
	}
	t.gen.Store(g)
	return t, nil
}

// Reload re-reads the files. It reports whether they changed; when they
// changed but do not load or do not verify, the current certificate and CA
// stay in use and the error says why.
func (t *TLS) Reload() (changed bool, err error) {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	sum, _, err := t.read()
	if err != nil {
		return false, err
	}
	if sum == t.gen.Load().sum {
		return false, nil
	}
	g, err := t.load()
	if err != nil {
		return true, err
	}
	t.gen.Store(g)
	t.log.Info("cluster TLS reloaded", "cert", t.cfg.CertFile, "subject", g.cert.Leaf.Subject.CommonName,
		"not_after", g.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return true, nil
}

// NotAfter returns when the current certificate expires.
func (t *TLS) NotAfter() time.Time { return t.gen.Load().cert.Leaf.NotAfter }

// Subject returns the current certificate's common name (the node name it
// was issued for).
func (t *TLS) Subject() string { return t.gen.Load().cert.Leaf.Subject.CommonName }

type files struct{ ca, cert, key []byte }

func (t *TLS) read() ([sha256.Size]byte, files, error) {
	var f files
	var err error
	if f.ca, err = os.ReadFile(t.cfg.CAFile); err != nil {
		return [sha256.Size]byte{}, f, fmt.Errorf("clustertls: CA: %w", err)
	}
	if f.cert, err = os.ReadFile(t.cfg.CertFile); err != nil {
		return [sha256.Size]byte{}, f, fmt.Errorf("clustertls: certificate: %w", err)
	}
	if f.key, err = os.ReadFile(t.cfg.KeyFile); err != nil {
		return [sha256.Size]byte{}, f, fmt.Errorf("clustertls: key: %w", err)
	}
	h := sha256.New()
	for _, b := range [][]byte{f.ca, f.cert, f.key} {
		h.Write(b)
		h.Write([]byte{0})
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum, f, nil
}

// load reads the files and builds a generation, checking that this node's
// own certificate is one its peers accept.
func (t *TLS) load() (*generation, error) {
	sum, f, err := t.read()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.ca) {
		return nil, fmt.Errorf("clustertls: %s holds no PEM certificate", t.cfg.CAFile)
	}
	cert, err := tls.X509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("clustertls: %s and %s: %w", t.cfg.CertFile, t.cfg.KeyFile, err)
	}
	if err := verifyPeer(pool, cert.Certificate, t.cfg.Now()); err != nil {
		return nil, fmt.Errorf("clustertls: %s does not verify against %s: %w", t.cfg.CertFile, t.cfg.CAFile, err)
	}
	g := &generation{sum: sum, cert: &cert, pool: pool}
	getCert := func() *tls.Certificate { return t.gen.Load().cert }
	verify := func(cs tls.ConnectionState) error {
		var raw [][]byte
		for _, c := range cs.PeerCertificates {
			raw = append(raw, c.Raw)
		}
		return verifyPeer(pool, raw, t.cfg.Now())
	}
	g.server = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		GetCertificate:   func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return getCert(), nil },
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        pool,
		VerifyConnection: verify, // adds the server-auth usage to what ClientAuth checked
	}
	g.client = &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return getCert(), nil },
		// The standard verification would also match the dialed address
		// against the certificate's names, which this cluster does not
		// (see the package comment); VerifyConnection checks the chain to
		// the cluster CA and the usages instead, on every handshake.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection:   verify,
	}
	g.grpcSrv, g.grpcDial = credentials.NewTLS(g.server), credentials.NewTLS(g.client)
	return g, nil
}

// errNoPeerCert: the peer presented no certificate.
var errNoPeerCert = errors.New("clustertls: the peer presented no certificate")

// verifyPeer checks a presented chain (leaf first): it must end at the
// cluster CA and allow both server and client authentication.
func verifyPeer(pool *x509.CertPool, chain [][]byte, now time.Time) error {
	if len(chain) == 0 {
		return errNoPeerCert
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, raw := range chain {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("clustertls: peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return err
		}
	}
	return nil
}

// refusedByUs reports a failed handshake of a connection this node
// dialed, unless it failed for want of time (a partition, a shutdown),
// which says nothing about the peer's credentials.
func (t *TLS) refusedByUs(what string, peer net.Addr, err error) {
	var ne net.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return
	}
	t.refused(what, peer, err)
}

// refused reports a failed handshake.
func (t *TLS) refused(what string, peer net.Addr, err error) {
	addr := "unknown"
	if peer != nil {
		addr = peer.String()
	}
	t.cfg.Refusals.Refused(what, addr, err.Error())
}

// Listener wraps ln: every accepted connection must complete a mutual TLS
// handshake, which happens on its first Read (so under the caller's read
// deadline), and a failed one is reported as a refusal on port what.
func (t *TLS) Listener(ln net.Listener, what string) net.Listener {
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return t.gen.Load().server, nil
		},
	}
	return &listener{Listener: ln, t: t, cfg: base, what: what}
}

type listener struct {
	net.Listener
	t    *TLS
	cfg  *tls.Config
	what string
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, l.cfg), l: l}, nil
}

// serverConn handshakes on its first Read or Write and reports a failure
// once.
type serverConn struct {
	*tls.Conn
	l    *listener
	once sync.Once
	err  error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		if err := c.Conn.Handshake(); err != nil {
			c.err = err
			c.l.t.refused(c.l.what, c.RemoteAddr(), err)
			return
		}
		c.l.t.handshakes.Add(1)
	})
	return c.err
}

func (c *serverConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *serverConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// Dial opens a mutual TLS connection to addr; the TCP connect and the
// handshake together take at most timeout. It has the signature of
// raftstore/mux's Dialer. A failed handshake is reported as a refusal on
// port "raft".
func (t *TLS) Dial(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, t.gen.Load().client)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		t.refusedByUs("raft", raw.RemoteAddr(), err)
		return nil, fmt.Errorf("clustertls: handshake with %s: %w", addr, err)
	}
	t.handshakes.Add(1)
	return c, nil
}

// Credentials returns gRPC transport credentials for protoactor's remote
// server and its dials, always with the current certificate and CA.
func (t *TLS) Credentials() credentials.TransportCredentials { return grpcCreds{t: t} }

type grpcCreds struct{ t *TLS }

func (c grpcCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.t.gen.Load().grpcDial.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.t.refusedByUs("actor", raw.RemoteAddr(), err)
		return conn, info, err
	}
	c.t.handshakes.Add(1)
	return conn, info, err
}

func (c grpcCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.t.gen.Load().grpcSrv.ServerHandshake(raw)
	if err != nil {
		c.t.refused("actor", raw.RemoteAddr(), err)
		return conn, info, err
	}
	c.t.handshakes.Add(1)
	return conn, info, err
}

func (c grpcCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c grpcCreds) Clone() credentials.TransportCredentials { return c }

// OverrideServerName is a no-op: the server name is not checked.
func (c grpcCreds) OverrideServerName(string) error { return nil }
