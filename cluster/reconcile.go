package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/flashstock/flashstock/raftstore"
)

// ReconcilerConfig tunes how Raft membership follows gossip membership.
type ReconcilerConfig struct {
	Replicas        int           // voters per shard group (R)
	DeadGrace       time.Duration // how long a dead node keeps its seats
	Stabilization   time.Duration // how long a non-voter waits before promotion
	Interval        time.Duration // reconcile period
	BalanceInterval time.Duration // leader balancing period
	// Seeds are gossip addresses to join again while members the shard
	// groups know of are missing from gossip (a restart before its peers).
	Seeds []string
	// Sick, if set, names what makes this node a poor leader now (a full
	// or slow disk: raftstore.Store.Sick), "" when nothing does. A sick
	// node hands every leadership it holds to a healthy voter, and says so
	// in gossip so that no other node hands it one.
	Sick func() string
}

// DefaultReconcilerConfig returns production defaults.
func DefaultReconcilerConfig() ReconcilerConfig {
	return ReconcilerConfig{Replicas: 3, DeadGrace: 30 * time.Second, Stabilization: 3 * time.Second,
		Interval: time.Second, BalanceInterval: 5 * time.Second}
}

// Validate reports the first invalid setting.
func (c ReconcilerConfig) Validate() error {
	switch {
	case c.Replicas < 1:
		return errors.New("cluster: replicas must be positive")
	case c.DeadGrace <= 0 || c.Stabilization < 0:
		return errors.New("cluster: dead-node grace must be positive and stabilization not negative")
	case c.Interval <= 0 || c.BalanceInterval <= 0:
		return errors.New("cluster: reconcile and balance intervals must be positive")
	}
	return nil
}

// Reconciler makes each shard group this node leads follow membership, one
// configuration change per shard per tick, never below quorum:
//
//   - a live member not in the group, while the group has fewer than R
//     members, joins as a non-voter (hashicorp/raft's AddVoter adds a voter
//     at once; a voter that is far behind would weaken the quorum);
//   - a non-voter alive for Stabilization is promoted;
//   - a voter that memberlist has declared dead for DeadGrace is removed,
//     but only while the remaining voters are a majority of the remaining
//     group (they are: this node leads it), so a flapping network does not
//     churn the group;
//   - live voters are never removed, so a returning node keeps its seat.
//
// It also spreads leaders: a node leading more than its share of shards
// hands one to the least-loaded voter per BalanceInterval.
type Reconciler struct {
	cfg    ReconcilerConfig
	groups []shardGroup // by shard number
	m      members
	place  placement
	log    *slog.Logger

	nonvoterSince map[string]time.Time // shard/id -> first seen as non-voter
	lastBalance   time.Time
	balanceIndex  map[int]uint64 // shard -> applied index at the last balance
	lastJoin      time.Time
	evacFailed    map[int]time.Time // shard -> when its last evacuating transfer failed
	leadsChanged  chan struct{}     // LeadershipChanged: publish Leads now (buffer of 1)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// shardGroup is one shard's Raft group as the reconciler sees it from this
// node: the group's configuration, the changes its leader may make, and
// what this node knows of the leadership. *raftstore.Shard implements it
// through raftShard. The configuration changes block for at most Raft's
// apply timeout and fail on a node that does not lead the group; the other
// methods do not block. Safe for concurrent use.
type shardGroup interface {
	ID() int
	// Ready reports whether this node leads the group and has applied
	// everything committed before its term (its post-election barrier).
	Ready() bool
	IsLeader() bool
	// HasLeader reports whether this node knows the group's leader.
	HasLeader() bool
	// Term is the group's current Raft term as this node knows it.
	Term() uint64
	Servers() ([]raftstore.Server, error)
	AddNonvoter(id, addr string) error
	// Promote makes a server a voter at addr, adding it if it is not in
	// the group; for a voter it only updates the address.
	Promote(id, addr string) error
	RemoveServer(id string) error
	TransferLeadership(id, addr string) error
	// Unreachable reports whether this leader's heartbeats to the server
	// are failing.
	Unreachable(id string) bool
	// AppliedIndex is the index of the last entry this node applied.
	AppliedIndex() uint64
}

// raftShard is a *raftstore.Shard as a shardGroup.
type raftShard struct{ *raftstore.Shard }

// AppliedIndex implements shardGroup.
func (s raftShard) AppliedIndex() uint64 { return s.FSM().AppliedIndex() }

// members is this node's view of gossip membership; *Membership
// implements it. Reads never block; UpdateMeta waits at most timeout for
// the broadcast and Join for the seeds to answer. Safe for concurrent use.
type members interface {
	Self() Meta
	// Alive returns the live members, this node included, sorted by ID.
	Alive() []Member
	// Member returns a member in any state, false if gossip never saw it.
	Member(id string) (Member, bool)
	UpdateMeta(f func(*Meta), timeout time.Duration) error
	Join(seeds []string) (int, error)
}

// placement says who leads a shard; *LeaderPlacement implements it. It
// never blocks.
type placement interface {
	// LeaderOf returns the ID of the shard's leader, empty if unknown.
	LeaderOf(shard int) string
}

var (
	_ shardGroup = raftShard{}
	_ members    = (*Membership)(nil)
	_ placement  = (*LeaderPlacement)(nil)
)

// NewReconciler returns a reconciler; Start runs it.
// It refuses an invalid configuration.
func NewReconciler(cfg ReconcilerConfig, store *raftstore.Store, m *Membership, place *LeaderPlacement, log *slog.Logger) (*Reconciler, error) {
	groups := make([]shardGroup, store.Shards())
	for i := range groups {
		groups[i] = raftShard{store.Shard(i)}
	}
	return newReconciler(cfg, groups, m, place, log)
}

// newReconciler returns a reconciler over the given shard groups, one per
// shard in shard order.
func newReconciler(cfg ReconcilerConfig, groups []shardGroup, m members, place placement, log *slog.Logger) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Reconciler{cfg: cfg, groups: groups, m: m, place: place, log: log,
		nonvoterSince: make(map[string]time.Time), balanceIndex: make(map[int]uint64), evacFailed: make(map[int]time.Time),
		leadsChanged: make(chan struct{}, 1)}, nil
}

