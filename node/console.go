package node

import (
	"context"

	"github.com/flashstock/flashstock/cluster"
	httpapi "github.com/flashstock/flashstock/http"
)

// ClusterView implements httpapi.Node: the status document in the
// console's terms. It reads this node's state only.
func (n *Node) ClusterView(ctx context.Context) httpapi.ClusterView {
	st := n.Status(ctx).(*Status)
	v := httpapi.ClusterView{Node: st.Node.Name, Region: st.Node.Region, Ready: st.Node.Ready,
		Members: make([]httpapi.MemberView, len(st.Members)), Shards: make([]httpapi.ShardView, len(st.Shards)),
		Breakers: st.Breakers}
	for i, m := range st.Members {
		leads := cluster.ShardSet(m.Leads)
		if leads == nil {
			leads = []int{}
		}
		v.Members[i] = httpapi.MemberView{ID: m.ID, Role: m.Role, Region: m.Region, State: m.State, Since: m.Since,
			HTTPAddr: m.HTTPAddr, Leads: leads}
	}
	for i, sh := range st.Shards {
		v.Shards[i] = httpapi.ShardView{ID: sh.ID, State: sh.State, Leader: sh.Leader, Voters: sh.Voters,
			NonVoters: sh.NonVoters, Term: sh.Term, CommitIndex: sh.CommitIndex, AppliedIndex: sh.AppliedIndex,
			LastContact: sh.LastContact, Items: sh.Items, Unflushed: sh.Unflushed, FlushedSeq: sh.FlushedSeq}
	}
	return v
}
