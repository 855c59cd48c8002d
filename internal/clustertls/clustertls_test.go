package clustertls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flashstock/flashstock/internal/clustertls"
	"github.com/flashstock/flashstock/internal/refusal"
)

// pki is a CA and the files of node certificates it issued, on disk.
type pki struct {
	t   *testing.T
	dir string
	ca  clustertls.PEM
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := clustertls.NewCA("test CA", 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, _, err := clustertls.WriteFiles(dir, "ca", ca, false); err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, dir: dir, ca: ca}
}

// node issues a certificate for name and returns a Config naming its files.
func (p *pki) node(name string, refusals *refusal.Log) clustertls.Config {
	p.t.Helper()
	c, err := clustertls.Issue(p.ca, name, []string{"127.0.0.1", "localhost"}, 0, time.Now())
	if err != nil {
		p.t.Fatal(err)
	}
	certPath, keyPath, err := clustertls.WriteFiles(p.dir, name, c, true)
	if err != nil {
		p.t.Fatal(err)
	}
	return clustertls.Config{CAFile: filepath.Join(p.dir, "ca.crt"), CertFile: certPath, KeyFile: keyPath, Refusals: refusals}
}

func load(t *testing.T, cfg clustertls.Config) *clustertls.TLS {
	t.Helper()
	tl, err := clustertls.Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return tl
}

// logBuffer is a slog handler target safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRefusals() (*refusal.Log, *logBuffer) {
	buf := &logBuffer{}
	return refusal.New(slog.New(slog.NewTextHandler(buf, nil)), time.Minute, nil), buf
}

// echoServer accepts on a TLS listener and echoes one line per connection.
func echoServer(t *testing.T, tl *clustertls.TLS) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tl.Listener(raw, "raft")
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				_, _ = c.Write(buf[:n])
			}()
		}
	}()
	return raw.Addr().String()
}

func roundTrip(tl *clustertls.TLS, addr string) error {
	c, err := tl.Dial(addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping" {
		return errors.New("echo mismatch")
	}
	return nil
}

func TestIssuedCertificates(t *testing.T) {
	p := newPKI(t)
	cfg := p.node("n1", nil)
	b, err := os.ReadFile(cfg.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "n1" || !contains(cert.DNSNames, "n1") || !contains(cert.DNSNames, "localhost") {
		t.Errorf("names = %q %v; want CN n1 and DNS n1, localhost", cert.Subject.CommonName, cert.DNSNames)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("IPs = %v; want [127.0.0.1]", cert.IPAddresses)
	}
	if len(cert.ExtKeyUsage) != 2 {
		t.Errorf("ExtKeyUsage = %v; want server and client auth", cert.ExtKeyUsage)
	}
	if d := time.Until(cert.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("node certificate valid for %v; want a year", d)
	}
	caBlk, _ := pem.Decode(p.ca.Cert)
	caCert, _ := x509.ParseCertificate(caBlk.Bytes)
	if d := time.Until(caCert.NotAfter); d < 4*365*24*time.Hour || !caCert.IsCA || !caCert.MaxPathLenZero {
		t.Errorf("CA: valid for %v, IsCA %v, MaxPathLenZero %v; want 5 years, a CA that signs leaves only", d, caCert.IsCA, caCert.MaxPathLenZero)
	}
	for _, f := range []string{cfg.KeyFile, filepath.Join(p.dir, "ca.key")} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v; want 0600", f, st.Mode().Perm())
		}
	}
	if _, _, err := clustertls.WriteFiles(p.dir, "n1", clustertls.PEM{Cert: b, Key: b}, false); err == nil {
		t.Error("WriteFiles overwrote an existing certificate without force")
	}
	if _, err := clustertls.Issue(p.ca, "n2", []string{"not a host!"}, 0, time.Now()); err == nil {
		t.Error("Issue accepted a host that is neither an IP nor a DNS name")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestMutualTLS(t *testing.T) {
	refusals, logs := newRefusals()
	cluster := newPKI(t)
	stranger := newPKI(t)
	server := load(t, cluster.node("n1", refusals))
	addr := echoServer(t, server)

	member := load(t, cluster.node("n2", nil))
	if err := roundTrip(member, addr); err != nil {
		t.Fatalf("member to member: %v", err)
	}
	if member.Handshakes() != 1 {
		t.Errorf("member's Handshakes() = %d after one dial; want 1", member.Handshakes())
	}
	// A certificate from another CA: the server refuses it, and a member
	// dialing a server with one refuses the server.
	if err := roundTrip(load(t, stranger.node("x1", nil)), addr); err == nil {
		t.Fatal("a certificate from another CA completed a round trip")
	}
	strangerServer := load(t, stranger.node("x2", nil))
	memberRefusals, memberLogs := newRefusals()
	memberCfg := cluster.node("n3", memberRefusals)
	if err := roundTrip(load(t, memberCfg), echoServer(t, strangerServer)); err == nil {
		t.Fatal("a member accepted a server with a certificate from another CA")
	}
	if !strings.Contains(memberLogs.String(), "port=raft") {
		t.Errorf("the member did not log the refused server: %q", memberLogs.String())
	}
	// No certificate at all (TLS without a client certificate), and plain TCP.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.ca.Cert)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "n1", MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write([]byte("ping"))
		if _, err = c.Read(make([]byte, 4)); err == nil {
			t.Fatal("a client without a certificate got an answer")
		}
		c.Close()
	}
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.SetDeadline(time.Now().Add(3 * time.Second))
	_, _ = plain.Write([]byte("\xF5\x00\x00 raft over plain tcp"))
	if n, err := plain.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a plain TCP client read %d bytes", n)
	}
	plain.Close()
	waitFor(t, func() bool { return strings.Contains(logs.String(), "refused") })
	// Three refusals from 127.0.0.1: one line (once per peer and minute).
	time.Sleep(100 * time.Millisecond)
	if got := server.Handshakes(); got != 1 {
		t.Errorf("server's Handshakes() = %d; want 1 (the refused ones do not count)", got)
	}
	if n := strings.Count(logs.String(), "refused a peer"); n != 1 {
		t.Errorf("server logged %d refusal lines for one peer; want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "peer=127.0.0.1:") {
		t.Errorf("refusal line does not name the peer: %q", logs.String())
	}
}