// Start runs the reconcile loop until Stop.
func (r *Reconciler) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.Tick(time.Now())
			case <-r.leadsChanged:
				r.publishLeads()
			}
		}
	}()
}

// LeadershipChanged tells the reconciler that this node gained or lost a
// shard's leadership: it gossips its Leads at once rather than at its next
// round, so that nodes outside the shard's group (and gateways), which
// learn the leader only from gossip, are not left without an owner for up
// to a round. It never blocks.
func (r *Reconciler) LeadershipChanged() {
	select {
	case r.leadsChanged <- struct{}{}:
	default:
	}
}

// Stop ends the loop and waits for it.
func (r *Reconciler) Stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// Tick runs one reconcile round. It is exported for tests.
func (r *Reconciler) Tick(now time.Time) {
	r.publishLeads()
	alive := map[string]Member{}
	for _, mb := range r.m.Alive() {
		if mb.RaftAddr != "" {
			alive[mb.ID] = mb
		}
	}
	for i, sh := range r.groups {
		if !sh.Ready() {
			continue
		}
		if err := r.reconcileShard(sh, alive, now); err != nil {
			r.log.Warn("reconcile shard", "shard", i, "err", err)
		}
	}
	if sick := r.sick(); sick != "" {
		r.evacuate(alive, sick, now)
	} else if now.Sub(r.lastBalance) >= r.cfg.BalanceInterval {
		r.lastBalance = now
		r.balance(alive)
	}
	r.rejoin(alive, now)
}

// rejoin contacts the seeds again, at most every 5 s, while a server of
// some shard group is not alive in gossip: a node restarted while its
// peers were down would otherwise stay alone in gossip, and placement
// could not reach the leaders it learns from Raft.
func (r *Reconciler) rejoin(alive map[string]Member, now time.Time) {
	if len(r.cfg.Seeds) == 0 || now.Sub(r.lastJoin) < 5*time.Second {
		return
	}
	for _, sh := range r.groups {
		servers, err := sh.Servers()
		if err != nil {
			continue
		}
		for _, s := range servers {
			if _, ok := alive[s.ID]; !ok {
				r.lastJoin = now
				if _, err := r.m.Join(r.cfg.Seeds); err != nil {
					r.log.Debug("rejoin gossip", "err", err)
				}
				return
			}
		}
	}
}

