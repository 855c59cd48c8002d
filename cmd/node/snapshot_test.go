package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotCommandLine: every snapshot command prints its usage with -h;
// a missing --file or command is a usage error; a file that is not a
// backup is refused before any node is asked.
func TestSnapshotCommandLine(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{{"snapshot", "-h"}, {"snapshot", "save", "-h"}, {"snapshot", "restore", "-h"}, {"snapshot", "prune-store", "-h"}, {"snapshot", "info", "-h"}} {
		var out strings.Builder
		if err := run(context.Background(), args, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "usage: node snapshot") {
			t.Errorf("node %s = %v; printed %q; want a usage", strings.Join(args, " "), err, out.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.fsnap")
	if err := os.WriteFile(bad, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"snapshot"}, {"snapshot", "save"}, {"snapshot", "restore"}, {"snapshot", "nope"}} {
		var ue usageError
		if err := run(context.Background(), args, env, io.Discard, io.Discard); !errors.As(err, &ue) {
			t.Errorf("node %s = %v; want a usage error", strings.Join(args, " "), err)
		}
	}
	for _, args := range [][]string{{"snapshot", "info", "--file", bad}, {"snapshot", "restore", "--file", bad, "--addr", "http://127.0.0.1:1", "--admin-token", "x"}} {
		if err := run(context.Background(), args, env, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "not a Flashstock backup") {
			t.Errorf("node %s = %v; want the file refused", strings.Join(args, " "), err)
		}
	}
}
