package cluster

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// The reconciler's decisions, one Tick at a time, against in-memory fakes
// of the shard groups' configurations, of gossip membership and of leader
// placement. Each change a Tick makes is recorded as a line such as
// "0 add-nonvoter n4 raft-n4" (shard, operation, arguments); a test lists
// every change it expects, in order, so a Tick that does more than it
// should fails as surely as one that does less. Real Raft groups and real
// gossip are exercised by the in-process cluster tests in node/.

// t0 is the start of every test's timeline.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeGroup is one shard's Raft configuration as its leader (or a
// follower) on this node sees it. Configuration changes behave as
// hashicorp/raft's: AddNonvoter on a voter only updates its address,
// Promote adds or promotes, and only the leader may change anything.
type fakeGroup struct {
	w           *world
	id          int
	servers     []raftstore.Server
	leader      bool // this node leads the group
	notReady    bool // leads, but before its post-election barrier
	hasLeader   bool // as a follower: hears a leader
	applied     uint64
	term        uint64
	unreachable map[string]bool
	serversErr  error
}

func (g *fakeGroup) ID() int         { return g.id }
func (g *fakeGroup) Ready() bool     { return g.leader && !g.notReady }
func (g *fakeGroup) IsLeader() bool  { return g.leader }
func (g *fakeGroup) HasLeader() bool { return g.leader || g.hasLeader }
func (g *fakeGroup) Term() uint64    { return g.term }
func (g *fakeGroup) Servers() ([]raftstore.Server, error) {
	if g.serversErr != nil {
		return nil, g.serversErr
	}
	return slices.Clone(g.servers), nil
}
func (g *fakeGroup) Unreachable(id string) bool { return g.unreachable[id] }
func (g *fakeGroup) AppliedIndex() uint64       { return g.applied }

func (g *fakeGroup) change(op string, args ...string) error {
	g.w.ops = append(g.w.ops, fmt.Sprintf("%d %s %s", g.id, op, strings.Join(args, " ")))
	if !g.leader {
		return sale.ErrNotLeader
	}
	return nil
}

func (g *fakeGroup) index(id string) int {
	return slices.IndexFunc(g.servers, func(s raftstore.Server) bool { return s.ID == id })
}

func (g *fakeGroup) AddNonvoter(id, addr string) error {
	if err := g.change("add-nonvoter", id, addr); err != nil {
		return err
	}
	if i := g.index(id); i >= 0 {
		g.servers[i].Addr = addr
		return nil
	}
	g.servers = append(g.servers, raftstore.Server{ID: id, Addr: addr})
	return nil
}

func (g *fakeGroup) Promote(id, addr string) error {
	if err := g.change("promote", id, addr); err != nil {
		return err
	}
	if i := g.index(id); i >= 0 {
		g.servers[i] = raftstore.Server{ID: id, Addr: addr, Voter: true}
		return nil
	}
	g.servers = append(g.servers, raftstore.Server{ID: id, Addr: addr, Voter: true})
	return nil
}

func (g *fakeGroup) RemoveServer(id string) error {
	if err := g.change("remove", id); err != nil {
		return err
	}
	if i := g.index(id); i >= 0 {
		g.servers = slices.Delete(g.servers, i, i+1)
	}
	return nil
}

func (g *fakeGroup) TransferLeadership(id, addr string) error {
	if err := g.change("transfer", id, addr); err != nil {
		return err
	}
	g.leader, g.hasLeader = false, true
	g.w.leaders[g.id] = id
	return nil
}

// world is the fakes of one test: this node ("n1"), the members gossip
// knows, the shard groups on this node and who leads each shard.
type world struct {
	self    Meta
	members map[string]Member
	groups  []*fakeGroup
	leaders map[int]string // shard -> leader ID, for placement
	ops     []string       // configuration changes made, in order
	joins   int            // gossip rejoins
}

// newWorld returns a world of n1 alone, alive, with the given number of
// shards, none of them led or configured yet.
func newWorld(shards int) *world {
	w := &world{self: Meta{ID: "n1", RaftAddr: "raft-n1"}, members: map[string]Member{}, leaders: map[int]string{}}
	w.alive("n1")
	for i := range shards {
		w.groups = append(w.groups, &fakeGroup{w: w, id: i, unreachable: map[string]bool{}})
	}
	return w
}

