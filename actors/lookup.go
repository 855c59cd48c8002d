package actors

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
)

// ActivatorName is the well-known actor name of every node's activator.
const ActivatorName = "flashstock-activator"

// Placement says where an identity's actor must live.
type Placement interface {
	// Owner returns the actor address of the node that must host the
	// identity's actor, whether that is this node, and false when no node
	// qualifies right now (no leader): the caller retries.
	Owner(identity string) (addr string, local bool, ok bool)
	// ShardOwner is Owner for whatever lives with a shard's leader (its
	// orders): the leader's actor address, whether it is this node.
	ShardOwner(shard int) (addr string, local bool, ok bool)
}

// LeaderLookup is a protoactor IdentityLookup that activates each item
// actor on the node that leads the item's Raft shard, and nowhere else.
//
// protoactor's disthash lookup places by rendezvous hash over the
// topology; nodes that see a topology change at different times then keep
// duplicate activations forever (protoactor issue #799, reproduced in
// shared/research/protoactor.md). Raft already elects exactly one leader
// per shard, so placement follows it: Get asks the leader's activator,
// which activates only if its node leads the shard now. A duplicate for a
// moment (an old leader that has not yet noticed) cannot oversell: its Raft
// applies fail with ErrNotLeader.
type LeaderLookup struct {
	place   Placement
	timeout time.Duration
	log     *slog.Logger

	cluster   *pcluster.Cluster
	activator *actor.PID
	seq       atomic.Uint64

	mu      sync.Mutex
	acts    map[string]*actor.PID // local activations by identity
	flights map[string]*flight    // remote activations in flight, by owner and identity
}

// flight is one remote activation request that concurrent Gets of the
// same identity share: a flash crowd's first second would otherwise send
// the owner one request per shopper.
type flight struct {
	done chan struct{}
	pid  *actor.PID
}

// NewLeaderLookup returns a lookup; timeout bounds a remote activation.
func NewLeaderLookup(place Placement, timeout time.Duration, log *slog.Logger) *LeaderLookup {
	return &LeaderLookup{place: place, timeout: timeout, log: log, acts: make(map[string]*actor.PID), flights: make(map[string]*flight)}
}

// Setup implements pcluster.IdentityLookup.
func (l *LeaderLookup) Setup(c *pcluster.Cluster, kinds []string, isClient bool) {
	l.cluster = c
	props := actor.PropsFromFunc(l.receiveActivation)
	pid, err := c.ActorSystem.Root.SpawnNamed(props, ActivatorName)
	if err != nil {
		l.log.Error("spawn activator", "err", err)
		return
	}
	l.activator = pid
}

// receiveActivation is the activator actor: it activates identities this
// node owns and refuses the rest.
func (l *LeaderLookup) receiveActivation(ctx actor.Context) {
	req, ok := ctx.Message().(*pcluster.ActivationRequest)
	if !ok {
		return
	}
	pid := l.activateLocal(req.ClusterIdentity)
	if pid == nil {
		ctx.Respond(&pcluster.ActivationResponse{Failed: true})
		return
	}
	ctx.Respond(&pcluster.ActivationResponse{Pid: pid})
}

// Get implements pcluster.IdentityLookup. It returns nil when the owner is
// unknown or refuses; callers retry.
func (l *LeaderLookup) Get(ci *pcluster.ClusterIdentity) *actor.PID {
	addr, local, ok := l.place.Owner(ci.Identity)
	if !ok {
		return nil
	}
	if local {
		return l.activateLocal(ci)
	}
	key := addr + "/" + ci.Identity
	l.mu.Lock()
	if f, ok := l.flights[key]; ok {
		l.mu.Unlock()
		<-f.done // bounded by the first caller's timeout
		return f.pid
	}
	f := &flight{done: make(chan struct{})}
	l.flights[key] = f
	l.mu.Unlock()
	f.pid = l.activateRemote(addr, ci)
	l.mu.Lock()
	delete(l.flights, key)
	l.mu.Unlock()
	close(f.done)
	return f.pid
}

// activateRemote asks the owner's activator for the identity's actor.
func (l *LeaderLookup) activateRemote(addr string, ci *pcluster.ClusterIdentity) *actor.PID {
	res, err := l.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(addr, ActivatorName),
		&pcluster.ActivationRequest{ClusterIdentity: ci}, l.timeout).Result()
	if err != nil {
		return nil
	}
	r, ok := res.(*pcluster.ActivationResponse)
	if !ok || r.Failed || r.Pid == nil {
		return nil
	}
	return r.Pid
}

// activateLocal returns the local activation, spawning it if this node
// owns the identity.
func (l *LeaderLookup) activateLocal(ci *pcluster.ClusterIdentity) *actor.PID {
	if _, local, ok := l.place.Owner(ci.Identity); !ok || !local {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if pid, ok := l.acts[ci.Identity]; ok {
		return pid
	}
	kind, ok := l.cluster.TryGetClusterKind(ci.Kind)
	if !ok {
		return nil
	}
	// A fresh name each time: a stopped activation's name is released
	// asynchronously, and a new leader term must not wait for it.
	name := ci.Kind + "/" + ci.Identity + "$" + strconv.FormatUint(l.seq.Add(1), 36)
	pid, err := l.cluster.ActorSystem.Root.SpawnNamed(pcluster.WithClusterIdentity(kind.Props, ci), name)
	if err != nil {
		if !errors.Is(err, actor.ErrNameExists) {
			l.log.Error("activate", "identity", ci.Identity, "err", err)
		}
		return nil
	}
	kind.Inc()
	l.acts[ci.Identity] = pid
	return pid
}

// RemovePid implements pcluster.IdentityLookup.
func (l *LeaderLookup) RemovePid(ci *pcluster.ClusterIdentity, pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.acts[ci.Identity]; ok && cur.Equal(pid) {
		delete(l.acts, ci.Identity)
	}
}

// Deactivate stops the local activations whose identity matches, e.g. the
// items of a shard this node no longer leads. It does not wait.
func (l *LeaderLookup) Deactivate(match func(identity string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, pid := range l.acts {
		if match(id) {
			delete(l.acts, id)
			l.cluster.PidCache.RemoveByValue(id, "item", pid)
			l.cluster.ActorSystem.Root.Stop(pid)
			if kind, ok := l.cluster.TryGetClusterKind("item"); ok {
				kind.Dec()
			}
		}
	}
}

// Activations returns the number of local activations.
func (l *LeaderLookup) Activations() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acts)
}

// Shutdown implements pcluster.IdentityLookup: it stops every local
// activation and waits for each (each answers its queued purchases).
func (l *LeaderLookup) Shutdown() {
	l.mu.Lock()
	var fs []*actor.Future
	for id, pid := range l.acts {
		fs = append(fs, l.cluster.ActorSystem.Root.StopFuture(pid))
		delete(l.acts, id)
	}
	l.mu.Unlock()
	for _, f := range fs {
		_ = f.Wait()
	}
	if l.activator != nil {
		l.cluster.ActorSystem.Root.Stop(l.activator)
	}
}