// publishLeads gossips which shards this node leads, for routing by nodes
// outside those groups.
func (r *Reconciler) publishLeads() {
	var led, follows []int
	var terms []uint64
	for i, sh := range r.groups {
		switch {
		case sh.IsLeader():
			led = append(led, i)
			terms = append(terms, sh.Term())
		case sh.HasLeader():
			// Not Replica(): Raft forgets a leader it has not heard from
			// for a heartbeat timeout, well before Replica's contact bound.
			follows = append(follows, i)
		}
	}
	leads, fol := EncodeLeads(led), EncodeLeads(follows)
	if fol == "" {
		fol = "00"
	}
	sick := r.sick()
	if err := r.m.UpdateMeta(func(m *Meta) { m.Leads, m.LeadTerms, m.Follows, m.Sick = leads, terms, fol, sick }, time.Second); err != nil {
		r.log.Debug("publish leads", "err", err)
	}
}

func (r *Reconciler) reconcileShard(sh shardGroup, alive map[string]Member, now time.Time) error {
	servers, err := sh.Servers()
	if err != nil {
		return err
	}
	in := map[string]raftstore.Server{}
	voters := 0
	for _, s := range servers {
		in[s.ID] = s
		if s.Voter {
			voters++
		}
	}
	// A member that came back at another Raft address (a new container IP)
	// keeps its seat: re-adding the same ID updates the address.
	for _, s := range servers {
		if mb, ok := alive[s.ID]; ok && mb.RaftAddr != s.Addr {
			r.log.Info("update server address", "shard", sh.ID(), "node", s.ID, "from", s.Addr, "to", mb.RaftAddr)
			if s.Voter {
				return sh.Promote(s.ID, mb.RaftAddr)
			}
			return sh.AddNonvoter(s.ID, mb.RaftAddr)
		}
	}
	// Promote stable non-voters.
	for _, s := range servers {
		key := fmt.Sprintf("%d/%s", sh.ID(), s.ID)
		if s.Voter {
			delete(r.nonvoterSince, key)
			continue
		}
		if _, ok := alive[s.ID]; !ok {
			continue
		}
		since, ok := r.nonvoterSince[key]
		if !ok {
			r.nonvoterSince[key] = now
			continue
		}
		if now.Sub(since) >= r.cfg.Stabilization {
			r.log.Info("promote to voter", "shard", sh.ID(), "node", s.ID)
			delete(r.nonvoterSince, key)
			return sh.Promote(s.ID, s.Addr)
		}
	}
	// Remove one long-dead server.
	for _, s := range servers {
		if _, ok := alive[s.ID]; ok || s.ID == r.m.Self().ID {
			continue
		}
		mb, known := r.m.Member(s.ID)
		if known && (mb.State == StateAlive || now.Sub(mb.Since) < r.cfg.DeadGrace) {
			continue
		}
		if !known {
			continue // never seen by gossip yet: give it time
		}
		r.log.Warn("remove dead server", "shard", sh.ID(), "node", s.ID, "dead_for", now.Sub(mb.Since).Round(time.Second))
		return sh.RemoveServer(s.ID)
	}
	return r.spreadSeats(sh, servers, alive, voters)
}

