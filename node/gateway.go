package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/flashstock/flashstock/cluster"
)

// A gateway (--role gateway) joins gossip and serves the whole HTTP API
// but holds no Raft seat, no shard data and no order store: it answers
// from item snapshots it pulls from the owners (actors' item cache, at most
// --item-cache-ttl old) and forwards purchases, admin commands and order
// reads to the nodes that lead the shards. Losing a gateway loses nothing;
// adding one adds HTTP, JSON, JWT and rate-limit capacity without adding a
// Raft member. See docs/scaling.md.

// rejoinInterval is how often a gateway that sees no core node contacts
// its seeds again.
const rejoinInterval = 2 * time.Second

// rejoiner contacts a gateway's gossip seeds again while no core node is
// alive in its view: a gateway that started before the core nodes, or
// outlived all of them, would otherwise stay alone in gossip (nobody else
// knows it). Core nodes do the same in their reconciler.
type rejoiner struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func startRejoin(m *cluster.Membership, seeds []string, log *slog.Logger) *rejoiner {
	r := &rejoiner{done: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(rejoinInterval)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case <-t.C:
			}
			if m.AliveCount(false) > 0 {
				continue
			}
			if _, err := m.Join(seeds); err != nil {
				log.Debug("gateway: rejoin gossip", "seeds", seeds, "err", err)
			}
		}
	}()
	return r
}

// stop stops the rejoiner and waits for it; it may be called twice.
func (r *rejoiner) stop() {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
}