// alive makes members alive since t0, at their usual Raft address.
func (w *world) alive(ids ...string) {
	for _, id := range ids {
		w.members[id] = Member{Meta: Meta{ID: id, RaftAddr: "raft-" + id}, State: StateAlive, Since: t0}
	}
}

// dead makes a member dead since the given time.
func (w *world) dead(id string, since time.Time) {
	mb := w.members[id]
	mb.ID, mb.RaftAddr, mb.State, mb.Since = id, "raft-"+id, StateDead, since
	w.members[id] = mb
}

// follows sets what a member's meta says about the shards it hears a
// leader of.
func (w *world) follows(id, set string) {
	mb := w.members[id]
	mb.Follows = set
	w.members[id] = mb
}

// lead makes this node the leader of the shards, with the given voters
// (and n1) in their configuration.
func (w *world) lead(shards []int, voters ...string) {
	for _, i := range shards {
		g := w.groups[i]
		g.leader = true
		g.servers = []raftstore.Server{{ID: "n1", Addr: "raft-n1", Voter: true}}
		for _, id := range voters {
			g.servers = append(g.servers, raftstore.Server{ID: id, Addr: "raft-" + id, Voter: true})
		}
		w.leaders[i] = "n1"
	}
}

func (w *world) Self() Meta { return w.self }