// spreadSeats fills a shard's free seats, one live member per tick, and
// moves a seat out of a zone that holds two while a zone without one has
// a live member: that member joins as an extra non-voter (promoted like
// any), and then the surplus voter of the doubled zone leaves. Seats go
// by PickSeats: rendezvous order, zones spread.
func (r *Reconciler) spreadSeats(sh shardGroup, servers []raftstore.Server, alive map[string]Member, voters int) error {
	zoneOf := func(id string) string {
		if mb, ok := alive[id]; ok {
			return mb.Region
		}
		mb, _ := r.m.Member(id)
		return mb.Region
	}
	var have, candidates []string
	for _, s := range servers {
		have = append(have, s.ID)
	}
	for id := range alive {
		if !slices.Contains(have, id) {
			candidates = append(candidates, id)
		}
	}
	seats := voters + countNonvoters(servers)
	if seats < r.cfg.Replicas {
		if pick := PickSeats(sh.ID(), candidates, zoneOf, have, 1); len(pick) == 1 {
			r.log.Info("add non-voter", "shard", sh.ID(), "node", pick[0])
			return sh.AddNonvoter(pick[0], alive[pick[0]].RaftAddr)
		}
		return nil
	}
	doubled := doubledZoneVoter(sh.ID(), servers, zoneOf, alive, r.m.Self().ID)
	switch {
	case doubled == "":
		return nil
	case voters > r.cfg.Replicas:
		// The extra seat is a voter now: the doubled zone gives one up.
		r.log.Info("remove voter of a doubled zone", "shard", sh.ID(), "node", doubled, "zone", zoneOf(doubled))
		return sh.RemoveServer(doubled)
	case seats == r.cfg.Replicas:
		pick := PickSeats(sh.ID(), candidates, zoneOf, have, 1)
		if len(pick) == 1 && zoneOf(pick[0]) != "" && !zoneTaken(servers, zoneOf, zoneOf(pick[0])) {
			r.log.Info("add non-voter to spread zones", "shard", sh.ID(), "node", pick[0], "zone", zoneOf(pick[0]))
			return sh.AddNonvoter(pick[0], alive[pick[0]].RaftAddr)
		}
	}
	return nil
}

// doubledZoneVoter returns a live voter, not self (the leader), whose zone
// another voter also holds, the last such in rendezvous order; "" when
// every voter's zone is its own.
func doubledZoneVoter(shard int, servers []raftstore.Server, zoneOf func(string) string, alive map[string]Member, self string) string {
	count := map[string]int{}
	var ids []string
	for _, s := range servers {
		if s.Voter {
			ids = append(ids, s.ID)
			if z := zoneOf(s.ID); z != "" {
				count[z]++
			}
		}
	}
	order := Rendezvous(shard, ids)
	for i := len(order) - 1; i >= 0; i-- {
		id := order[i]
		if _, ok := alive[id]; ok && id != self && count[zoneOf(id)] > 1 {
			return id
		}
	}
	return ""
}

func zoneTaken(servers []raftstore.Server, zoneOf func(string) string, zone string) bool {
	for _, s := range servers {
		if zoneOf(s.ID) == zone {
			return true
		}
	}
	return false
}

func countNonvoters(servers []raftstore.Server) int {
	n := 0
	for _, s := range servers {
		if !s.Voter {
			n++
		}
	}
	return n
}

// balance hands one leadership from this node to the least-loaded live
// voter that its Raft reaches, when this node leads more than
// ceil(shards/alive). It moves the shard that applied the fewest entries
// since the last balance: a move stalls a shard's writes for about an
// election, and a flash sale's hot shard should be the last to pay that,
// not the first.
func (r *Reconciler) balance(alive map[string]Member) {
	busy := make(map[int]uint64, len(r.groups))
	for i, sh := range r.groups {
		idx := sh.AppliedIndex()
		busy[i] = idx - min(idx, r.balanceIndex[i])
		r.balanceIndex[i] = idx
	}
	if len(alive) < 2 {
		return
	}
	load := map[string]int{}
	for id := range alive {
		load[id] = 0
	}
	self := r.m.Self().ID
	var mine []int
	for i, sh := range r.groups {
		id := r.place.LeaderOf(i)
		if id == "" {
			continue
		}
		load[id]++
		if id == self && sh.Ready() {
			mine = append(mine, i)
		}
	}
	share := (len(r.groups) + len(alive) - 1) / len(alive)
	if len(mine) <= share {
		return
	}
	sort.SliceStable(mine, func(i, j int) bool { return busy[mine[i]] < busy[mine[j]] })
	for _, shard := range mine {
		sh := r.groups[shard]
		servers, err := sh.Servers()
		if err != nil {
			continue
		}
		var cands []raftstore.Server
		for _, s := range servers {
			// A voter that gossip sees but Raft does not connect to this
			// leader would only fail the transfer, after stalling writes.
			// Two signs, the faster first: the voter says it hears no
			// leader for the shard (within a heartbeat timeout and a
			// reconcile round), or this leader's heartbeats to it fail
			// (within the transport timeout).
			if s.ID != self && load[s.ID] < share && r.canLead(sh, s, alive) {
				cands = append(cands, s)
			}
		}
		if len(cands) == 0 {
			continue
		}
		to := leastLoaded(cands, load)
		r.log.Info("transfer leadership", "shard", shard, "to", to.ID, "led", len(mine), "share", share)
		if err := sh.TransferLeadership(to.ID, to.Addr); err != nil {
			r.log.Warn("transfer leadership", "shard", shard, "to", to.ID, "err", err)
		}
		return
	}
}

