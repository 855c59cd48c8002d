package actors

import (
	"context"
	"sort"
	"time"

	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// ListItems returns up to limit items whose IDs sort after `after`, in ID
// order, read from this node's current replicas (each at most a
// replication round behind its leader; no other node is asked), and the
// shards this node holds no current replica of, whose items are missing
// from the list. more reports whether items after the last one returned
// exist. It costs a copy of every replicated shard's item table: an admin
// read, never on the purchase path.
func (e *Engine) ListItems(ctx context.Context, after string, limit int) (items []sale.Item, more bool, missing []int, err error) {
	if limit < 1 {
		return nil, false, nil, sale.ErrInvalidRequest
	}
	missing = []int{}
	for i := 0; i < e.shards; i++ {
		if err := ctx.Err(); err != nil {
			return nil, false, nil, err
		}
		if e.store == nil || !listable(e.store.Shard(i)) {
			missing = append(missing, i)
			continue
		}
		all := e.store.Shard(i).FSM().Items() // sorted by ID
		from := sort.Search(len(all), func(j int) bool { return all[j].ID > after })
		// At most limit+1 of each shard can be on the page (one more tells
		// whether there is a next page).
		all = all[from:]
		if len(all) > limit+1 {
			all = all[:limit+1]
		}
		items = append(items, all...)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	if len(items) > limit {
		items, more = items[:limit], true
	}
	return items, more, missing, nil
}

// listContactMax is how recently a follower of a shard whose state machine
// never applied a command must have heard from its leader for its empty
// item table to count as current.
const listContactMax = 3 * time.Second

// listable reports whether this node's item table of the shard is current:
// it holds a current replica, or it follows a shard that no command has
// reached yet (its state machine applied nothing, which Replica does not
// count as current) while in contact with the leader, with everything it
// knows to be committed applied.
func listable(sh *raftstore.Shard) bool {
	if sh.Replica() {
		return true
	}
	r := sh.Raft()
	return sh.FSM().AppliedIndex() == 0 && sh.HasLeader() && sh.LastContact() < listContactMax &&
		r.CommitIndex() > 0 && r.AppliedIndex() >= r.CommitIndex()
}
