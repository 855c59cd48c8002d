package clustertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 subject key identifier, not a signature
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Lifetimes of what Issue and NewCA make, unless told otherwise.
const (
	CAValidity   = 5 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
	// backdate allows for clocks a little behind the issuer's.
	backdate = 5 * time.Minute
)

// File names in the directories `node tls` writes.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct{ Cert, Key []byte }

// NewCA returns a new cluster CA: an ECDSA P-256 key and a self-signed
// certificate that may sign node certificates only (path length 0).
func NewCA(name string, validity time.Duration, now time.Time) (PEM, error) {
	if validity <= 0 {
		validity = CAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	tmpl, err := template(name, validity, now, &key.PublicKey)
	if err != nil {
		return PEM{}, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, fmt.Errorf("clustertls: create CA: %w", err)
	}
	return encode(der, key)
}

// Issue returns a node certificate signed by the CA: an ECDSA P-256 key, the
// node's name as common name (and as a DNS name when it is one), every
// host as an IP or DNS subject alternative name, and both server and client
// authentication.
func Issue(ca PEM, name string, hosts []string, validity time.Duration, now time.Time) (PEM, error) {
	return issue(ca, name, hosts, validity, now, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

func issue(ca PEM, name string, hosts []string, validity time.Duration, now time.Time, usages []x509.ExtKeyUsage) (PEM, error) {
	if name == "" {
		return PEM{}, errors.New("clustertls: a node name is required")
	}
	if validity <= 0 {
		validity = CertValidity
	}
	caCert, caKey, err := parseCA(ca)
	if err != nil {
		return PEM{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	tmpl, err := template(name, validity, now, &key.PublicKey)
	if err != nil {
		return PEM{}, err
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter // a certificate cannot outlive its CA
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = usages
	tmpl.BasicConstraintsValid = true
	if dnsName(name) {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
		case net.ParseIP(h) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
		case dnsName(h):
			if h != name {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		default:
			return PEM{}, fmt.Errorf("clustertls: host %q is neither an IP address nor a DNS name", h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, fmt.Errorf("clustertls: issue %s: %w", name, err)
	}
	return encode(der, key)
}

func template(cn string, validity time.Duration, now time.Time, pub *ecdsa.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	ski := sha1.Sum(pubDER) //nolint:gosec // key identifier
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Flashstock cluster"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(validity),
		SubjectKeyId: ski[:],
	}, nil
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}, nil
}

func parseCA(ca PEM) (*x509.Certificate, any, error) {
	blk, _ := pem.Decode(ca.Cert)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, nil, errors.New("clustertls: the CA certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("clustertls: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, errors.New("clustertls: the CA certificate is not a CA")
	}
	kb, _ := pem.Decode(ca.Key)
	if kb == nil {
		return nil, nil, errors.New("clustertls: the CA key is not PEM")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if key, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return nil, nil, fmt.Errorf("clustertls: CA key: %w", err)
		}
	}
	return cert, key, nil
}

// dnsName reports whether s looks like a DNS name: labels of letters,
// digits and hyphens, not starting or ending with a hyphen.
func dnsName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// WriteFiles writes a certificate (mode 0644) and its key (mode 0600) into
// dir as base.crt and base.key (dir is created 0700 if missing). It never
// overwrites a file unless force.
func WriteFiles(dir, base string, p PEM, force bool) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	certPath, keyPath = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{keyPath, p.Key, 0o600}, {certPath, p.Cert, 0o644}} {
		fh, err := os.OpenFile(f.path, flags, f.mode)
		if err != nil {
			return "", "", fmt.Errorf("clustertls: %w (pass --force to replace it)", err)
		}
		_, werr := fh.Write(f.data)
		cerr := fh.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return "", "", err
		}
		if err := os.Chmod(f.path, f.mode); err != nil { // O_TRUNC keeps an old mode
			return "", "", err
		}
	}
	return certPath, keyPath, nil
}

// ReadCA reads ca.crt and ca.key from dir.
func ReadCA(dir string) (PEM, error) {
	var p PEM
	var err error
	if p.Cert, err = os.ReadFile(filepath.Join(dir, CACertFile)); err != nil {
		return p, fmt.Errorf("clustertls: %w", err)
	}
	if p.Key, err = os.ReadFile(filepath.Join(dir, CAKeyFile)); err != nil {
		return p, fmt.Errorf("clustertls: %w", err)
	}
	return p, nil
}