// sick returns what makes this node a poor leader now, "" for nothing.
func (r *Reconciler) sick() string {
	if r.cfg.Sick == nil {
		return ""
	}
	return r.cfg.Sick()
}

// canLead reports whether server s of shard sh may be handed its
// leadership: a live voter that hears the shard's leader, that this
// leader's heartbeats reach, and that is not sick itself.
func (r *Reconciler) canLead(sh shardGroup, s raftstore.Server, alive map[string]Member) bool {
	mb, ok := alive[s.ID]
	return ok && s.Voter && mb.HearsLeader(sh.ID()) && !sh.Unreachable(s.ID) && mb.Sick == ""
}

// leastLoaded returns the candidate leading the fewest shards, the lowest
// ID on a tie.
func leastLoaded(cands []raftstore.Server, load map[string]int) raftstore.Server {
	sort.Slice(cands, func(i, j int) bool {
		if load[cands[i].ID] != load[cands[j].ID] {
			return load[cands[i].ID] < load[cands[j].ID]
		}
		return cands[i].ID < cands[j].ID
	})
	return cands[0]
}

// evacuate hands every shard this sick node leads to a healthy voter,
// the least loaded first: the shard keeps its data and its quorum (this
// node stays a voter), and its purchases stop waiting for this node's
// disk. Each transfer stalls its shard for about an election, once;
// without one the shard would be slow, or refuse purchases, for as long as
// the disk is. A shard with no healthy voter to take it stays here; one
// whose transfer failed is tried again after BalanceInterval, not at every
// round (each attempt stalls the shard).
func (r *Reconciler) evacuate(alive map[string]Member, why string, now time.Time) {
	self := r.m.Self().ID
	load := map[string]int{}
	for i := range r.groups {
		if id := r.place.LeaderOf(i); id != "" {
			load[id]++
		}
	}
	for i, sh := range r.groups {
		if !sh.Ready() || now.Sub(r.evacFailed[i]) < r.cfg.BalanceInterval {
			continue
		}
		servers, err := sh.Servers()
		if err != nil {
			continue
		}
		var cands []raftstore.Server
		for _, s := range servers {
			if s.ID != self && r.canLead(sh, s, alive) {
				cands = append(cands, s)
			}
		}
		if len(cands) == 0 {
			r.log.Debug("sick leader: no healthy voter to hand the shard to", "shard", i, "why", why)
			continue
		}
		to := leastLoaded(cands, load)
		r.log.Warn("sick leader: transfer leadership", "shard", i, "to", to.ID, "why", why)
		if err := sh.TransferLeadership(to.ID, to.Addr); err != nil {
			r.log.Warn("sick leader: transfer leadership", "shard", i, "to", to.ID, "err", err)
			r.evacFailed[i] = now
			continue
		}
		load[to.ID]++
	}
}

