package raftstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Backups: a shard's state machine as a file, and that file installed
// into a running group (docs/backup.md).
//
// A backup is the FSM's own snapshot (snapshot.go's stream, exactly as
// Persist wrote it) between a fixed header and a checksum:
//
//	backupMagic                          20 bytes
//	shards, shard                        uint32 each, big-endian
//	index, term                          uint64 each: the log entry the snapshot covers
//	size                                 uint64: bytes of the FSM snapshot that follow
//	created                              int64: Unix nanoseconds, when it was taken
//	the FSM snapshot                     size bytes
//	SHA-256 of everything above          32 bytes
//
// The leader takes it with Raft's own snapshot (Raft.Snapshot, after a
// barrier), so the state and the index/term it covers come from the FSM
// goroutine together: every order in it was confirmed by an entry at or
// below Index. A restore installs it with Raft.Restore, which burns a
// log index past both Index and the group's last index: orders confirmed
// after the restore get IDs above every restored order's, whatever the
// group's log held before.

// backupMagic starts a shard backup of this format.
const backupMagic = "flashstock-backup-1\n"

// backupHeaderLen is the length of the magic and the fixed fields.
const backupHeaderLen = len(backupMagic) + 4 + 4 + 8 + 8 + 8 + 8

// BackupSizeMax bounds the FSM snapshot a backup may carry: far above a
// shard's state (about 100 bytes per buyer and remembered request ID), far
// below what would fill a disk by mistake.
const BackupSizeMax = 8 << 30

// Errors of backups and restores, matched with errors.Is.
var (
	// ErrBackupInvalid: the stream is not a backup of this format, is
	// cut short, fails its checksum, or holds a snapshot the FSM cannot
	// read. Nothing was changed.
	ErrBackupInvalid = errors.New("raftstore: invalid backup")
	// ErrBackupMismatch: the backup is of another shard, or of a cluster
	// with another shard count. Nothing was changed.
	ErrBackupMismatch = errors.New("raftstore: backup of another shard or shard count")
	// ErrBackupTooLarge: the backup's snapshot is larger than the bound
	// the restore was given. Nothing was changed.
	ErrBackupTooLarge = errors.New("raftstore: backup too large")
	// errRestored refuses a flushed watermark read from the state before
	// a restore (see backupGuard).
	errRestored = errors.New("raftstore: the shard was restored since its outbox was read")
)

// BackupHeader describes a shard backup.
type BackupHeader struct {
	Shards int // the cluster's shard count
	Shard  int // the shard backed up
	// Index and Term are the last log entry the snapshot covers: every
	// order it holds was confirmed at or below Index, so an order store
	// row of this shard with a higher index was confirmed after it.
	Index, Term uint64
	Size        int64     // bytes of the FSM snapshot
	Created     time.Time // when it was taken, by the leader's clock
}

// Len returns the length of the whole backup stream.
func (h BackupHeader) Len() int64 { return int64(backupHeaderLen) + h.Size + sha256.Size }

func (h BackupHeader) append(b []byte) []byte {
	b = append(b, backupMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(h.Shards))
	b = binary.BigEndian.AppendUint32(b, uint32(h.Shard))
	b = binary.BigEndian.AppendUint64(b, h.Index)
	b = binary.BigEndian.AppendUint64(b, h.Term)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size))
	return binary.BigEndian.AppendUint64(b, uint64(h.Created.UnixNano()))
}

// parseBackupHeader decodes the header in b (backupHeaderLen bytes).
func parseBackupHeader(b []byte) (BackupHeader, error) {
	if len(b) != backupHeaderLen || string(b[:len(backupMagic)]) != backupMagic {
		return BackupHeader{}, fmt.Errorf("%w: not a Flashstock shard backup", ErrBackupInvalid)
	}
	b = b[len(backupMagic):]
	u32 := func() uint64 { v := binary.BigEndian.Uint32(b); b = b[4:]; return uint64(v) }
	u64 := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	shards, shard := u32(), u32()
	var h BackupHeader
	h.Index, h.Term = u64(), u64()
	size, created := u64(), u64()
	switch {
	case shards < 1 || shards > orders.ShardsMax:
		return BackupHeader{}, fmt.Errorf("%w: shard count %d", ErrBackupInvalid, shards)
	case shard >= shards:
		return BackupHeader{}, fmt.Errorf("%w: shard %d of %d", ErrBackupInvalid, shard, shards)
	case size > 1<<62:
		return BackupHeader{}, fmt.Errorf("%w: size %d", ErrBackupInvalid, size)
	case h.Index == 0:
		return BackupHeader{}, fmt.Errorf("%w: no log index", ErrBackupInvalid)
	}
	h.Shards, h.Shard, h.Size = int(shards), int(shard), int64(size)
	h.Created = time.Unix(0, int64(created)).UTC()
	return h, nil
}

