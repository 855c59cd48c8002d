package actors

// OnRestore tells the engine that a shard's state machine was replaced by a
// restored backup (raftstore.Shard.RestoreBackup) on this node, its leader.
// It is the path a lost leadership takes (OnLeadership): the shard's item
// actors stop, answering their queued purchases "not the leader", which
// callers retry on a fresh activation that reads the restored state; an
// actor's units reserved for entries Raft aborted go with it. Items of the
// shard this node cached from an owner are dropped too. Other nodes' item
// caches (gateways, nodes outside the group) trail the restore by at most
// Config.ItemCacheTTL, as they trail a restock. It never blocks.
func (e *Engine) OnRestore(shard int) {
	e.OnLeadership(shard, false)
	e.items.entries.Range(func(k, _ any) bool {
		if e.shardFor(k.(string)) == shard {
			e.items.drop(k)
		}
		return true
	})
}
