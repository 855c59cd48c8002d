package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFaultSuite runs every fault with the short default sale (under ten
// minutes in all on two cores). It needs root, iproute2, iptables or
// nftables and MariaDB, and runs only with FLASHSTOCK_FAULTS=1 (CI sets
// it); FLASHSTOCK_FAULTS_LIST=kill-leader,... picks faults.
func TestFaultSuite(t *testing.T) {
	if os.Getenv("FLASHSTOCK_FAULTS") != "1" {
		t.Skip("set FLASHSTOCK_FAULTS=1 to run the fault suite (root, network namespaces, MariaDB)")
	}
	cfg := DefaultConfig()
	if v := os.Getenv("FLASHSTOCK_FAULTS_LIST"); v != "" {
		cfg.Faults = strings.Split(v, ",")
	}
	root, err := moduleRoot("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = root
	cfg.OutDir = filepath.Join(root, ".tmp", "faults", "test-"+time.Now().Format("20060102-150405"))
	cfg.Log = testWriter{t}
	// Stop a minute before the test binary's deadline so that tear-down
	// runs (a timeout panic would skip it).
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Minute))
		defer cancel()
	}
	rep, err := Run(ctx, cfg)
	if rep != nil {
		t.Logf("report (histories and node logs in %s):\n%s", rep.OutDir, rep.Markdown())
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range rep.Results {
		if res := &rep.Results[i]; !res.Passed() {
			t.Errorf("%s: %s", res.Fault, res.summary())
			for _, v := range res.Violations {
				t.Errorf("%s: %s", res.Fault, v)
			}
			if res.Error != "" {
				t.Errorf("%s: %s", res.Fault, res.Error)
			}
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
