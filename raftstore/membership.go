package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
)

// Membership operations on a shard group. Configuration changes go through
// the leader; callers (the cluster reconciler) decide which to make. Each
// waits at most the apply timeout.

// Server is a member of a shard group.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Servers returns the shard's current configuration.
func (sh *Shard) Servers() ([]Server, error) {
	f := sh.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// HasConfiguration reports whether the shard has been bootstrapped or has
// heard from a leader.
func (sh *Shard) HasConfiguration() bool {
	servers, err := sh.Servers()
	return err == nil && len(servers) > 0
}

// InGroup reports whether this node is a server of the group's latest
// configuration as its replica knows it: false before bootstrap or the
// first contact from a leader, and after a committed removal reached it.
// A replica removed while it was cut off never hears of its removal and
// still reports true; it also hears no leader (callers fall back to
// gossip then: node.Readiness).
func (sh *Shard) InGroup() bool {
	servers, err := sh.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == sh.cfg.NodeID {
			return true
		}
	}
	return false
}

// Bootstrap creates the shard group with the given voters. Every voter must
// call it with the same list. It is an error on a shard that has state.
func (sh *Shard) Bootstrap(voters []Server) error {
	conf := raft.Configuration{}
	for _, v := range voters {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(v.ID), Address: raft.ServerAddress(v.Addr)})
	}
	if err := sh.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("raftstore: bootstrap shard %d: %w", sh.id, err)
	}
	return nil
}

// AddNonvoter adds a server that receives the log but does not vote.
func (sh *Shard) AddNonvoter(id, addr string) error {
	return mapRaftErrorNil(sh.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, sh.cfg.ApplyTimeout).Error())
}

// Promote makes a server a voter.
func (sh *Shard) Promote(id, addr string) error {
	return mapRaftErrorNil(sh.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, sh.cfg.ApplyTimeout).Error())
}

// RemoveServer removes a server from the group.
func (sh *Shard) RemoveServer(id string) error {
	return mapRaftErrorNil(sh.raft.RemoveServer(raft.ServerID(id), 0, sh.cfg.ApplyTimeout).Error())
}

// TransferLeadership hands the leadership to the given voter, or to any
// up-to-date voter when id is empty.
func (sh *Shard) TransferLeadership(id, addr string) error {
	var f raft.Future
	if id == "" {
		f = sh.raft.LeadershipTransfer()
	} else {
		f = sh.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr))
	}
	return mapRaftErrorNil(f.Error())
}

// LastContact returns the time since this follower last heard from the
// leader; zero on the leader.
func (sh *Shard) LastContact() time.Duration {
	if sh.IsLeader() {
		return 0
	}
	return time.Since(sh.raft.LastContact())
}

func mapRaftErrorNil(err error) error {
	if err == nil {
		return nil
	}
	return mapRaftError(err)
}

// bootstrapMarker is written once the node has bootstrapped its shard
// groups or learned that the cluster exists, so that it never bootstraps
// again, whatever its shards' configurations say.
const bootstrapMarker = "bootstrapped"

// Bootstrapped reports whether this data dir belongs to an existing cluster.
func (s *Store) Bootstrapped() bool {
	_, err := os.Stat(filepath.Join(s.cfg.DataDir, "raft", bootstrapMarker))
	return err == nil
}

// MarkBootstrapped records that this data dir belongs to an existing cluster.
func (s *Store) MarkBootstrapped() error {
	return os.WriteFile(filepath.Join(s.cfg.DataDir, "raft", bootstrapMarker), []byte("1\n"), 0o640)
}
