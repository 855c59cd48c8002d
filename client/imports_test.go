package client

import (
	"go/build"
	"strings"
	"testing"
)

// module is this module's import path prefix.
const module = "github.com/flashstock/flashstock/"

// TestImports keeps the client at the edge of the layers: it sees Flashstock
// as its shoppers do, so of this module it may import sale, orders and
// internal helpers, never the engine (actors, raftstore, http, node,
// cluster) nor the harnesses that use it (faults, loadgen); and importing it
// links no SQL driver (client/storecheck does).
func TestImports(t *testing.T) {
	seen := map[string]bool{}
	var walk func(path, dir string)
	walk = func(path, dir string) {
		pkg, err := build.Import(path, dir, 0)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			switch {
			case seen[imp]:
			case strings.Contains(imp, "sql"):
				t.Errorf("%s imports %s: a client user would link a SQL driver", pkg.ImportPath, imp)
			case strings.HasPrefix(imp, module):
				seen[imp] = true
				walk(imp, pkg.Dir)
			}
		}
	}
	self, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range self.Imports {
		if p, ok := strings.CutPrefix(imp, module); ok && p != "sale" && p != "orders" && !strings.HasPrefix(p, "internal/") {
			t.Errorf("client imports %s; of this module it may import sale, orders and internal/...", imp)
		}
	}
	walk(".", ".")
}
