package clustertls

import (
	"crypto/x509"
	"testing"
	"time"
)

// IssueForTest issues a leaf with only the given extended key usage.
func IssueForTest(tb testing.TB, ca PEM, usage x509.ExtKeyUsage) PEM {
	tb.Helper()
	p, err := issue(ca, "web", []string{"127.0.0.1"}, 0, time.Now(), []x509.ExtKeyUsage{usage})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}