func (w *world) Alive() []Member {
	var out []Member
	for _, mb := range w.members {
		if mb.State == StateAlive {
			out = append(out, mb)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (w *world) Member(id string) (Member, bool) {
	mb, ok := w.members[id]
	return mb, ok
}

func (w *world) UpdateMeta(f func(*Meta), _ time.Duration) error {
	f(&w.self)
	return nil
}

func (w *world) Join([]string) (int, error) {
	w.joins++
	return 1, nil
}

func (w *world) LeaderOf(shard int) string { return w.leaders[shard] }

// reconciler returns a reconciler over the world's fakes.
func (w *world) reconciler(t *testing.T, cfg ReconcilerConfig) *Reconciler {
	t.Helper()
	groups := make([]shardGroup, len(w.groups))
	for i, g := range w.groups {
		groups[i] = g
	}
	r, err := newReconciler(cfg, groups, w, w, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tick runs one Tick at t0+at and returns the changes it made.
func (w *world) tick(r *Reconciler, at time.Duration) []string {
	w.ops = nil
	r.Tick(t0.Add(at))
	return w.ops
}

// testConfig is the production configuration with leader balancing
// pushed out of the way (after the first Tick), for tests of membership
// changes alone.
func testConfig() ReconcilerConfig {
	c := DefaultReconcilerConfig()
	c.BalanceInterval = time.Hour
	return c
}

// step is one Tick of a test: what changes in the world before it, when
// it runs, and every configuration change it must make.
type step struct {
	before func(w *world)
	at     time.Duration
	want   []string
}

// runSteps runs the steps in order. After each it also checks that no
// group whose live voters were a majority lost that majority: whatever
// the reconciler removes, the group keeps its quorum.
func runSteps(t *testing.T, w *world, r *Reconciler, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.before != nil {
			s.before(w)
		}
		quorate := make([]bool, len(w.groups))
		for j, g := range w.groups {
			quorate[j] = w.quorate(g)
		}
		if got := w.tick(r, s.at); !slices.Equal(got, s.want) {
			t.Fatalf("tick %d at +%v: changes %q; want %q", i, s.at, got, s.want)
		}
		for j, g := range w.groups {
			if quorate[j] && !w.quorate(g) {
				t.Fatalf("tick %d at +%v: shard %d lost its quorum: %+v", i, s.at, j, g.servers)
			}
		}
	}
}

// quorate reports whether the group's live voters (this node, and members
// gossip sees alive) are a majority of its voters.
func (w *world) quorate(g *fakeGroup) bool {
	voters, live := 0, 0
	for _, s := range g.servers {
		if !s.Voter {
			continue
		}
		voters++
		if mb, ok := w.members[s.ID]; s.ID == w.self.ID || ok && mb.State == StateAlive {
			live++
		}
	}
	return 2*live > voters
}

// TestReconcileMembership pins the configuration changes a shard leader
// makes as gossip membership changes: at most one per shard per Tick.
func TestReconcileMembership(t *testing.T) {
	// The first live member outside {n1, n2} in shard 0's rendezvous order.
	next := firstNotIn(0, []string{"n1", "n2", "n3", "n4"}, "n1", "n2")
	tests := []struct {
		name  string
		setup func(w *world)
		cfg   func(c *ReconcilerConfig)
		steps []step
	}{{
		name: "a live member not in the group joins as a non-voter while the group has fewer than R",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0}, "n2")
		},
		steps: []step{
			{want: []string{"0 add-nonvoter n3 raft-n3"}},
			{at: time.Second}, // n3 is a non-voter now: first seen, not yet stable
		},
	}, {
		name: "no member joins a group of R voters",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4")
			w.lead([]int{0}, "n2", "n3")
		},
		steps: []step{{}, {at: time.Second}},
	}, {
		name: "non-voters count toward R",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4")
			w.lead([]int{0}, "n2")
			w.groups[0].servers = append(w.groups[0].servers, raftstore.Server{ID: "n3", Addr: "raft-n3"})
		},
		steps: []step{{}},
	}, {
		name: "a member without a Raft address is not added",
		setup: func(w *world) {
			w.alive("n2")
			w.members["n3"] = Member{Meta: Meta{ID: "n3"}, State: StateAlive, Since: t0}
			w.lead([]int{0}, "n2")
		},
		steps: []step{{}},
	}, {
		name: "members join in rendezvous order, one per tick",
		cfg:  func(c *ReconcilerConfig) { c.Replicas = 5 },
		setup: func(w *world) {
			w.alive("n2", "n3", "n4", "n5", "n6")
			w.lead([]int{2})
		},
		steps: func() []step {
			var steps []step
			var joined []string
			for _, id := range Rendezvous(2, []string{"n1", "n2", "n3", "n4", "n5", "n6"}) {
				if id != "n1" && len(joined) < 4 {
					joined = append(joined, id)
					steps = append(steps, step{at: time.Duration(len(joined)) * 100 * time.Millisecond,
						want: []string{"2 add-nonvoter " + id + " raft-" + id}})
				}
			}
			return steps
		}(),
	}, {
		name: "a non-voter is promoted after Stabilization and not before",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0}, "n2")
			w.groups[0].servers = append(w.groups[0].servers, raftstore.Server{ID: "n3", Addr: "raft-n3"})
		},
		steps: []step{
			{at: 0},                       // first seen as a non-voter
			{at: 2999 * time.Millisecond}, // not yet
			{at: 3 * time.Second, want: []string{"0 promote n3 raft-n3"}},
			{at: 4 * time.Second}, // a voter now: nothing more to do
		},
	}, {
		name: "a non-voter's stabilization starts when it is alive",
		setup: func(w *world) {
			w.alive("n2")
			w.dead("n3", t0)
			w.lead([]int{0}, "n2")
			w.groups[0].servers = append(w.groups[0].servers, raftstore.Server{ID: "n3", Addr: "raft-n3"})
		},
		steps: []step{
			{at: 0},
			{at: 5 * time.Second}, // dead: neither promoted nor (within the grace) removed
			{before: func(w *world) { w.alive("n3") }, at: 6 * time.Second},
			{at: 8 * time.Second},
			{at: 9 * time.Second, want: []string{"0 promote n3 raft-n3"}},
		},
	}, {
		name: "a dead voter is removed only after DeadGrace",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.dead("n3", t0)
			w.lead([]int{0}, "n2", "n3")
		},
		steps: []step{
			{at: 0},
			{at: 29 * time.Second},
			{at: 30 * time.Second, want: []string{"0 remove n3"}},
			{at: 31 * time.Second}, // two voters, no live member to add
		},
	}, {
		name: "a dead voter that comes back within DeadGrace keeps its seat",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.dead("n3", t0)
			w.lead([]int{0}, "n2", "n3")
		},
		steps: []step{
			{at: 20 * time.Second},
			{before: func(w *world) { w.alive("n3") }, at: 40 * time.Second},
			{at: 90 * time.Second},
		},
	}, {
		name: "a server gossip never saw is given time, not removed",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0}, "n2", "n9")
		},
		steps: []step{{at: time.Hour}},
	}, {
		name: "the leader never removes itself",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.dead("n1", t0) // gossip says so, yet this node leads the group
			w.lead([]int{0}, "n2", "n3")
		},
		steps: []step{{at: time.Hour}},
	}, {
		name: "dead voters are removed one per tick, and the live voters stay a majority",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.dead("n4", t0)
			w.dead("n5", t0)
			w.lead([]int{0}, "n2", "n3", "n4", "n5")
		},
		steps: []step{
			{at: 30 * time.Second, want: []string{"0 remove n4"}},
			{at: 31 * time.Second, want: []string{"0 remove n5"}},
			{at: 32 * time.Second},
		},
	}, {
		name: "live voters are never removed, even over R",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4", "n5")
			w.lead([]int{0}, "n2", "n3", "n4", "n5")
		},
		steps: []step{{}, {at: time.Hour}},
	}, {
		name: "one change per shard per tick: promotion before removal before addition",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4")
			w.dead("n5", t0)
			w.lead([]int{0}, "n5")
			w.groups[0].servers = append(w.groups[0].servers, raftstore.Server{ID: "n2", Addr: "raft-n2"})
		},
		steps: []step{
			// n2 is first seen as a non-voter; n5 is dead, within the grace.
			{at: 0},
			// n5 is past its grace too, but promotion comes first.
			{at: 30 * time.Second, want: []string{"0 promote n2 raft-n2"}},
			{at: 31 * time.Second, want: []string{"0 remove n5"}},
			{at: 32 * time.Second, want: []string{"0 add-nonvoter " + next + " raft-" + next}},
		},
	}, {
		name: "a member back at a new Raft address keeps its seat at the new address",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0}, "n2")
			w.groups[0].servers = append(w.groups[0].servers, raftstore.Server{ID: "n3", Addr: "raft-n3"})
			mb := w.members["n2"]
			mb.RaftAddr = "raft-n2-new"
			w.members["n2"] = mb
		},
		steps: []step{
			{want: []string{"0 promote n2 raft-n2-new"}},
			{before: func(w *world) {
				mb := w.members["n3"]
				mb.RaftAddr = "raft-n3-new"
				w.members["n3"] = mb
			}, at: time.Second, want: []string{"0 add-nonvoter n3 raft-n3-new"}},
			{at: 2 * time.Second}, // n3 first seen as a non-voter at its new address
		},
	}, {
		name: "only shards this node leads, past their barrier, are changed",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1}, "n2")
			w.groups[1].notReady = true
			w.groups[2].hasLeader = true
			w.groups[2].servers = []raftstore.Server{{ID: "n2", Addr: "raft-n2", Voter: true}}
		},
		steps: []step{{want: []string{"0 add-nonvoter n3 raft-n3"}}},
	}, {
		name: "a shard whose configuration cannot be read is skipped",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1}, "n2")
			w.groups[0].serversErr = sale.ErrUnavailable
		},
		steps: []step{{want: []string{"1 add-nonvoter n3 raft-n3"}}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(3)
			tc.setup(w)
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			r := w.reconciler(t, cfg)
			r.lastBalance = t0 // the first Tick would balance: no leader moves here
			runSteps(t, w, r, tc.steps)
		})
	}
}