func TestRefusesCertificateWithoutBothUsages(t *testing.T) {
	// A certificate from the cluster CA for server auth only (say, one made
	// for an HTTPS endpoint) is not a member.
	p := newPKI(t)
	server := load(t, p.node("n1", nil))
	addr := echoServer(t, server)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.ca.Cert)
	// Build the client certificate by hand with only client auth.
	web := issueWithUsage(t, p.ca, x509.ExtKeyUsageClientAuth)
	cert, err := tls.X509KeyPair(web.Cert, web.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "n1", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = c.Write([]byte("ping"))
		_, err = c.Read(make([]byte, 4))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client-auth-only certificate was accepted as a member")
	}
	// Load refuses such a certificate for the node itself.
	dir := t.TempDir()
	certPath, keyPath, _ := clustertls.WriteFiles(dir, "web", web, false)
	caPath := filepath.Join(p.dir, "ca.crt")
	if _, err := clustertls.Load(clustertls.Config{CAFile: caPath, CertFile: certPath, KeyFile: keyPath}); err == nil {
		t.Fatal("Load accepted a certificate without server auth")
	}
}

func TestReloadPicksUpRenewedCertificate(t *testing.T) {
	p := newPKI(t)
	cfg := p.node("n1", nil)
	server := load(t, cfg)
	addr := echoServer(t, server)
	client := load(t, p.node("n2", nil))

	subjectSeen := func() string {
		c, err := client.Dial(addr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := subjectSeen()
	if changed, err := server.Reload(); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
	// Renew: a new certificate and key for the same node, same paths.
	renewed, err := clustertls.Issue(p.ca, "n1", []string{"127.0.0.1"}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := clustertls.WriteFiles(filepath.Dir(cfg.CertFile), "n1", renewed, true); err != nil {
		t.Fatal(err)
	}
	if changed, err := server.Reload(); !changed || err != nil {
		t.Fatalf("Reload after renewal = %v, %v; want true, nil", changed, err)
	}
	if after := subjectSeen(); after == before {
		t.Fatalf("server still presents serial %s after the renewal", before)
	}
	// A broken renewal (a key that does not match) keeps the current one.
	other, _ := clustertls.Issue(p.ca, "n1", nil, 0, time.Now())
	if err := os.WriteFile(cfg.KeyFile, other.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := server.Reload(); !changed || err == nil {
		t.Fatalf("Reload of a mismatched key = %v, %v; want true and an error", changed, err)
	}
	if err := roundTrip(client, addr); err != nil {
		t.Fatalf("after a failed reload the server no longer works: %v", err)
	}
}

func TestReloadNewCA(t *testing.T) {
	// CA rotation: the server moves to a new CA; a client still on the old
	// one is refused from the next handshake on, without a restart.
	old := newPKI(t)
	cfg := old.node("n1", nil)
	server := load(t, cfg)
	addr := echoServer(t, server)
	oldClient := load(t, old.node("n2", nil))
	if err := roundTrip(oldClient, addr); err != nil {
		t.Fatal(err)
	}
	next := newPKI(t)
	nc := next.node("n1", nil)
	for _, f := range [][2]string{{nc.CAFile, cfg.CAFile}, {nc.CertFile, cfg.CertFile}, {nc.KeyFile, cfg.KeyFile}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(oldClient, addr); err == nil {
		t.Fatal("a client of the old CA still completes a handshake after the CA was replaced")
	}
	if err := roundTrip(load(t, next.node("n3", nil)), addr); err != nil {
		t.Fatalf("a client of the new CA: %v", err)
	}
}

func TestGRPCCredentials(t *testing.T) {
	refusals, logs := newRefusals()
	p := newPKI(t)
	server := load(t, p.node("n1", refusals))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(server.Credentials()))
	healthpb.RegisterHealthServer(s, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	addr := ln.Addr().String()

	check := func(opt grpc.DialOption) error {
		conn, err := grpc.Dial(addr, opt)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := check(grpc.WithTransportCredentials(load(t, p.node("n2", nil)).Credentials())); err != nil {
		t.Fatalf("member: %v", err)
	}
	if err := check(grpc.WithTransportCredentials(load(t, newPKI(t).node("x", nil)).Credentials())); err == nil {
		t.Fatal("a client with a certificate from another CA made a call")
	}
	if err := check(grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		t.Fatal("a plaintext client made a call")
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "port=actor") })
}

// issueWithUsage issues a leaf from ca with one extended key usage.
func issueWithUsage(t *testing.T, ca clustertls.PEM, usage x509.ExtKeyUsage) clustertls.PEM {
	t.Helper()
	return clustertls.IssueForTest(t, ca, usage)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