// bootstrapShards bootstraps, with the voters PickSeats picks from ids
// (rendezvous order, zones spread), every shard self is a voter of. It reports false (and does nothing)
// while a voter's Raft address is unknown.
func bootstrapShards(store *raftstore.Store, ids []string, addr, zone map[string]string, replicas int, self string) (bool, error) {
	for _, id := range ids {
		if addr[id] == "" {
			return false, nil
		}
	}
	zoneOf := func(id string) string { return zone[id] }
	for i := 0; i < store.Shards(); i++ {
		voters := PickSeats(i, ids, zoneOf, nil, replicas)
		if !slices.Contains(voters, self) {
			continue
		}
		servers := make([]raftstore.Server, len(voters))
		for j, id := range voters {
			servers[j] = raftstore.Server{ID: id, Addr: addr[id], Voter: true}
		}
		if err := store.Shard(i).Bootstrap(servers); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Bootstrap creates the shard groups once bootstrapExpect members with
// Raft addresses are alive, choosing each group's voters by rendezvous
// hashing over them; every node computes the same choice. It returns at
// once when this node's data dir belongs to a cluster (a restart: a node
// never bootstraps twice). When another node already bootstrapped, this
// node bootstraps its own shards from the same initial set if it is of
// it (gossiped as BootSet: with more nodes than replicas a shard's voters
// may all be late), and otherwise waits to be added by the groups'
// leaders.
func Bootstrap(ctx context.Context, store *raftstore.Store, m *Membership, seeds []string, expect, replicas int, log *slog.Logger) error {
	bootstrapped := func() bool {
		for i := 0; i < store.Shards(); i++ {
			if !store.Shard(i).HasConfiguration() {
				return false
			}
		}
		return true
	}
	markDone := func(set []string) error {
		if err := store.MarkBootstrapped(); err != nil {
			return err
		}
		err := m.UpdateMeta(func(meta *Meta) { meta.Bootstrapped, meta.BootSet = true, set }, 2*time.Second)
		if err != nil && set != nil {
			// The set does not fit in the meta's bound: say bootstrapped
			// without it (the others then wait to be added).
			err = m.UpdateMeta(func(meta *Meta) { meta.Bootstrapped, meta.BootSet = true, nil }, 2*time.Second)
		}
		return err
	}
	if store.Bootstrapped() || bootstrapped() {
		return markDone(nil)
	}
	self := m.Self().ID
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	lastLog := time.Now()
	lastJoin := time.Now()
	for {
		var ready []Member
		addr, zone := map[string]string{}, map[string]string{}
		var exists *Member
		for _, mb := range m.Alive() {
			if mb.RaftAddr == "" {
				continue
			}
			addr[mb.ID], zone[mb.ID] = mb.RaftAddr, mb.Region
			if mb.Bootstrapped && mb.ID != self && exists == nil {
				exists = &mb
			}
			ready = append(ready, mb)
		}
		switch {
		case exists != nil && !slices.Contains(exists.BootSet, self):
			// A cluster exists and this node is not of its initial set:
			// the shard leaders add it.
			log.Info("cluster exists; waiting to be added by the shard leaders", "seen", exists.ID)
			return markDone(nil)
		case exists != nil:
			// This node is of the initial set another node bootstrapped
			// from (with more nodes than replicas, some shards' voters
			// may all be late): bootstrap its own shards from that set.
			if done, err := bootstrapShards(store, exists.BootSet, addr, zone, replicas, self); err != nil || done {
				if err == nil {
					log.Info("bootstrapped shard groups", "nodes", exists.BootSet, "replicas", min(replicas, len(exists.BootSet)), "after", exists.ID)
					err = markDone(exists.BootSet)
				}
				return err
			}
		case len(ready) >= expect:
			ready = ready[:expect] // sorted by ID: the same on every node
			ids := make([]string, len(ready))
			for i, mb := range ready {
				ids[i] = mb.ID
			}
			if _, err := bootstrapShards(store, ids, addr, zone, replicas, self); err != nil {
				return err
			}
			log.Info("bootstrapped shard groups", "nodes", ids, "replicas", min(replicas, len(ids)))
			return markDone(ids)
		}
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			log.Info("waiting for nodes before bootstrap", "alive", len(ready), "expect", expect)
		}
		if len(seeds) > 0 && len(ready) < expect && time.Since(lastJoin) > time.Second {
			lastJoin = time.Now()
			_, _ = m.Join(seeds) // seeds that were not up at start may be now
		}
		select {
		case <-ctx.Done():
			return errors.Join(errors.New("cluster: bootstrap: waiting for members"), ctx.Err())
		case <-t.C:
		}
	}
}
