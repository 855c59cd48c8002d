package actors

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/flashstock/flashstock/cluster"
)

// Provider is a protoactor ClusterProvider backed by Membership (protoactor
// ships none for memberlist). It publishes the full topology on every
// membership change and every RepublishInterval, because protoactor applies
// its own gossip blocks only when the topology is republished.
//
// Member.Id is the remote ActorSystem.ID and Host/Port the actor remote
// address: protoactor keys gossip, heartbeats and its block list by that ID.
// A member that memberlist declares dead stays in the topology for
// DeadGrace: protoactor blocks a member that leaves the topology forever,
// so a short partition must not make it leave. Our IdentityLookup never
// places an actor on a dead node, so keeping it listed costs nothing.
type Provider struct {
	m                 *cluster.Membership
	deadGrace         time.Duration
	republishInterval time.Duration

	mu      sync.Mutex
	cluster *pcluster.Cluster
	stop    chan struct{}
	wg      sync.WaitGroup
}

// NewProvider returns a provider over m.
func NewProvider(m *cluster.Membership, deadGrace time.Duration) *Provider {
	return &Provider{m: m, deadGrace: deadGrace, republishInterval: time.Second}
}

// StartMember implements pcluster.ClusterProvider.
func (p *Provider) StartMember(c *pcluster.Cluster) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		return errors.New("cluster: provider already started")
	}
	p.cluster, p.stop = c, make(chan struct{})
	p.publish()
	p.wg.Add(1)
	go p.loop(p.stop)
	return nil
}

// StartClient implements pcluster.ClusterProvider. Flashstock has no
// client-only members.
func (p *Provider) StartClient(*pcluster.Cluster) error {
	return errors.New("cluster: client members are not supported")
}

// Shutdown implements pcluster.ClusterProvider. It stops publishing; the
// memberlist itself belongs to the node and is left by it.
func (p *Provider) Shutdown(bool) error {
	p.mu.Lock()
	stop := p.stop
	p.stop = nil
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		p.wg.Wait()
	}
	return nil
}

// loop republishes until stop is closed. It takes the channel rather than
// reading p.stop, which Shutdown clears before closing it: a loop that read
// the cleared field would wait on a nil channel forever.
func (p *Provider) loop(stop <-chan struct{}) {
	defer p.wg.Done()
	t := time.NewTicker(p.republishInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-p.m.Changed():
			// Debounce a burst of gossip events.
			time.Sleep(25 * time.Millisecond)
		}
		p.publish()
	}
}

// publish hands protoactor the current topology.
func (p *Provider) publish() {
	c := p.cluster
	kinds := c.GetClusterKinds()
	now := time.Now()
	var members pcluster.Members
	for _, mb := range p.m.Members() {
		if mb.ActorSys == "" || mb.State == cluster.StateLeft {
			continue
		}
		if mb.State == cluster.StateDead && now.Sub(mb.Since) > p.deadGrace {
			continue
		}
		host, port, err := net.SplitHostPort(mb.ActorAddr)
		if err != nil {
			continue
		}
		pn, err := strconv.Atoi(port)
		if err != nil {
			continue
		}
		members = append(members, &pcluster.Member{Id: mb.ActorSys, Host: host, Port: int32(pn), Kinds: kinds})
	}
	c.MemberList.UpdateClusterTopology(members)
}
