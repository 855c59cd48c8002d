package cluster

import (
	"sync"
	"time"

	"github.com/flashstock/flashstock/raftstore"
)

// FeatureGate answers raftstore.Config.Allowed: may a shard write log
// entries of a feature? Only when every server of the shard (voters and non-voters: both apply the log) is a member
// whose gossip meta says its version applies them. A voter gossip does not
// know (down since before this node started, say) counts as unable: an
// old node that comes back would crash on an entry it cannot apply, so a
// rolling upgrade turns a feature on only once the last voter runs the new
// version. The answer per shard is kept for gateTTL; it is asked for every
// purchase entry.
type FeatureGate struct {
	store   *raftstore.Store
	members *Membership

	mu     sync.Mutex
	cached map[int]gateEntry
}

type gateEntry struct {
	features uint64
	at       time.Time
}

// gateTTL bounds how long a shard's answer is reused. A voter that
// downgrades within it could be sent an entry it cannot apply; a
// downgrade must wait this long after a node leaves.
const gateTTL = time.Second

// NewFeatureGate returns a gate over this node's shards and view of the
// members.
func NewFeatureGate(store *raftstore.Store, members *Membership) *FeatureGate {
	return &FeatureGate{store: store, members: members, cached: make(map[int]gateEntry)}
}

// Allowed implements raftstore.Config.Allowed.
func (g *FeatureGate) Allowed(shard int, f raftstore.Feature) bool {
	g.mu.Lock()
	e, ok := g.cached[shard]
	g.mu.Unlock()
	if !ok || time.Since(e.at) > gateTTL {
		e = gateEntry{features: g.voterFeatures(shard), at: time.Now()}
		g.mu.Lock()
		g.cached[shard] = e
		g.mu.Unlock()
	}
	return e.features&uint64(f) == uint64(f)
}

// voterFeatures returns the features every server of the shard announces:
// voters and non-voters alike apply the log.
func (g *FeatureGate) voterFeatures(shard int) uint64 {
	servers, err := g.store.Shard(shard).Servers()
	if err != nil || len(servers) == 0 {
		return 0
	}
	all := ^uint64(0)
	for _, s := range servers {
		m, ok := g.members.Member(s.ID)
		if !ok {
			return 0
		}
		all &= m.Features
	}
	return all
}
