// Package cluster makes Flashstock nodes one cluster: gossip membership,
// bootstrap of the shard groups, and the reconciler that makes each Raft
// group follow membership.
//
//   - Membership: who exists, where they listen, whether they are alive,
//     learned by gossip through hashicorp/memberlist. Each node publishes
//     its addresses, region, protoactor system ID and the shards it leads
//     and follows in its memberlist meta.
//   - Bootstrap: with --bootstrap-expect N, the first N nodes create every
//     shard group with the same voters (the way Consul's bootstrap_expect
//     works); later nodes are added by the groups' leaders.
//   - Reconciler: on each shard leader, Raft configuration follows
//     membership: new nodes join as non-voters and are promoted once
//     stable, dead nodes are removed after a grace period, leaders are
//     spread across nodes.
//   - LeaderPlacement and Rendezvous: where each shard's leader is, and the
//     order in which nodes are chosen as a shard's voters.
//
// Nothing here speaks protoactor: the item actors, protoactor's identity
// lookup and its cluster provider (backed by Membership) live in package
// actors, which uses LeaderPlacement to place each item actor on its
// shard's leader.
//
// Memberlist callbacks never block: they record state under a mutex and
// signal a channel. See DESIGN.md.
package cluster
