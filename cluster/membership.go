package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/bits"
	"net"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/flashstock/flashstock/config"
	"github.com/flashstock/flashstock/internal/logbridge"
	"github.com/flashstock/flashstock/internal/refusal"
)

// Meta is what a node tells the others about itself.
type Meta struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft"`
	HTTPAddr  string `json:"http"`
	ActorAddr string `json:"actor"`
	ActorSys  string `json:"sys,omitempty"` // protoactor ActorSystem.ID of this process
	Region    string `json:"region,omitempty"`
	Role      string `json:"role,omitempty"`
	Version   string `json:"version,omitempty"`
	// Bootstrapped is set once this node's shard groups exist, so that a
	// node started later joins them instead of bootstrapping new ones.
	Bootstrapped bool `json:"boot,omitempty"`
	// BootSet is the initial cluster this node bootstrapped the shard
	// groups from, so that the other nodes of it bootstrap their own
	// shards from the same set, however late they see it.
	BootSet []string `json:"bset,omitempty"`
	// Leads is the set of shards this node leads, a hex bit set, so that
	// nodes outside a shard's group can still route to its leader.
	Leads string `json:"leads,omitempty"`
	// LeadTerms are the Raft terms of the shards in Leads, in shard order:
	// two members may both claim a shard (a leader paused or cut off still
	// claims it until gossip gives up on it), and the higher term is the
	// real leader. Absent from a node of an earlier version.
	LeadTerms []uint64 `json:"lterms,omitempty"`
	// Follows is the set of shards this node follows with a leader it
	// hears from, in the same form, but never empty once published ("00"
	// for none): a leader hands a shard only to a node that hears it, and
	// an empty Follows is a node of an earlier version, which never says.
	Follows string `json:"follows,omitempty"`
	// Features is the set of log entry kinds this node's version applies
	// (raftstore.Features); a shard writes a new kind only once every
	// voter says it reads it (FeatureGate). Zero is a node of a version
	// before features were announced.
	Features uint64 `json:"feat,omitempty"`
	// Shards is the node's shard count: a gateway places items by hash
	// mod it, so it must equal the core nodes'.
	Shards int `json:"shards,omitempty"`
	// Sick names what makes the node a poor leader now ("disk_full",
	// "disk_slow"), empty when nothing does: no leadership is handed to it,
	// and it hands away those it holds.
	Sick string `json:"sick,omitempty"`
}

// IsGateway reports whether the member is a gateway (Role is
// config.RoleGateway; a node of an earlier version says "node", a core
// node): it holds no Raft seat and is never given one.
func (m *Meta) IsGateway() bool { return m.Role == config.RoleGateway }

// LeadsShard reports whether the meta says its node leads shard.
func (m *Meta) LeadsShard(shard int) bool { return hasShard(m.Leads, shard) }

// LeadTerm returns the term the meta claims shard's leadership in, 0 when
// it does not say (or does not claim the shard).
func (m *Meta) LeadTerm(shard int) uint64 {
	if i, ok := shardRank(m.Leads, shard); ok && i < len(m.LeadTerms) {
		return m.LeadTerms[i]
	}
	return 0
}

// HearsLeader reports whether the node hears shard's leader: it says it
// follows the shard with a known leader, or it says nothing (an earlier
// version).
func (m *Meta) HearsLeader(shard int) bool { return m.Follows == "" || hasShard(m.Follows, shard) }