// firstNotIn returns the first of ids in shard's rendezvous order that is
// not one of in.
func firstNotIn(shard int, ids []string, in ...string) string {
	for _, id := range Rendezvous(shard, ids) {
		if !slices.Contains(in, id) {
			return id
		}
	}
	return ""
}

// TestReconcileBalance pins leader balancing: a node that leads more than
// ceil(shards/alive) hands its least busy shard to the least-loaded voter
// that hears the shard's leader and that this leader's heartbeats reach.
func TestReconcileBalance(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *world)
		steps []step
	}{{
		name: "the least busy shard goes to the least-loaded voter",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2, 3}, "n2", "n3")
			w.leaders[4] = "n2"
			for i, applied := range []uint64{500, 10, 300, 20} {
				w.groups[i].applied = applied
			}
		},
		steps: []step{{want: []string{"1 transfer n3 raft-n3"}}},
	}, {
		name: "one transfer per BalanceInterval until this node leads its share",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2")
			for i := range w.groups {
				w.groups[i].applied = uint64(100 * (i + 1))
			}
		},
		steps: []step{
			{want: []string{"0 transfer n2 raft-n2"}},
			{at: 4 * time.Second},
			{at: 5 * time.Second, want: []string{"1 transfer n2 raft-n2"}},
			{at: 10 * time.Second, want: []string{"2 transfer n2 raft-n2"}},
			{at: 15 * time.Second}, // three each
		},
	}, {
		name: "busy counts the entries applied since the previous round",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2")
			for i, applied := range []uint64{100, 900, 800, 10, 1000, 1000} {
				w.groups[i].applied = applied
			}
		},
		steps: []step{
			{want: []string{"3 transfer n2 raft-n2"}},
			{before: func(w *world) {
				// Of the shards this node still leads, shard 0 has
				// applied the fewest in all, shard 1 the fewest since the
				// last round (+100, +50, +1700, +2000, +2000).
				for i, applied := range []uint64{200, 950, 2500, 0, 3000, 3000} {
					w.groups[i].applied = applied
				}
			}, at: 5 * time.Second, want: []string{"1 transfer n2 raft-n2"}},
		},
	}, {
		name: "never to a voter this leader's heartbeats do not reach",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2", "n3")
			for i := range w.groups {
				w.groups[i].applied = uint64(100 * (i + 1))
				w.groups[i].unreachable["n2"] = true
			}
			w.groups[1].unreachable["n3"] = true
			w.groups[0].unreachable["n3"] = true
		},
		steps: []step{{want: []string{"2 transfer n3 raft-n3"}}},
	}, {
		name: "never to a voter whose meta says it hears no leader of the shard",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2", "n3")
			for i := range w.groups {
				w.groups[i].applied = uint64(100 * (i + 1))
			}
			w.follows("n2", "00")                        // hears no leader
			w.follows("n3", EncodeLeads([]int{1, 2, 5})) // not shard 0
		},
		steps: []step{{want: []string{"1 transfer n3 raft-n3"}}},
	}, {
		name: "a voter that publishes nothing (an earlier version) is a target",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2")
		},
		steps: []step{{want: []string{"0 transfer n2 raft-n2"}}},
	}, {
		name: "no target at all: no transfer",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1, 2, 3, 4}, "n2", "n3")
			w.follows("n2", "00")
			for i := range w.groups {
				w.groups[i].unreachable["n3"] = true
			}
		},
		steps: []step{{}},
	}, {
		name: "never to a non-voter, a dead voter or a voter at its share",
		setup: func(w *world) {
			w.alive("n2", "n3", "n4")
			w.dead("n4", t0)
			w.lead([]int{0, 1, 2, 3}, "n2", "n4")
			for i := range w.groups[:4] {
				w.groups[i].servers = append(w.groups[i].servers, raftstore.Server{ID: "n3", Addr: "raft-n3"})
			}
			w.leaders[4], w.leaders[5] = "n2", "n2" // share: ceil(6/3) = 2
		},
		steps: []step{{}},
	}, {
		name: "leading the share or less: no transfer",
		setup: func(w *world) {
			w.alive("n2", "n3")
			w.lead([]int{0, 1}, "n2", "n3")
			w.leaders[2], w.leaders[3] = "n2", "n2"
		},
		steps: []step{{}},
	}, {
		name: "alone: no transfer",
		setup: func(w *world) {
			w.dead("n2", t0)
			w.lead([]int{0, 1, 2, 3, 4, 5}, "n2")
		},
		steps: []step{{}},
	}, {
		name: "a shard before its barrier counts in the load but is not handed away",
		setup: func(w *world) {
			w.alive("n2")
			w.lead([]int{0, 1, 2, 3}, "n2")
			w.groups[0].notReady = true
			w.groups[1].notReady = true
			for i := range w.groups {
				w.groups[i].applied = uint64(100 * (i + 1))
			}
		},
		// Leads 4 of 6 (share 3), but only shards 2 and 3 are ready: two
		// are not more than the share.
		steps: []step{{}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(6)
			tc.setup(w)
			cfg := DefaultReconcilerConfig()
			cfg.Replicas = 5 // no membership changes in the way
			runSteps(t, w, w.reconciler(t, cfg), tc.steps)
		})
	}
}

