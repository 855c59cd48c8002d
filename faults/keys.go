package faults

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flashstock/flashstock/internal/clustertls"
)

// clusterKeys are a test cluster's keys (docs/security.md): a CA, a
// certificate per node naming its IP, and a gossip key, all in files.
type clusterKeys struct {
	dir string
}

// makeClusterKeys writes fresh keys into dir.
func makeClusterKeys(dir string, e *Env) (clusterKeys, error) {
	k := clusterKeys{dir: dir}
	now := time.Now()
	ca, err := clustertls.NewCA("faults CA", 0, now)
	if err != nil {
		return k, fmt.Errorf("faults: CA: %w", err)
	}
	if _, _, err := clustertls.WriteFiles(dir, "ca", ca, true); err != nil {
		return k, fmt.Errorf("faults: CA: %w", err)
	}
	for i := 0; i < nodes; i++ {
		name := fmt.Sprintf("n%d", i)
		c, err := clustertls.Issue(ca, name, []string{e.nodeIP(i)}, 0, now)
		if err != nil {
			return k, fmt.Errorf("faults: certificate of %s: %w", name, err)
		}
		if _, _, err := clustertls.WriteFiles(dir, name, c, true); err != nil {
			return k, fmt.Errorf("faults: certificate of %s: %w", name, err)
		}
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return k, err
	}
	if err := os.WriteFile(k.gossipFile(), []byte(base64.StdEncoding.EncodeToString(key[:])+"\n"), 0o600); err != nil {
		return k, fmt.Errorf("faults: gossip key: %w", err)
	}
	return k, nil
}

func (k clusterKeys) gossipFile() string { return filepath.Join(k.dir, "gossip.key") }

// args are node i's flags naming its key files (paths, not secrets).
func (k clusterKeys) args(i int) []string {
	name := fmt.Sprintf("n%d", i)
	return []string{
		"--gossip-key-file", k.gossipFile(),
		"--tls-ca", filepath.Join(k.dir, "ca.crt"),
		"--tls-cert", filepath.Join(k.dir, name+".crt"),
		"--tls-key", filepath.Join(k.dir, name+".key"),
	}
}
