package raftstore

import (
	"context"
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

// replicaContactMax is how recently a follower must have heard from its
// leader for its replica to count as current.
const replicaContactMax = 3 * time.Second

// Replica reports whether this node holds a current replica of the shard:
// it leads it, or it follows a leader it heard from recently. Reads that
// may lag by a replication round (sold out, remembered request IDs, item
// pages) are served from a current replica without asking the leader.
func (sh *Shard) Replica() bool {
	if sh.IsLeader() {
		return true
	}
	return sh.fsm.AppliedIndex() > 0 && time.Since(sh.raft.LastContact()) < replicaContactMax
}

// WaitApplied waits until this replica has applied the log up to index. A
// follower learns that an entry is committed with the next AppendEntries (up
// to CommitTimeout later), and the follower that was not needed for the
// quorum may not have the entry yet at all. An index further than
// applyLagMax past this replica's log is no entry it is about to get (a
// made-up order ID): no wait. It reports whether the index is applied; it
// never waits past timeout, nor once ctx ends or the shard closes.
func (sh *Shard) WaitApplied(ctx context.Context, index uint64, timeout time.Duration) bool {
	if sh.fsm.AppliedIndex() >= index {
		return true
	}
	if index > sh.raft.LastIndex()+applyLagMax {
		return false
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-sh.stop:
			return false
		case <-timer.C:
			return sh.fsm.AppliedIndex() >= index
		case <-poll.C:
			if sh.fsm.AppliedIndex() >= index {
				return true
			}
		}
	}
}

// applyLagMax is how many entries past its log a replica may be asked to
// wait for: seconds of a busy shard's rounds.
const applyLagMax = 4096