// ShardSet returns the shards in a Leads or Follows set, in order.
func ShardSet(set string) []int {
	b, err := hex.DecodeString(set)
	if err != nil {
		return nil
	}
	var out []int
	for i := range len(b) * 8 {
		if b[i/8]&(1<<(i%8)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

func hasShard(set string, shard int) bool {
	_, ok := shardRank(set, shard)
	return ok
}

// shardRank returns the position of shard among the shards of a Leads or
// Follows set (how many smaller shards it holds), and whether the set holds
// it. It reads the hex in place: placement asks it for every purchase a
// gateway forwards.
func shardRank(set string, shard int) (int, bool) {
	if shard < 0 || len(set)%2 != 0 || 2*(shard/8) >= len(set) {
		return 0, false
	}
	rank := 0
	for i := 0; 2*i < len(set); i++ {
		hi, ok1 := unhex(set[2*i])
		lo, ok2 := unhex(set[2*i+1])
		if !ok1 || !ok2 {
			return 0, false // not a set: as hex.DecodeString would refuse it
		}
		b := hi<<4 | lo
		switch {
		case i < shard/8:
			rank += bits.OnesCount8(b)
		case i == shard/8:
			if b&(1<<(shard%8)) == 0 {
				return 0, false
			}
			rank += bits.OnesCount8(b & (1<<(shard%8) - 1))
		}
	}
	return rank, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// EncodeLeads returns the Leads form of a set of shards.
func EncodeLeads(shards []int) string {
	if len(shards) == 0 {
		return ""
	}
	top := 0
	for _, s := range shards {
		top = max(top, s)
	}
	b := make([]byte, top/8+1)
	for _, s := range shards {
		b[s/8] |= 1 << (s % 8)
	}
	return hex.EncodeToString(b)
}

// Member states.
const (
	StateAlive = "alive"
	StateDead  = "dead"
	StateLeft  = "left"
)

// Member is a node as this node sees it.
type Member struct {
	Meta
	GossipAddr string    `json:"gossip_addr"`
	State      string    `json:"state"`
	Since      time.Time `json:"since"` // when State last changed
}

// Config configures membership.
type Config struct {
	BindAddr      string   // host:port for gossip (UDP and TCP)
	AdvertiseAddr string   // host:port others reach; empty means BindAddr
	Join          []string // seeds
	Meta          Meta
	// Fast selects memberlist's local-network timing (tests, one machine).
	Fast   bool
	Logger *slog.Logger
	// Keys encrypt and authenticate gossip (AES-GCM, memberlist's keyring):
	// the first encrypts, all decrypt, and a packet or stream no key opens
	// is dropped. Empty: gossip is plain text (loopback-only nodes).
	Keys [][]byte
	// Refusals receives the peers whose gossip no key opened; nil logs
	// nothing.
	Refusals *refusal.Log
}

// Membership is this node's view of the cluster.
type Membership struct {
	ml      *memberlist.Memberlist
	keyring *memberlist.Keyring // nil when gossip is plain text
	log     *slog.Logger
	del     *delegate
	changed chan struct{} // signalled (never blocking) on any change

	metaMu sync.Mutex // serialises meta updates
}

// Start creates the memberlist and joins the seeds. Failing to reach the
// seeds is logged, not fatal: a node may start before its peers, and
// memberlist keeps the cluster together once any two nodes meet. Bootstrap
// and the Reconciler join the seeds again while members are missing.
func Start(cfg Config) (*Membership, error) {
	if cfg.Meta.ID == "" {
		return nil, errors.New("cluster: node id is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	host, port, err := splitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip address: %w", err)
	}
	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.SuspicionMult = 2
	}
	mc.Name = cfg.Meta.ID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	if cfg.AdvertiseAddr != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
		}
	}
	mc.Logger = log.New(&libLog{log: cfg.Logger, refusals: cfg.Refusals}, "", 0)
	m := &Membership{log: cfg.Logger, changed: make(chan struct{}, 1)}
	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys, cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip keys: %w", err)
		}
		mc.Keyring, m.keyring = kr, kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	d := &delegate{states: make(map[string]memberState), notify: m.signal}
	if err := d.setMeta(cfg.Meta); err != nil {
		return nil, err
	}
	m.del = d
	mc.Delegate, mc.Events = d, d
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			m.log.Warn("gossip join", "seeds", cfg.Join, "err", err)
		}
	}
	return m, nil
}

// Encrypted reports whether gossip is encrypted.
func (m *Membership) Encrypted() bool { return m.keyring != nil }

// SetKeys replaces the gossip keys of a running node, the primary first,
// without a restart: new keys are installed first, then the primary
// switches, then keys no longer listed are dropped. Rolling a key across a
// cluster is three such steps on every node (docs/security.md).
func (m *Membership) SetKeys(keys [][]byte) error {
	if m.keyring == nil {
		return errors.New("cluster: gossip was started without a key: restart the node to turn encryption on")
	}
	if len(keys) == 0 {
		return errors.New("cluster: no gossip key")
	}
	for _, k := range keys {
		if err := m.keyring.AddKey(k); err != nil {
			return fmt.Errorf("cluster: gossip key: %w", err)
		}
	}
	if err := m.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("cluster: gossip key: %w", err)
	}
	var stale [][]byte
	for _, have := range m.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, have) }) {
			stale = append(stale, bytes.Clone(have))
		}
	}
	for _, k := range stale {
		if err := m.keyring.RemoveKey(k); err != nil {
			return fmt.Errorf("cluster: gossip key: %w", err)
		}
	}
	return nil
}

// KeyCount returns how many gossip keys are installed (0: plain text).
func (m *Membership) KeyCount() int {
	if m.keyring == nil {
		return 0
	}
	return len(m.keyring.GetKeys())
}

// Join contacts seeds; it returns how many answered.
func (m *Membership) Join(seeds []string) (int, error) { return m.ml.Join(seeds) }

