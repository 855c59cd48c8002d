package actors

import (
	"errors"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/flashstock/flashstock/raftstore"
)

// LocalPlacement places every item on this node when it leads the item's
// shard: a node that runs alone (tests, or before gossip is wired).
type LocalPlacement struct{ store *raftstore.Store }

// NewLocalPlacement returns a placement that only ever answers "here".
func NewLocalPlacement(store *raftstore.Store) *LocalPlacement { return &LocalPlacement{store: store} }

// Owner implements Placement.
func (p *LocalPlacement) Owner(identity string) (string, bool, bool) {
	return p.ShardOwner(p.store.ShardFor(identity))
}

// ShardOwner implements Placement.
func (p *LocalPlacement) ShardOwner(shard int) (string, bool, bool) {
	if shard >= 0 && shard < p.store.Shards() && p.store.Shard(shard).Ready() {
		return "", true, true
	}
	return "", false, false
}

// StaticProvider is a ClusterProvider whose topology is this member alone.
type StaticProvider struct{}

// StartMember implements pcluster.ClusterProvider.
func (StaticProvider) StartMember(c *pcluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(pcluster.Members{{
		Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds(),
	}})
	return nil
}

// StartClient implements pcluster.ClusterProvider.
func (StaticProvider) StartClient(*pcluster.Cluster) error {
	return errors.New("cluster: client members are not supported")
}

// Shutdown implements pcluster.ClusterProvider.
func (StaticProvider) Shutdown(bool) error { return nil }
