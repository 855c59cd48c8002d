// Package cluster is Flashstock's membership: which nodes exist, where
// they listen and whether they are alive, learned by gossip through
// hashicorp/memberlist. Each node publishes its addresses and region in its
// memberlist meta; the rest of the node reads the member list from here.
//
// Memberlist callbacks never block: they only record state under a mutex.
package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the others about itself.
type Meta struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft"`
	HTTPAddr  string `json:"http"`
	ActorAddr string `json:"actor"`
	Region    string `json:"region,omitempty"`
	Role      string `json:"role,omitempty"`
	Version   string `json:"version,omitempty"`
}

// Member is a node as this node sees it.
type Member struct {
	Meta
	GossipAddr string    `json:"gossip_addr"`
	State      string    `json:"state"` // alive, suspect, dead, left
	Since      time.Time `json:"since"`
}

// Config configures membership.
type Config struct {
	BindAddr      string   // host:port for gossip (UDP and TCP)
	AdvertiseAddr string   // host:port others reach; empty means BindAddr
	Join          []string // seeds
	Meta          Meta
	Logger        *slog.Logger
}

// Membership is this node's memberlist.
type Membership struct {
	ml  *memberlist.Memberlist
	log *slog.Logger
	del *delegate
}

// Start creates the memberlist and joins the seeds. Failing to reach every
// seed is not an error when at least one answered, or when there were none.
func Start(cfg Config) (*Membership, error) {
	if cfg.Meta.ID == "" {
		return nil, errors.New("cluster: node id is required")
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("cluster: meta: %w", err)
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("cluster: meta is %d bytes, over memberlist's %d", len(meta), memberlist.MetaMaxSize)
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip address: %w", err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
		}
	}
	mc.Logger = log.New(io.Discard, "", 0)
	d := &delegate{meta: meta, states: make(map[string]memberState)}
	mc.Delegate, mc.Events = d, d
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m := &Membership{ml: ml, log: cfg.Logger, del: d}
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			m.log.Warn("gossip join", "seeds", cfg.Join, "err", err)
		}
	}
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, port, nil
}

// Members returns every member ever seen, alive or not, sorted by ID.
func (m *Membership) Members() []Member {
	return m.del.members()
}

// Alive returns the number of live members.
func (m *Membership) Alive() int { return m.ml.NumMembers() }

// Leave tells the others this node is going, then stops gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	err := m.ml.Leave(timeout)
	return errors.Join(err, m.ml.Shutdown())
}

type memberState struct {
	node  *memberlist.Node
	state string
	since time.Time
}

// delegate records membership events; it never blocks.
type delegate struct {
	meta []byte
	mu   sync.Mutex
	// states is keyed by node name.
	states map[string]memberState
}

func (d *delegate) NodeMeta(limit int) []byte                  { return d.meta }
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) set(n *memberlist.Node, state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states[n.Name] = memberState{node: n, state: state, since: time.Now()}
}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.set(n, "alive") }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.set(n, "alive") }
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	state := "dead"
	if n.State == memberlist.StateLeft {
		state = "left"
	}
	d.set(n, state)
}

func (d *delegate) members() []Member {
	d.mu.Lock()
	out := make([]Member, 0, len(d.states))
	for _, s := range d.states {
		var meta Meta
		_ = json.Unmarshal(s.node.Meta, &meta) // a peer with bad meta shows with its name only
		if meta.ID == "" {
			meta.ID = s.node.Name
		}
		out = append(out, Member{Meta: meta, GossipAddr: s.node.Address(), State: s.state, Since: s.since})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
