// Package layers checks that imports follow the project's layers: each
// package imports only packages of lower layers (README.md draws them). It
// has no code, only this test, which `make check` runs.
package layers

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/flashstock/flashstock/"

// layers, highest first. A package belongs to the first entry that is its
// path or a parent of it; it may import packages of its own entry and of
// lower ones.
var layers = [][]string{
	{"cmd", "faults/cmd", "tools"},
	{"node"},
	{"http"},
	{"actors"},
	{"cluster"},
	{"faults"},
	{"raftstore"},
	{"loadgen"},
	{"client"},
	{"orders"},
	{"config", "internal"},
	{"sale"},
}

// narrower lists packages that may import less than their layer allows.
var narrower = map[string][]string{
	// The API talks to the engine through its own interface, in the
	// sale's terms: it never sees actors, Raft or gossip.
	"http": {"sale", "orders", "internal", "config"},
	// The sale core imports nothing of the project.
	"sale": {},
}

func layerOf(pkg string) (int, string) {
	rel := strings.TrimPrefix(pkg, module)
	for i, l := range layers {
		for _, p := range l {
			if rel == p || strings.HasPrefix(rel, p+"/") {
				return i, p
			}
		}
	}
	return -1, ""
}

func TestImportsFollowLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		fields := strings.Fields(string(line))
		pkg := fields[0]
		from, fromRoot := layerOf(pkg)
		if from < 0 {
			t.Errorf("%s: in no layer; add it to layers", pkg)
			continue
		}
		checked++
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to, toRoot := layerOf(imp)
			switch allowed, narrow := narrower[fromRoot]; {
			case to < 0:
				t.Errorf("%s imports %s, which is in no layer", pkg, imp)
			case narrow && toRoot != fromRoot && !slices.Contains(allowed, toRoot):
				t.Errorf("%s imports %s: %s may import only %v", pkg, imp, fromRoot, allowed)
			case to < from:
				t.Errorf("%s imports %s: against the layers (%s is above %s)", pkg, imp, toRoot, fromRoot)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d packages; want the whole module", checked)
	}
}