// TestReconcilePublishesLeads: each Tick gossips the shards this node
// leads and those whose leader it hears ("00" for none: a node that says
// nothing is an earlier version).
func TestReconcilePublishesLeads(t *testing.T) {
	w := newWorld(10)
	w.lead([]int{1, 9})
	w.groups[1].notReady = true // leads, before its barrier: still leads
	w.groups[2].hasLeader = true
	w.groups[8].hasLeader = true
	r := w.reconciler(t, testConfig())
	w.tick(r, 0)
	if got, want := ShardSet(w.self.Leads), []int{1, 9}; !slices.Equal(got, want) {
		t.Errorf("Leads = %v; want %v", got, want)
	}
	if got, want := ShardSet(w.self.Follows), []int{2, 8}; !slices.Equal(got, want) {
		t.Errorf("Follows = %v; want %v", got, want)
	}
	for _, g := range w.groups {
		g.leader, g.hasLeader = false, false
	}
	w.tick(r, time.Second)
	if w.self.Leads != "" || w.self.Follows != "00" {
		t.Errorf("leading and hearing nothing: Leads %q, Follows %q; want \"\" and \"00\"", w.self.Leads, w.self.Follows)
	}
}

// TestReconcileRejoinsSeeds: while a server of some group is missing from
// gossip, the seeds are joined again, at most every 5 s; never without
// seeds, and not once every server is back.
func TestReconcileRejoinsSeeds(t *testing.T) {
	w := newWorld(2)
	w.alive("n2")
	w.groups[1].hasLeader = true
	w.groups[1].servers = []raftstore.Server{{ID: "n1", Voter: true}, {ID: "n2", Voter: true}, {ID: "n3", Voter: true}}
	cfg := testConfig()
	cfg.Seeds = []string{"seed:7946"}
	r := w.reconciler(t, cfg)
	for _, s := range []struct {
		at    time.Duration
		joins int
	}{{0, 1}, {time.Second, 1}, {4999 * time.Millisecond, 1}, {5 * time.Second, 2}, {6 * time.Second, 2}, {10 * time.Second, 3}} {
		w.tick(r, s.at)
		if w.joins != s.joins {
			t.Fatalf("at +%v: %d joins; want %d", s.at, w.joins, s.joins)
		}
	}
	w.alive("n3")
	w.tick(r, time.Minute)
	if w.joins != 3 {
		t.Fatalf("every server alive: %d joins; want 3", w.joins)
	}

	w = newWorld(1)
	w.groups[0].servers = []raftstore.Server{{ID: "n1", Voter: true}, {ID: "n2", Voter: true}}
	r = w.reconciler(t, testConfig())
	w.tick(r, 0)
	if w.joins != 0 {
		t.Fatalf("no seeds: %d joins; want 0", w.joins)
	}
}

