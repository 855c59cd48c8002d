// Package raftstore is a node's share of the replicated sale state: a fixed
// number of Raft shard groups (hashicorp/raft, a raft-wal log and file
// snapshots each), every item living in one of them.
//
// A Store is one node's set of shard groups, opened from a data dir: Open
// creates or recovers every group, and all of them share one TCP listener
// (raftstore/mux routes each connection to its group). A Shard is one group
// on this node: its replica of the state machine, its log and its
// membership. Items map to shards by ShardFor (FNV-1a of the item ID mod
// the shard count, which is fixed when the data dir is created).
//
// The state machine, FSM, is the truth: stock, per-user purchases,
// remembered request IDs, orders waiting for the order store (the outbox)
// and orders awaiting payment. Every decision that matters (enough stock,
// the per-user limit, the sale window, a duplicate request) is made in
// FSM.Apply, which is deterministic, so every replica reaches the same
// answer; a business outcome (sold out) is an Apply response, never an
// error of Raft.
//
// Using it: Open a Store with a Config (DefaultConfig, then the node's
// settings) and WaitReady for the leaders. Writes go to the shard that owns
// the item and succeed only on its leader: CreateItem, Restock, SetPaused,
// PurchaseBatch, Pay, MarkFlushed. Their errors distinguish not applied
// (sale.ErrNotLeader, sale.ErrUnavailable) from outcome unknown
// (sale.ErrUnknownOutcome: retry with the same request ID, the FSM
// deduplicates). Reads go to Shard.FSM on any replica: they may lag the
// leader by a replication round; Shard.Replica says whether this replica is
// current, Shard.WaitApplied waits for a log index. Config.OnLeadership
// reports the shards this node starts or stops leading. Membership changes
// (Bootstrap, AddNonvoter, Promote, RemoveServer, TransferLeadership) are
// the cluster reconciler's.
//
// Concurrency: Store and Shard methods are safe for concurrent use, and so
// are the FSM's reads; FSM.Apply, Snapshot and Restore are Raft's, called on
// its FSM goroutine. Writes block until the entry is applied on this node,
// leadership is lost, the shard closes, or Config.ApplyTimeout passes
// while enqueueing. FSM reads take a read lock and return copies: they
// wait for an Apply in progress, never for Raft. OnLeadership is called
// from a shard's own goroutine and must not block. Close shuts the groups
// down (waiting at most 10 s for each group's Raft, see DESIGN.md); writes
// still waiting then answer sale.ErrUnknownOutcome.
//
// DESIGN.md explains why it is built this way: the number of groups,
// batching, idempotency, the outbox, the payment window, snapshots, the
// mux, and the hashicorp/raft behaviours it works around.
package raftstore
