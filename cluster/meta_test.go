package cluster

import (
	"slices"
	"testing"
)

// TestMetaHearsLeader: a node that publishes which shards it follows is a
// leadership target only for those; one that publishes nothing (an earlier
// version) is one for every shard.
func TestMetaHearsLeader(t *testing.T) {
	some := Meta{Follows: EncodeLeads([]int{1, 9})}
	none := Meta{Follows: "00"}
	old := Meta{}
	for shard, want := range map[int]bool{0: false, 1: true, 8: false, 9: true, 17: false} {
		if got := some.HearsLeader(shard); got != want {
			t.Errorf("follows {1, 9}: HearsLeader(%d) = %v; want %v", shard, got, want)
		}
		if none.HearsLeader(shard) {
			t.Errorf("follows none: HearsLeader(%d) = true; want false", shard)
		}
		if !old.HearsLeader(shard) {
			t.Errorf("earlier version: HearsLeader(%d) = false; want true", shard)
		}
	}
}

// TestClaimantHighestTerm: while a paused or cut-off leader still claims
// its shard in gossip, the leader elected after it claims it in a higher
// term, and routing follows the higher term whatever the IDs' order.
func TestClaimantHighestTerm(t *testing.T) {
	claim := func(id string, shards []int, terms []uint64) Member {
		return Member{Meta: Meta{ID: id, Leads: EncodeLeads(shards), LeadTerms: terms}, State: StateAlive}
	}
	tests := []struct {
		name    string
		members []Member
		shard   int
		want    string
	}{
		{"one claim", []Member{claim("n1", []int{0, 3}, []uint64{4, 7}), claim("n2", []int{1}, []uint64{2})}, 3, "n1"},
		{"the newer term wins over the lower ID", []Member{claim("n1", []int{2}, []uint64{5}), claim("n3", []int{0, 2}, []uint64{1, 6})}, 2, "n3"},
		{"an earlier version says no term: the one that does wins", []Member{claim("n1", []int{2}, nil), claim("n2", []int{2}, []uint64{3})}, 2, "n2"},
		{"no terms at all: the first, as before", []Member{claim("n1", []int{2}, nil), claim("n2", []int{2}, nil)}, 2, "n1"},
		{"nobody", []Member{claim("n1", []int{1}, []uint64{1})}, 2, ""},
	}
	for _, tt := range tests {
		if got := claimant(tt.members, tt.shard); got != tt.want {
			t.Errorf("%s: claimant(shard %d) = %q; want %q", tt.name, tt.shard, got, tt.want)
		}
	}
}

// TestShardRank: membership of a shard in a Leads set and its position
// among the set's shards, read from the hex in place, as ShardSet decodes
// it; a malformed set holds nothing.
func TestShardRank(t *testing.T) {
	for _, set := range []string{"", "01", "05", "ff", "0201", "80ff03", "0000000001"} {
		shards := ShardSet(set)
		for shard := -1; shard < 44; shard++ {
			want := slices.Index(shards, shard)
			got, ok := shardRank(set, shard)
			if ok != (want >= 0) || (ok && got != want) {
				t.Errorf("shardRank(%q, %d) = %d, %v; want %d (ShardSet %v)", set, shard, got, ok, want, shards)
			}
		}
	}
	for _, bad := range []string{"0", "zz", "01z", "1g"} {
		if _, ok := shardRank(bad, 0); ok {
			t.Errorf("shardRank(%q, 0) holds shard 0; want a malformed set to hold nothing", bad)
		}
	}
}
