package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	httpapi "github.com/flashstock/flashstock/http"
	"github.com/flashstock/flashstock/raftstore"
	"github.com/flashstock/flashstock/sale"
)

// Shard backups for the admin API (httpapi.Backups; docs/backup.md): the
// shard groups take and install them (raftstore/backup.go), the engine
// hears of a restore (actors.Engine.OnRestore), and this file says who
// leads a shard when this node does not.

// BackupShards implements httpapi.Backups.
func (n *Node) BackupShards() int { return n.cfg.Shards }

// OpenBackup implements httpapi.Backups.
func (n *Node) OpenBackup(ctx context.Context, shard int) (httpapi.Backup, error) {
	if n.store == nil {
		return nil, n.notLeader(shard)
	}
	b, err := n.store.Shard(shard).OpenBackup(ctx)
	if errors.Is(err, sale.ErrNotLeader) {
		return nil, n.notLeader(shard)
	}
	if err != nil {
		return nil, err
	}
	return backup{b}, nil
}

// RestoreBackup implements httpapi.Backups. A restore Raft may have taken
// up (even one whose answer did not come) is told to the engine, so that
// no item actor goes on from the state before it.
func (n *Node) RestoreBackup(ctx context.Context, shard int, r io.Reader) (httpapi.BackupInfo, error) {
	if n.store == nil {
		return httpapi.BackupInfo{}, n.notLeader(shard)
	}
	h, err := n.store.Shard(shard).RestoreBackup(ctx, r, raftstore.BackupSizeMax)
	switch {
	case errors.Is(err, sale.ErrNotLeader):
		return httpapi.BackupInfo{}, n.notLeader(shard)
	case errors.Is(err, raftstore.ErrBackupInvalid):
		return httpapi.BackupInfo{}, fmt.Errorf("%w: %w", httpapi.ErrBackupInvalid, err)
	case errors.Is(err, raftstore.ErrBackupMismatch):
		return httpapi.BackupInfo{}, fmt.Errorf("%w: %w", httpapi.ErrBackupMismatch, err)
	case errors.Is(err, raftstore.ErrBackupTooLarge):
		return httpapi.BackupInfo{}, fmt.Errorf("%w: %w", httpapi.ErrBackupTooLarge, err)
	case err != nil:
		// Raft may have installed it (an answer that did not come in
		// time); stopping the shard's actors costs a retry at most.
		n.engine.OnRestore(shard)
		return httpapi.BackupInfo{}, err
	}
	n.engine.OnRestore(shard)
	n.log.Info("shard restored from a backup", "shard", shard, "index", h.Index, "term", h.Term, "taken", h.Created)
	return backupInfo(h), nil
}

// notLeader says who leads shard, as this node knows it: its own replica,
// else what the leaders gossip.
func (n *Node) notLeader(shard int) error {
	e := &httpapi.NotLeaderError{Shard: shard}
	if n.store != nil {
		_, e.Leader = n.store.Shard(shard).Leader()
	}
	if e.Leader == "" && n.place != nil {
		e.Leader = n.place.LeaderOf(shard)
	}
	for _, m := range n.members.Members() {
		if m.ID == e.Leader && e.Leader != "" {
			e.LeaderHTTP = ReachableHTTP(m.HTTPAddr, m.GossipAddr)
		}
	}
	return e
}

// ReachableHTTP returns an HTTP address other hosts can dial: a node bound
// to every interface gossips 0.0.0.0, for which its gossip host stands in.
func ReachableHTTP(httpAddr, gossipAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil || !net.ParseIP(host).IsUnspecified() && host != "" {
		return httpAddr
	}
	if gh, _, err := net.SplitHostPort(gossipAddr); err == nil {
		return net.JoinHostPort(gh, port)
	}
	return httpAddr
}

func backupInfo(h raftstore.BackupHeader) httpapi.BackupInfo {
	return httpapi.BackupInfo{Shards: h.Shards, Shard: h.Shard, Index: h.Index, Term: h.Term, Bytes: h.Size, Created: h.Created}
}

// backup adapts raftstore.Backup to httpapi.Backup.
type backup struct{ b *raftstore.Backup }

func (b backup) Info() httpapi.BackupInfo           { return backupInfo(b.b.Header) }
func (b backup) Len() int64                         { return b.b.Header.Len() }
func (b backup) WriteTo(w io.Writer) (int64, error) { return b.b.WriteTo(w) }
func (b backup) Close() error                       { return b.b.Close() }