// ReadBackup reads one backup stream from r, checks it and copies its FSM
// snapshot to dst (io.Discard to only check it). It reads exactly the
// backup's length from r, so backups may follow one another in a file. A
// snapshot larger than max is refused before its bytes are read. Errors
// wrap ErrBackupInvalid or ErrBackupTooLarge.
func ReadBackup(dst io.Writer, r io.Reader, max int64) (BackupHeader, error) {
	hash := sha256.New()
	hb := make([]byte, backupHeaderLen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return BackupHeader{}, fmt.Errorf("%w: header cut short (%v)", ErrBackupInvalid, err)
	}
	h, err := parseBackupHeader(hb)
	if err != nil {
		return h, err
	}
	if h.Size > max {
		return h, fmt.Errorf("%w: %d bytes of snapshot, at most %d", ErrBackupTooLarge, h.Size, max)
	}
	hash.Write(hb)
	n, err := io.CopyN(io.MultiWriter(dst, hash), r, h.Size)
	if err != nil {
		if n < h.Size && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
			return h, fmt.Errorf("%w: cut short after %d of %d snapshot bytes", ErrBackupInvalid, n, h.Size)
		}
		return h, err // the reader's or the writer's own failure
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(r, sum); err != nil {
		return h, fmt.Errorf("%w: checksum cut short (%v)", ErrBackupInvalid, err)
	}
	if !bytes.Equal(sum, hash.Sum(nil)) {
		return h, fmt.Errorf("%w: checksum mismatch", ErrBackupInvalid)
	}
	return h, nil
}

// Backup is a shard snapshot opened for writing out: WriteTo writes the
// backup stream (Header.Len bytes) and Close releases the snapshot file.
type Backup struct {
	Header BackupHeader
	rc     io.ReadCloser
}

// WriteTo writes the whole backup stream to w.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	hash := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, hash), frameTarget)
	cw := &countingWriter{w: bw}
	if _, err := cw.Write(b.Header.append(nil)); err != nil {
		return cw.n, err
	}
	if _, err := io.CopyN(cw, b.rc, b.Header.Size); err != nil {
		return cw.n, fmt.Errorf("raftstore: read snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	n, err := w.Write(hash.Sum(nil))
	return cw.n + int64(n), err
}

// Close releases the snapshot.
func (b *Backup) Close() error { return b.rc.Close() }

// backupWaitMax bounds the waits of a backup or a restore on Raft (its
// snapshot, its restore): generous, since they write the whole state.
const backupWaitMax = 10 * time.Minute

// OpenBackup takes a consistent snapshot of the shard on its leader: it
// commits a barrier (everything committed before is applied), has Raft
// snapshot the FSM, and opens that snapshot. Raft's snapshot compacts the
// log as a scheduled one would. sale.ErrNotLeader when this node does not
// lead the shard. The caller must Close the Backup.
func (sh *Shard) OpenBackup(ctx context.Context) (*Backup, error) {
	if !sh.Ready() {
		return nil, sale.ErrNotLeader
	}
	if err := sh.raft.Barrier(sh.cfg.ApplyTimeout).Error(); err != nil {
		return nil, fmt.Errorf("raftstore: backup barrier: %w", mapRaftError(err))
	}
	f := sh.raft.Snapshot()
	if err := sh.waitRaft(ctx, f.Error); err != nil {
		return nil, fmt.Errorf("raftstore: backup snapshot: %w", err)
	}
	meta, rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("raftstore: open snapshot: %w", err)
	}
	h := BackupHeader{Shards: sh.cfg.Shards, Shard: sh.id, Index: meta.Index, Term: meta.Term, Size: meta.Size, Created: sh.cfg.Now().UTC()}
	return &Backup{Header: h, rc: rc}, nil
}