func (m *Membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled after membership or meta changes. One receiver.
func (m *Membership) Changed() <-chan struct{} { return m.changed }

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

// Self returns this node's meta.
func (m *Membership) Self() Meta {
	m.del.mu.Lock()
	defer m.del.mu.Unlock()
	return m.del.self
}

// UpdateMeta changes this node's meta and gossips it. It waits at most
// timeout for the broadcast.
func (m *Membership) UpdateMeta(f func(*Meta), timeout time.Duration) error {
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	meta := m.Self()
	f(&meta)
	if reflect.DeepEqual(meta, m.Self()) {
		return nil
	}
	if err := m.del.setMeta(meta); err != nil {
		return err
	}
	return m.ml.UpdateNode(timeout)
}

// Members returns every member seen, alive or not, sorted by ID.
func (m *Membership) Members() []Member { return m.del.members() }

// Member returns the member with this ID.
func (m *Membership) Member(id string) (Member, bool) { return m.del.member(id) }

// Alive returns the live members (this node included), sorted by ID.
func (m *Membership) Alive() []Member {
	all := m.Members()
	out := all[:0]
	for _, mb := range all {
		if mb.State == StateAlive {
			out = append(out, mb)
		}
	}
	return out
}

// AliveCount returns how many live members are gateways (gateways true) or
// core nodes (false), this node included.
func (m *Membership) AliveCount(gateways bool) int {
	n := 0
	for _, mb := range m.Alive() {
		if mb.IsGateway() == gateways {
			n++
		}
	}
	return n
}

// Leave tells the others this node is going, then stops gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	err := m.ml.Leave(timeout)
	return errors.Join(err, m.ml.Shutdown())
}

// Shutdown stops gossip without saying goodbye (a crash, for tests).
func (m *Membership) Shutdown() error { return m.ml.Shutdown() }

type memberState struct {
	meta  Meta
	addr  string
	state string
	since time.Time
}

// delegate is memberlist's Delegate and EventDelegate. It records state
// under mu and never blocks.
type delegate struct {
	notify func()

	mu       sync.Mutex
	self     Meta
	selfJSON []byte
	states   map[string]memberState // by node name
}

func (d *delegate) setMeta(meta Meta) error {
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("cluster: meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("cluster: meta is %d bytes, over memberlist's %d", len(b), memberlist.MetaMaxSize)
	}
	d.mu.Lock()
	d.self, d.selfJSON = meta, b
	d.mu.Unlock()
	return nil
}

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.selfJSON
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

func (d *delegate) set(n *memberlist.Node, state string) {
	var meta Meta
	_ = json.Unmarshal(n.Meta, &meta) // a peer with bad meta shows with its name only
	if meta.ID == "" {
		meta.ID = n.Name
	}
	d.mu.Lock()
	prev, ok := d.states[n.Name]
	since := time.Now()
	if ok && prev.state == state {
		since = prev.since
	}
	d.states[n.Name] = memberState{meta: meta, addr: n.Address(), state: state, since: since}
	d.mu.Unlock()
	d.notify()
}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.set(n, StateAlive) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.set(n, StateAlive) }
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	state := StateDead
	if n.State == memberlist.StateLeft {
		state = StateLeft
	}
	d.set(n, state)
}

func (s *memberState) member() Member {
	return Member{Meta: s.meta, GossipAddr: s.addr, State: s.state, Since: s.since}
}

func (d *delegate) member(id string) (Member, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.states[id]
	if !ok {
		return Member{}, false
	}
	return s.member(), true
}

func (d *delegate) members() []Member {
	d.mu.Lock()
	out := make([]Member, 0, len(d.states))
	for _, s := range d.states {
		out = append(out, s.member())
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// libLog receives memberlist's log lines. A packet or stream that no gossip
// key opened is a refusal (logged once per peer by refusals); everything
// else memberlist says goes to the debug level.
type libLog struct {
	log      *slog.Logger
	refusals *refusal.Log
}

func (l *libLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if from := strings.Index(line, "from="); from >= 0 && strings.Contains(strings.ToLower(line), "crypt") {
		peer := line[from+len("from="):]
		if i := strings.IndexByte(peer, ' '); i >= 0 {
			peer = peer[:i]
		}
		reason := strings.TrimSpace(line[:from])
		if i := strings.Index(reason, "memberlist: "); i >= 0 {
			reason = reason[i+len("memberlist: "):]
		}
		l.refusals.Refused("gossip", peer, reason)
		return len(p), nil
	}
	level, msg := logbridge.Parse(line)
	l.log.Log(context.Background(), level, msg, "lib", "memberlist")
	return len(p), nil
}
