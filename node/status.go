package node

import (
	"context"
	"time"

	"github.com/flashstock/flashstock/cluster"
	"github.com/flashstock/flashstock/raftstore"
)

// Status is the admin's view of the cluster from one node: the document of
// GET /v1/cluster/status.
type Status struct {
	Node struct {
		Name      string `json:"name"`
		Role      string `json:"role"` // core or gateway
		Version   string `json:"version"`
		HTTPAddr  string `json:"http_addr"`
		RaftAddr  string `json:"raft_addr"`
		ActorAddr string `json:"actor_addr"`
		Region    string `json:"region,omitempty"`
		Ready     bool   `json:"ready"`
		ShardsLed int    `json:"shards_led"`
		Actors    int    `json:"item_actors"`
		Time      string `json:"time"`
		// Security says how the cluster plane is protected: gossip keys
		// installed (0: plain text) and mutual TLS for Raft and actors.
		Security struct {
			GossipKeys   int    `json:"gossip_keys"`
			TLS          bool   `json:"tls"`
			CertNotAfter string `json:"cert_not_after,omitempty"`
		} `json:"security"`
	} `json:"node"`
	Members  []cluster.Member        `json:"members"`
	Shards   []raftstore.ShardStatus `json:"shards"`
	Breakers map[string]string       `json:"circuit_breakers"` // remote actor address -> state
}

// Status implements httpapi.Node.
func (n *Node) Status(ctx context.Context) any {
	var s Status
	s.Node.Name, s.Node.Role, s.Node.Version = n.cfg.Name, n.cfg.Role, Version
	s.Node.HTTPAddr, s.Node.Region = n.HTTPAddr(), n.cfg.Region
	if n.store != nil {
		s.Node.RaftAddr = n.store.Addr()
	}
	s.Node.ActorAddr = n.engine.ActorAddr()
	s.Node.Ready = n.Ready()
	s.Node.Actors = n.engine.Activations()
	s.Node.Time = time.Now().UTC().Format(time.RFC3339Nano)
	s.Node.Security.GossipKeys = n.members.KeyCount()
	if n.sec.tls != nil {
		s.Node.Security.TLS = true
		s.Node.Security.CertNotAfter = n.sec.tls.NotAfter().UTC().Format(time.RFC3339)
	}
	s.Members = n.members.Members()
	s.Breakers = n.engine.Breakers()
	for i := 0; i < n.cfg.Shards; i++ {
		if n.store == nil { // a gateway: the leader as gossip tells it
			s.Shards = append(s.Shards, raftstore.ShardStatus{ID: i, State: "none", Leader: n.place.LeaderOf(i)})
			continue
		}
		st := n.store.Shard(i).Status()
		if st.State == "Leader" {
			s.Node.ShardsLed++
		}
		if st.Leader == "" {
			st.Leader = n.place.LeaderOf(i)
		}
		s.Shards = append(s.Shards, st)
	}
	return &s
}
