package raftstore

import (
	"bytes"
	"container/heap"
	"encoding/gob"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Snapshots: the whole state, gob-encoded in memory on the FSM goroutine,
// written by Persist; Restore replaces the state with one. Expiring
// memories are kept in their expiry order so that a restored replica
// forgets the same keys at the same entry as the others.

// snapshotState is the serialized form of the FSM. Slices, not maps, so
// the dedup expiry order survives a restore.
type snapshotState struct {
	Items       []sale.Item
	Bought      []boughtRecord
	Dedup       []dedupRecord
	Pending     []orders.Order
	FlushedUpTo uint64
	LastStamp   int64
	Applied     uint64 // log index the state reflects
	NextSeq     uint64
	Changes     []uint64 // outbox Seqs that change an order already stored
	Awaiting    []orders.Order
	Settled     []settledRecord // in settling order
	Recent      []settledRecord // flushed orders kept readable, in flush order
}

// settledRecord is an order remembered until Expires: settled orders, and
// flushed orders kept readable.
type settledRecord struct {
	Expires int64
	Order   orders.Order
}

// boughtRecord is the units a user holds of an item.
type boughtRecord struct {
	Item, User string
	Quantity   int32
}

// dedupRecord is a remembered request ID and its order.
type dedupRecord struct {
	User, Item, Request string
	Expires             int64
	Order               orders.Order
}

// Snapshot captures the state. Raft calls it on the FSM goroutine, so it
// blocks Apply while it runs: the state is encoded here, in memory, and
// Persist only writes bytes.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	s := snapshotState{
		Items:       make([]sale.Item, 0, len(f.mu.items)),
		Bought:      make([]boughtRecord, 0, len(f.mu.bought)),
		Pending:     f.mu.pending,
		FlushedUpTo: f.mu.flushedUpTo,
		LastStamp:   f.mu.lastStamp,
		Applied:     f.applied.Load(),
		NextSeq:     f.mu.nextSeq,
	}
	for seq := range f.mu.changes {
		s.Changes = append(s.Changes, seq)
	}
	sort.Slice(s.Changes, func(i, j int) bool { return s.Changes[i] < s.Changes[j] })
	for _, o := range f.mu.awaiting {
		s.Awaiting = append(s.Awaiting, o)
	}
	sort.Slice(s.Awaiting, func(i, j int) bool { return s.Awaiting[i].ID < s.Awaiting[j].ID })
	for _, ref := range f.mu.settledQueue.live() {
		if o, ok := f.mu.settled[ref.key]; ok {
			s.Settled = append(s.Settled, settledRecord{Expires: ref.expires, Order: o})
		}
	}
	for _, ref := range f.mu.recentQueue.live() {
		if e, ok := f.mu.recent[ref.key]; ok && e.expires == ref.expires {
			s.Recent = append(s.Recent, settledRecord{Expires: ref.expires, Order: e.order})
		}
	}
	for _, it := range f.mu.items {
		s.Items = append(s.Items, *it)
	}
	for k, q := range f.mu.bought {
		s.Bought = append(s.Bought, boughtRecord{k.item, k.user, q})
	}
	for _, ref := range f.mu.dedupQueue.live() {
		if e, ok := f.mu.dedup[ref.key]; ok && e.expires == ref.expires {
			s.Dedup = append(s.Dedup, dedupRecord{ref.key.user, ref.key.item, ref.key.request, e.expires, e.order})
		}
	}
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(&s)
	f.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("raftstore: encode snapshot: %w", err)
	}
	return &fsmSnapshot{data: buf.Bytes()}, nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s snapshotState
	if err := gob.NewDecoder(rc).Decode(&s); err != nil {
		return fmt.Errorf("raftstore: decode snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resetLocked()
	for i := range s.Items {
		it := s.Items[i]
		f.mu.items[it.ID] = &it
	}
	for _, b := range s.Bought {
		f.mu.bought[userItem{b.Item, b.User}] = b.Quantity
	}
	for _, d := range s.Dedup {
		k := userRequest{d.User, d.Item, d.Request}
		f.mu.dedup[k] = dedupEntry{order: d.Order, expires: d.Expires}
		f.mu.dedupQueue.push(k, d.Expires)
	}
	f.mu.pending = s.Pending
	for _, o := range s.Pending {
		f.mu.pendingSeq[o.ID] = o.Seq // ascending: the last is the latest
	}
	for _, seq := range s.Changes {
		f.mu.changes[seq] = true
	}
	f.mu.nextSeq = s.NextSeq
	for _, o := range s.Awaiting {
		f.mu.awaiting[o.ID] = o
		f.mu.deadlines = append(f.mu.deadlines, deadline{at: o.PayBy.UnixNano(), id: o.ID})
	}
	heap.Init(&f.mu.deadlines)
	for _, r := range s.Settled {
		f.mu.settled[r.Order.ID] = r.Order
		f.mu.settledQueue.push(r.Order.ID, r.Expires)
	}
	for _, r := range s.Recent {
		f.mu.recent[r.Order.ID] = recentOrder{order: r.Order, expires: r.Expires}
		f.mu.recentQueue.push(r.Order.ID, r.Expires)
	}
	f.mu.flushedUpTo = s.FlushedUpTo
	f.mu.lastStamp = s.LastStamp
	f.applied.Store(s.Applied)
	return nil
}

// fsmSnapshot is an encoded state waiting to be persisted.
type fsmSnapshot struct{ data []byte }

// Persist writes the encoded state to sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	return sink.Close()
}

// Release is a no-op: the bytes are garbage once unreferenced.
func (s *fsmSnapshot) Release() {}

// Dump returns the FSM's whole state in a canonical encoding: two FSMs that
// applied the same log return the same bytes, and two that differ in any
// remembered item, buyer, request ID, order, watermark or command time
// return different bytes. Snapshot's own bytes do not compare: they list
// items and buyers in map order. Dump is for tests and debugging (it is
// how raftstoretest compares replicas); it costs a snapshot plus a sort.
//
// Called from another goroutine than Raft's, it may see an entry's effects
// an instant before the applied index that goes with them.
func (f *FSM) Dump() ([]byte, error) {
	snap, err := f.Snapshot()
	if err != nil {
		return nil, err
	}
	var s snapshotState
	if err := gob.NewDecoder(bytes.NewReader(snap.(*fsmSnapshot).data)).Decode(&s); err != nil {
		return nil, fmt.Errorf("raftstore: decode snapshot: %w", err)
	}
	sort.Slice(s.Items, func(i, j int) bool { return s.Items[i].ID < s.Items[j].ID })
	sort.Slice(s.Bought, func(i, j int) bool {
		a, b := s.Bought[i], s.Bought[j]
		if a.Item != b.Item {
			return a.Item < b.Item
		}
		return a.User < b.User
	})
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&s); err != nil {
		return nil, fmt.Errorf("raftstore: encode dump: %w", err)
	}
	return buf.Bytes(), nil
}