// TestRendezvous: every node computes the same order from the same IDs,
// whatever order it learned them in, and a node that leaves does not
// reorder the others (so a shard's preferred voters change only by it).
func TestRendezvous(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	for shard := range 16 {
		want := Rendezvous(shard, ids)
		if len(want) != len(ids) {
			t.Fatalf("Rendezvous(%d, %v) = %v: not a permutation", shard, ids, want)
		}
		rev := slices.Clone(ids)
		slices.Reverse(rev)
		if got := Rendezvous(shard, rev); !slices.Equal(got, want) {
			t.Errorf("Rendezvous(%d, %v) = %v; want %v", shard, rev, got, want)
		}
		for _, gone := range ids {
			rest := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == gone })
			wantRest := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == gone })
			if got := Rendezvous(shard, rest); !slices.Equal(got, wantRest) {
				t.Errorf("without %s: Rendezvous(%d) = %v; want %v", gone, shard, got, wantRest)
			}
		}
	}
	firsts := map[string]bool{}
	for shard := range 64 {
		firsts[Rendezvous(shard, ids)[0]] = true
	}
	if len(firsts) < 4 {
		t.Errorf("64 shards prefer only %d of 6 nodes first", len(firsts))
	}
}

// zones sets members' zones (their --region).
func (w *world) zones(zoneOf map[string]string) {
	for id, z := range zoneOf {
		mb := w.members[id]
		mb.Region = z
		w.members[id] = mb
		if id == w.self.ID {
			w.self.Region = z
		}
	}
}