// RestoreBackup replaces the shard's state, on its leader, with the
// backup read from r: every replica ends with the backup's state, and the
// log continues past both the backup's index and the group's own last
// index (hashicorp/raft's Restore), so no order confirmed afterwards can
// take the ID of a restored one.
//
// Before Raft sees anything it reads the whole backup into a file in the
// shard's directory, checks its header (this shard, this shard count, at
// most max bytes of snapshot) and its checksum, and decodes it into a
// scratch state machine (hashicorp/raft panics on a snapshot its FSM
// cannot restore); a refusal changes nothing and wraps ErrBackupMismatch,
// ErrBackupInvalid or ErrBackupTooLarge. Purchases in flight when the
// restore happens end with sale.ErrUnavailable (Raft aborts them; the
// restored state does not hold them). The caller tells the engine, so that
// item actors re-read the state (actors.Engine.OnRestore).
func (sh *Shard) RestoreBackup(ctx context.Context, r io.Reader, max int64) (BackupHeader, error) {
	if !sh.Ready() {
		return BackupHeader{}, sale.ErrNotLeader
	}
	dir := filepath.Join(sh.cfg.DataDir, "raft", strconv.Itoa(sh.id))
	f, err := os.CreateTemp(dir, "restore-*.tmp")
	if err != nil {
		return BackupHeader{}, fmt.Errorf("raftstore: restore: %w", err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	bw := bufio.NewWriterSize(f, frameTarget)
	h, err := ReadBackup(bw, r, max)
	if err != nil {
		return h, err
	}
	if h.Shards != sh.cfg.Shards || h.Shard != sh.id {
		return h, fmt.Errorf("%w: a backup of shard %d of %d, restored to shard %d of %d", ErrBackupMismatch, h.Shard, h.Shards, sh.id, sh.cfg.Shards)
	}
	if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
		return h, fmt.Errorf("%w: data after the checksum", ErrBackupInvalid)
	}
	if err := bw.Flush(); err != nil {
		return h, fmt.Errorf("raftstore: restore: %w", err)
	}
	if err := sh.checkSnapshot(f, h); err != nil {
		return h, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return h, fmt.Errorf("raftstore: restore: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: h.Index, Term: h.Term, Size: h.Size}
	sh.guard.mu.Lock()
	defer sh.guard.mu.Unlock()
	if !sh.Ready() {
		return h, sale.ErrNotLeader
	}
	// Not cut short by ctx: the guard must hold, and the file stay, until
	// Raft is done with both, or a flusher could commit a watermark read
	// before the restore over the restored outbox. The call is bounded by
	// Raft: ApplyTimeout to be taken up, then the restore itself, which a
	// shutdown ends.
	err = sh.raft.Restore(meta, f, sh.cfg.ApplyTimeout)
	// Whatever the answer, the state may have changed: a watermark read
	// before must not be committed after.
	sh.guard.gen.Add(1)
	if err != nil {
		return h, fmt.Errorf("raftstore: restore: %w", mapRaftError(err))
	}
	// Raft.Restore installs the snapshot on this leader only; the
	// followers take it when replication finds the gap in their logs. A
	// leader lost before a quorum has it would hand the group to a
	// follower with the old state, and the restore would be gone: answer
	// only once an entry after it commits.
	if err := sh.waitRaft(ctx, func() error { return sh.raft.Barrier(backupWaitMax).Error() }); err != nil {
		return h, fmt.Errorf("raftstore: restore applied on the leader, not yet on a quorum: %w", sale.ErrUnknownOutcome)
	}
	return h, nil
}

// checkSnapshot decodes the FSM snapshot in f (after the header) into a
// scratch state machine: Raft must never be handed one its FSM refuses.
// The snapshot's own applied index must not pass the header's index, which
// is what keeps restored order IDs below the log's next entries.
func (sh *Shard) checkSnapshot(f *os.File, h BackupHeader) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("raftstore: restore: %w", err)
	}
	scratch := NewFSM(sh.id, sh.cfg.FSM)
	if err := scratch.Restore(io.NopCloser(io.LimitReader(f, h.Size))); err != nil {
		return fmt.Errorf("%w: %v", ErrBackupInvalid, err)
	}
	if applied := scratch.AppliedIndex(); applied > h.Index {
		return fmt.Errorf("%w: the snapshot holds entries up to %d, past its index %d", ErrBackupInvalid, applied, h.Index)
	}
	return nil
}

// waitRaft waits for a Raft call that has no deadline of its own, at most
// backupWaitMax, until ctx ends or the shard closes. The call goes on in
// the background when the wait gives up: Raft finishes it or shuts down.
func (sh *Shard) waitRaft(ctx context.Context, call func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- call() }()
	timer := time.NewTimer(backupWaitMax)
	defer timer.Stop()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w (Raft may still complete it)", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%w: no answer within %s (Raft may still complete it)", sale.ErrUnknownOutcome, backupWaitMax)
	case <-sh.stop:
		return sale.ErrUnknownOutcome
	}
}

// backupGuard keeps the order flusher from committing, after a restore,
// a watermark it read from the state before: the restored outbox numbers
// its entries afresh, and a stale MarkFlushed would drop restored orders
// the store never received. Unflushed notes the restore generation;
// MarkFlushed refuses when it has moved, and holds mu for reading from the
// check to the commit so that a restore (which holds it for writing) never
// falls in between. The flusher then reads the restored outbox and goes on.
type backupGuard struct {
	mu   sync.RWMutex
	gen  atomic.Uint64 // restores done
	seen atomic.Uint64 // gen when the outbox was last read
}

// noteRead records that the outbox is about to be read.
func (g *backupGuard) noteRead() { g.seen.Store(g.gen.Load()) }

// markFlushed runs commit unless a restore happened since the outbox was
// read.
func (g *backupGuard) markFlushed(commit func() error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.seen.Load() != g.gen.Load() {
		return errRestored
	}
	return commit()
}
