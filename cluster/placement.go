package cluster

import (
	"hash/fnv"
	"slices"
	"sort"
	"strconv"

	"github.com/flashstock/flashstock/raftstore"
)

// LeaderPlacement places an item's actor on the leader of the item's
// shard. It implements actors.Placement.
type LeaderPlacement struct {
	store  *raftstore.Store // nil on a gateway
	shards int
	m      *Membership
	self   string // this node's ID
}

// NewLeaderPlacement returns a placement over this node's shards and view
// of the members.
func NewLeaderPlacement(store *raftstore.Store, m *Membership) *LeaderPlacement {
	return &LeaderPlacement{store: store, shards: store.Shards(), m: m, self: m.Self().ID}
}

// NewGatewayPlacement returns the placement of a gateway, which holds no
// shard: every leader is known from the members' gossiped Leads.
func NewGatewayPlacement(shards int, m *Membership) *LeaderPlacement {
	return &LeaderPlacement{shards: shards, m: m, self: m.Self().ID}
}

// Owner implements actors.Placement.
func (p *LeaderPlacement) Owner(identity string) (string, bool, bool) {
	return p.ShardOwner(raftstore.ShardFor(identity, p.shards))
}

// ShardOwner implements actors.Placement: the actor address of the
// shard's leader, and whether it is this node. A leader gossip declared
// dead owns nothing here: callers answer 503 within a second rather than
// wait on it for their timeout. (memberlist does not tell its users which
// nodes it suspects; a paused leader is routed around when Raft elects
// another and its Leads are gossiped, and meanwhile the per-node circuit
// breaker turns its timeouts into fast 503s.)
func (p *LeaderPlacement) ShardOwner(shard int) (string, bool, bool) {
	if shard < 0 || shard >= p.shards {
		return "", false, false
	}
	if p.store != nil && p.store.Shard(shard).Ready() {
		return p.m.Self().ActorAddr, true, true
	}
	id := p.LeaderOf(shard)
	if id == "" || id == p.self {
		return "", false, false // no leader, or this node before its barrier
	}
	mb, ok := p.m.Member(id)
	if !ok || mb.State != StateAlive || mb.ActorAddr == "" {
		return "", false, false
	}
	return mb.ActorAddr, false, true
}

// LeaderOf returns the ID of the shard's leader as this node knows it: from
// its own replica when it has one, else from the members' gossiped Leads.
// When two live members claim the shard (the old leader is paused or cut
// off, and gossip has not yet given up on it), the claim in the higher
// term wins: the new leader's, gossiped the moment it was elected, rather
// than whichever ID sorts first.
func (p *LeaderPlacement) LeaderOf(shard int) string {
	if p.store != nil {
		if _, id := p.store.Shard(shard).Leader(); id != "" {
			return id
		}
	}
	return claimant(p.m.Alive(), shard)
}

// claimant returns the member whose gossip claims shard in the highest
// term (the first, in the members' order, on a tie or without terms).
func claimant(members []Member, shard int) string {
	best, bestTerm := "", uint64(0)
	for _, mb := range members {
		if !mb.LeadsShard(shard) {
			continue
		}
		if t := mb.LeadTerm(shard); best == "" || t > bestTerm {
			best, bestTerm = mb.ID, t
		}
	}
	return best
}

// Rendezvous orders node IDs by highest-random-weight hashing for a shard:
// the first R are the shard's preferred voters. Every node computes the
// same order from the same IDs.
func Rendezvous(shard int, ids []string) []string {
	type scored struct {
		id    string
		score uint64
	}
	s := make([]scored, len(ids))
	for i, id := range ids {
		h := fnv.New64a()
		_, _ = h.Write([]byte(strconv.Itoa(shard)))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(id))
		s[i] = scored{id, mix(h.Sum64())}
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].score != s[j].score {
			return s[i].score > s[j].score
		}
		return s[i].id < s[j].id
	})
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i].id
	}
	return out
}

// mix is a 64-bit finaliser (splitmix64) that spreads FNV's low-entropy
// output for short similar inputs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// PickSeats returns up to n of the candidates for a shard's seats, in
// rendezvous order but spreading zones: a candidate whose zone none of
// taken (the shard's current servers) and none of those already picked is
// in comes first, so that a whole zone down leaves every shard a quorum.
// Candidates without a zone count as a zone each. Every node computes the
// same choice from the same members.
func PickSeats(shard int, candidates []string, zoneOf func(id string) string, taken []string, n int) []string {
	used := map[string]bool{}
	for _, id := range taken {
		if z := zoneOf(id); z != "" {
			used[z] = true
		}
	}
	order := Rendezvous(shard, candidates)
	var picked []string
	for pass := 0; pass < 2 && len(picked) < n; pass++ {
		for _, id := range order {
			if len(picked) == n {
				break
			}
			if slices.Contains(picked, id) || slices.Contains(taken, id) {
				continue
			}
			z := zoneOf(id)
			if pass == 0 && z != "" && used[z] {
				continue // a zone the shard has: only once every zone has a seat
			}
			picked = append(picked, id)
			if z != "" {
				used[z] = true
			}
		}
	}
	return picked
}