// TestPickSeatsSpreadsZones: six nodes in three zones, three seats per
// shard: every shard's seats are in three zones, whatever the rendezvous
// order, and the choice is still the rendezvous one within that rule.
func TestPickSeatsSpreadsZones(t *testing.T) {
	ids := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	zone := map[string]string{"n1": "a", "n2": "a", "n3": "b", "n4": "b", "n5": "c", "n6": "c"}
	zoneOf := func(id string) string { return zone[id] }
	spread := 0
	for shard := range 64 {
		seats := PickSeats(shard, ids, zoneOf, nil, 3)
		zones := map[string]bool{}
		for _, id := range seats {
			zones[zone[id]] = true
		}
		if len(seats) != 3 || len(zones) != 3 {
			t.Fatalf("shard %d: seats %v in zones %v; want 3 seats in 3 zones", shard, seats, zones)
		}
		if plain := Rendezvous(shard, ids)[:3]; !slices.Equal(plain, seats) {
			spread++
		}
		if first := Rendezvous(shard, ids)[0]; seats[0] != first {
			t.Errorf("shard %d: first seat %s; want the rendezvous favourite %s", shard, seats[0], first)
		}
	}
	if spread == 0 {
		t.Errorf("zones never changed the plain rendezvous choice over 64 shards; the test proves nothing")
	}
	// Without zones it is plain rendezvous.
	none := func(string) string { return "" }
	if got, want := PickSeats(5, ids, none, nil, 3), Rendezvous(5, ids)[:3]; !slices.Equal(got, want) {
		t.Errorf("PickSeats without zones = %v; want %v", got, want)
	}
	// Fewer zones than seats: every zone first, then rendezvous order.
	two := map[string]string{"n1": "a", "n2": "a", "n3": "a", "n4": "b"}
	if got := PickSeats(0, []string{"n1", "n2", "n3", "n4"}, func(id string) string { return two[id] }, nil, 3); !slices.Contains(got, "n4") {
		t.Errorf("PickSeats with zone b holding one node = %v; want n4 among the seats", got)
	}
}

// TestReconcileSpreadsZones: a free seat goes to a zone the shard lacks;
// a shard with two voters in one zone, while a third zone has a live
// member, takes that member as an extra seat and, once it votes, lets the
// doubled zone's other voter go (never this node, which leads).
func TestReconcileSpreadsZones(t *testing.T) {
	w := newWorld(1)
	w.alive("n2", "n3", "n4", "n5")
	w.zones(map[string]string{"n1": "a", "n2": "a", "n3": "a", "n4": "b", "n5": "c"})
	w.lead([]int{0}) // n1 alone
	r := w.reconciler(t, testConfig())
	first := w.tick(r, 0)
	if len(first) != 1 || !(strings.HasSuffix(first[0], "raft-n4") || strings.HasSuffix(first[0], "raft-n5")) {
		t.Fatalf("first free seat: %q; want it given to zone b or c (n4 or n5)", first)
	}

	// A shard that bootstrapped with zones doubled: n1, n2 in a; n4 in b.
	w = newWorld(1)
	w.alive("n2", "n4", "n5")
	w.zones(map[string]string{"n1": "a", "n2": "a", "n4": "b", "n5": "c"})
	w.lead([]int{0}, "n2", "n4")
	r = w.reconciler(t, testConfig())
	runSteps(t, w, r, []step{
		{at: 0, want: []string{"0 add-nonvoter n5 raft-n5"}},
		{at: time.Second, want: nil},
		{at: 5 * time.Second, want: []string{"0 promote n5 raft-n5"}},
		{at: 6 * time.Second, want: []string{"0 remove n2"}},
		{at: 7 * time.Second, want: nil},
	})
	zones := map[string]bool{}
	for _, s := range w.groups[0].servers {
		zones[w.members[s.ID].Region] = true
	}
	if len(w.groups[0].servers) != 3 || len(zones) != 3 {
		t.Errorf("seats %+v; want three voters in three zones", w.groups[0].servers)
	}
}
