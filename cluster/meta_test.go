package cluster

import (
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
