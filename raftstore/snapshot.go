package raftstore

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/internal/wire"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// Snapshots. Snapshot runs on the FSM goroutine, Apply waiting: it only
// seals the layered maps and takes the outbox and FIFO slices as they are
// (microseconds, whatever the state's size). Persist, which runs while
// Apply goes on, encodes that view to the sink as a stream of frames;
// Release lets the layers be compacted again. Restore decodes a stream
// into a new state without the lock, then swaps it in, so a follower
// installing a snapshot keeps serving reads until the swap.
//
// The stream: snapshotMagic, then frames of [kind byte][uvarint length]
// [records of that kind], ending with a frame of kind frameEnd (a stream
// cut short is an error, never a smaller state). Records use the log's
// primitives (internal/wire). Expiring memories are written in their
// expiry order, so a restored replica forgets the same keys at the same
// entry as the others. Snapshots of earlier versions (gob) still restore.

// snapshotMagic starts a snapshot stream of this format.
const snapshotMagic = "flashstock-fsm-2\n"

// Frame kinds.
const (
	frameHeader byte = iota + 1
	frameItem
	frameBuyer
	frameRequestRef // the request IDs' FIFO
	frameRequest
	frameOutbox
	frameAwaiting
	frameSettledRef
	frameSettled
	frameRecentRef
	frameRecent
	frameModes // the log's mode switches (CmdOutboxAppend); absent: none
	frameEnd   = 0xff
)

// modeAppendChanges is the bit of frameModes that CmdOutboxAppend set.
const modeAppendChanges = 1

// frameMax bounds a frame: the writer cuts frames at frameTarget, and one
// record is far below it.
const (
	frameTarget = 64 << 10
	frameMax    = 1 << 20
)

// SnapshotStats is what the last snapshots cost, for metrics and the soak.
type SnapshotStats struct {
	Count        uint64        // snapshots persisted
	LastSnapshot time.Duration // the last Snapshot call: Apply waits this long
	LastPersist  time.Duration // the last Persist: encoding and writing, concurrent with Apply
	LastBytes    int64         // the last snapshot's size
	Failures     uint64        // snapshots that failed to persist (a full disk, say)
}

// snapStats holds SnapshotStats, updated without the FSM lock.
type snapStats struct {
	count             atomic.Uint64
	failures          atomic.Uint64
	snapshot, persist atomic.Int64
	bytes             atomic.Int64
}

// SnapshotStats returns what the last snapshots cost.
func (f *FSM) SnapshotStats() SnapshotStats {
	return SnapshotStats{Count: f.snaps.count.Load(), LastSnapshot: time.Duration(f.snaps.snapshot.Load()),
		LastPersist: time.Duration(f.snaps.persist.Load()), LastBytes: f.snaps.bytes.Load(), Failures: f.snaps.failures.Load()}
}

// fsmSnapshot is a sealed view of the state, waiting to be persisted.
type fsmSnapshot struct {
	f *FSM

	applied, nextSeq, flushedUpTo uint64
	lastStamp                     int64
	items                         []sale.Item

	buyers        layeredView[fingerprint, int32]
	requests      layeredView[fingerprint, dedupEntry]
	requestQ      []expiryRef[fingerprint]
	outbox        []outboxEntry
	outboxNow     layeredView[uint64, orderStatus] // statuses changed while waiting
	appendChanges bool
	awaiting      layeredView[uint64, orders.Order]
	settled       layeredView[uint64, orders.Order]
	settledQ      []expiryRef[uint64]
	recent        layeredView[uint64, recentOrder]
	recentQ       []expiryRef[uint64]
	releaseAll    func() // releases the views, under the FSM's lock
	once          sync.Once
}

// Snapshot seals the state. Raft calls it on the FSM goroutine, so Apply
// waits while it runs: it copies only the items (a few per shard) and takes
// views of everything else in O(1).
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := &f.mu.state
	s := &fsmSnapshot{
		f:             f,
		applied:       f.applied.Load(),
		nextSeq:       st.nextSeq,
		flushedUpTo:   st.flushedUpTo,
		lastStamp:     st.lastStamp,
		items:         make([]sale.Item, 0, len(st.items)),
		buyers:        st.bought.view(),
		requests:      st.dedup.view(),
		requestQ:      st.dedupQueue.live(),
		outbox:        st.live(),
		outboxNow:     st.pendingStatus.view(),
		appendChanges: st.appendChanges,
		awaiting:      st.awaiting.view(),
		settled:       st.settled.view(),
		settledQ:      st.settledQueue.live(),
		recent:        st.recent.view(),
		recentQ:       st.recentQueue.live(),
	}
	for _, it := range st.items {
		s.items = append(s.items, *it)
	}
	// The views belong to these maps, even if Restore replaces the state
	// before Release.
	bought, dedup, awaiting, settled, recent, status := st.bought, st.dedup, st.awaiting, st.settled, st.recent, st.pendingStatus
	s.releaseAll = func() {
		status.release()
		bought.release()
		dedup.release()
		awaiting.release()
		settled.release()
		recent.release()
	}
	f.snapBytes.Store(f.appliedBytes.Load())
	f.snaps.snapshot.Store(int64(time.Since(start)))
	return s, nil
}

// Persist encodes the view to sink. It runs concurrently with Apply and
// holds no lock.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	cw := &countingWriter{w: sink}
	if err := s.write(cw, false); err != nil {
		sink.Cancel()
		s.f.persistFailed(err)
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		s.f.persistFailed(err)
		return fmt.Errorf("raftstore: close snapshot: %w", err)
	}
	s.f.snaps.persist.Store(int64(time.Since(start)))
	s.f.snaps.bytes.Store(cw.n)
	s.f.snaps.count.Add(1)
	return nil
}

// persistFailed counts a snapshot that could not be written and tells the
// store's disk monitor.
func (f *FSM) persistFailed(err error) {
	f.snaps.failures.Add(1)
	if f.onWriteError != nil {
		f.onWriteError(err)
	}
}

// Release returns the view: the layers below it may be compacted again.
func (s *fsmSnapshot) Release() {
	s.once.Do(func() {
		s.f.mu.Lock()
		s.releaseAll()
		s.f.mu.Unlock()
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// write encodes the view. canonical sorts what maps hold in no order, so
// that equal states give equal bytes (Dump); Persist does not need it.
func (s *fsmSnapshot) write(w io.Writer, canonical bool) error {
	fw := &frameWriter{w: bufio.NewWriterSize(w, frameTarget)}
	if _, err := fw.w.WriteString(snapshotMagic); err != nil {
		return err
	}
	fw.record(frameHeader, func(b []byte) []byte {
		b = binary.AppendUvarint(b, s.applied)
		b = binary.AppendVarint(b, s.lastStamp)
		b = binary.AppendUvarint(b, s.nextSeq)
		return binary.AppendUvarint(b, s.flushedUpTo)
	})
	if s.appendChanges {
		fw.record(frameModes, func(b []byte) []byte { return binary.AppendUvarint(b, modeAppendChanges) })
	}
	items := s.items
	if canonical {
		items = slices.Clone(items)
		slices.SortFunc(items, func(a, b sale.Item) int { return cmp.Compare(a.ID, b.ID) })
	}
	for i := range items {
		fw.record(frameItem, func(b []byte) []byte { return appendItem(b, &items[i]) })
	}
	eachOf(s.buyers, canonical, compareFingerprints, func(k fingerprint, n int32) {
		fw.record(frameBuyer, func(b []byte) []byte { return binary.AppendVarint(append(b, k[:]...), int64(n)) })
	})
	for _, r := range s.requestQ {
		fw.record(frameRequestRef, func(b []byte) []byte { return binary.AppendVarint(append(b, r.key[:]...), r.expires) })
	}
	eachOf(s.requests, canonical, compareFingerprints, func(k fingerprint, e dedupEntry) {
		fw.record(frameRequest, func(b []byte) []byte { return appendDedup(append(b, k[:]...), e) })
	})
	for i := range s.outbox {
		e := s.outbox[i]
		if st, ok := s.outboxNow.get(e.order.ID); ok {
			e.order.Status = st.status()
		}
		fw.record(frameOutbox, func(b []byte) []byte { return wire.AppendBool(appendOrder(b, &e.order), e.change) })
	}
	eachOf(s.awaiting, canonical, cmp.Compare[uint64], func(_ uint64, o orders.Order) {
		fw.record(frameAwaiting, func(b []byte) []byte { return appendOrder(b, &o) })
	})
	for _, r := range s.settledQ {
		fw.record(frameSettledRef, func(b []byte) []byte { return binary.AppendVarint(binary.AppendUvarint(b, r.key), r.expires) })
	}
	eachOf(s.settled, canonical, cmp.Compare[uint64], func(_ uint64, o orders.Order) {
		fw.record(frameSettled, func(b []byte) []byte { return appendOrder(b, &o) })
	})
	for _, r := range s.recentQ {
		fw.record(frameRecentRef, func(b []byte) []byte { return binary.AppendVarint(binary.AppendUvarint(b, r.key), r.expires) })
	}
	eachOf(s.recent, canonical, cmp.Compare[uint64], func(_ uint64, r recentOrder) {
		fw.record(frameRecent, func(b []byte) []byte { return binary.AppendVarint(appendOrder(b, &r.order), r.expires) })
	})
	fw.flush()
	fw.frame(frameEnd, nil)
	if fw.err != nil {
		return fw.err
	}
	return fw.w.Flush()
}

// eachOf calls f for every entry of a view: in key order when sorted, in
// the maps' order otherwise.
func eachOf[K comparable, V any](v layeredView[K, V], sorted bool, compare func(a, b K) int, f func(K, V)) {
	if !sorted {
		v.each(func(k K, val V) bool { f(k, val); return true })
		return
	}
	keys := make([]K, 0, v.len())
	vals := make(map[K]V, v.len())
	v.each(func(k K, val V) bool { keys = append(keys, k); vals[k] = val; return true })
	slices.SortFunc(keys, compare)
	for _, k := range keys {
		f(k, vals[k])
	}
}

func compareFingerprints(a, b fingerprint) int { return bytes.Compare(a[:], b[:]) }

// frameWriter gathers records of one kind into frames of about
// frameTarget bytes. It remembers its first error.
type frameWriter struct {
	w    *bufio.Writer
	kind byte
	buf  []byte
	err  error
}

// record appends one record of kind, written by add.
func (fw *frameWriter) record(kind byte, add func([]byte) []byte) {
	if kind != fw.kind || len(fw.buf) >= frameTarget {
		fw.flush()
		fw.kind = kind
	}
	fw.buf = add(fw.buf)
}

func (fw *frameWriter) flush() {
	if len(fw.buf) > 0 {
		fw.frame(fw.kind, fw.buf)
	}
	fw.buf = fw.buf[:0]
}

func (fw *frameWriter) frame(kind byte, payload []byte) {
	if fw.err != nil {
		return
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := fw.w.Write(hdr[:1+n]); err != nil {
		fw.err = err
		return
	}
	_, fw.err = fw.w.Write(payload)
}

func appendItem(b []byte, it *sale.Item) []byte {
	b = wire.AppendString(b, it.ID)
	b = wire.AppendString(b, it.Name)
	b = binary.AppendVarint(b, it.Stock)
	b = binary.AppendVarint(b, it.Remaining)
	b = binary.AppendVarint(b, int64(it.PerUserLimit))
	b = binary.AppendVarint(b, it.StartsAt)
	b = binary.AppendVarint(b, it.EndsAt)
	b = wire.AppendBool(b, it.Paused)
	return binary.AppendVarint(b, it.CreatedAt)
}

func readItem(r *wire.Reader) sale.Item {
	var it sale.Item
	it.ID = r.String(sale.IDLenMax)
	it.Name = r.String(sale.NameLenMax)
	it.Stock = r.Varint()
	it.Remaining = r.Varint()
	it.PerUserLimit = r.Int32()
	it.StartsAt = r.Varint()
	it.EndsAt = r.Varint()
	it.Paused = r.Bool()
	it.CreatedAt = r.Varint()
	return it
}

func appendDedup(b []byte, e dedupEntry) []byte {
	b = binary.AppendUvarint(b, e.orderID)
	b = binary.AppendVarint(b, e.created)
	b = binary.AppendVarint(b, e.payBy)
	b = binary.AppendVarint(b, e.expires)
	b = binary.AppendVarint(b, int64(e.quantity))
	return append(b, byte(e.status))
}

func readDedup(r *wire.Reader) dedupEntry {
	var e dedupEntry
	e.orderID = r.Uvarint()
	e.created = r.Varint()
	e.payBy = r.Varint()
	e.expires = r.Varint()
	e.quantity = r.Int32()
	e.status = orderStatus(readByte(r))
	if e.status < statusConfirmed || e.status > statusCancelled {
		r.Err = wire.ErrMalformed
	}
	return e
}

// appendOrder writes an order; its shard and log index are its ID's.
func appendOrder(b []byte, o *orders.Order) []byte {
	b = binary.AppendUvarint(b, o.ID)
	b = wire.AppendString(b, o.ItemID)
	b = wire.AppendString(b, o.UserID)
	b = wire.AppendString(b, o.RequestID)
	b = binary.AppendVarint(b, int64(o.Quantity))
	b = append(b, byte(statusCode(o.Status)))
	b = binary.AppendVarint(b, o.CreatedAt.UnixNano())
	var payBy int64
	if !o.PayBy.IsZero() {
		payBy = o.PayBy.UnixNano()
	}
	b = binary.AppendVarint(b, payBy)
	return binary.AppendUvarint(b, o.Seq)
}

func readOrder(r *wire.Reader) orders.Order {
	var o orders.Order
	o.ID = r.Uvarint()
	o.ItemID = r.String(sale.IDLenMax)
	o.UserID = r.String(sale.IDLenMax)
	o.RequestID = r.String(sale.IDLenMax)
	o.Quantity = r.Int32()
	o.Status = orderStatus(readByte(r)).status()
	o.CreatedAt = time.Unix(0, r.Varint()).UTC()
	if payBy := r.Varint(); payBy != 0 {
		o.PayBy = time.Unix(0, payBy).UTC()
	}
	o.Seq = r.Uvarint()
	o.Shard, o.LogIndex = orders.ShardOfID(o.ID), orders.IndexOfID(o.ID)
	return o
}

func readByte(r *wire.Reader) byte {
	if len(r.B) == 0 {
		r.Err = wire.ErrMalformed
		return 0
	}
	b := r.B[0]
	r.B = r.B[1:]
	return b
}

func readFingerprint(r *wire.Reader) fingerprint {
	var k fingerprint
	if len(r.B) < len(k) {
		r.Err = wire.ErrMalformed
		r.B = nil
		return k
	}
	copy(k[:], r.B)
	r.B = r.B[len(k):]
	return k
}

// errSnapshot is Restore's error for a stream it cannot read.
var errSnapshot = errors.New("raftstore: malformed snapshot")

// Restore replaces the state with a snapshot. It decodes into a new state
// without the lock, so reads go on until the swap.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, frameTarget)
	var st state
	var applied uint64
	var err error
	if head, _ := br.Peek(len(snapshotMagic)); string(head) == snapshotMagic {
		_, _ = br.Discard(len(snapshotMagic))
		st, applied, err = readSnapshot(br)
	} else {
		st, applied, err = readGobSnapshot(br)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.mu.state = st
	f.mu.Unlock()
	f.applied.Store(applied)
	return nil
}

// readSnapshot decodes a stream of frames into a state.
func readSnapshot(br *bufio.Reader) (state, uint64, error) {
	st := newState()
	var applied uint64
	var payload []byte
	header := false
	for {
		kind, err := br.ReadByte()
		if err != nil {
			return st, 0, fmt.Errorf("%w: cut short (%v)", errSnapshot, err)
		}
		n, err := binary.ReadUvarint(br)
		if err != nil || n > frameMax {
			return st, 0, fmt.Errorf("%w: frame length", errSnapshot)
		}
		if kind == frameEnd {
			if !header || n != 0 {
				return st, 0, fmt.Errorf("%w: no header", errSnapshot)
			}
			st.rebuildPending()
			return st, applied, nil
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return st, 0, fmt.Errorf("%w: cut short (%v)", errSnapshot, err)
		}
		r := &wire.Reader{B: payload}
		for len(r.B) > 0 && r.Err == nil {
			switch kind {
			case frameHeader:
				applied = r.Uvarint()
				st.lastStamp = r.Varint()
				st.nextSeq = r.Uvarint()
				st.flushedUpTo = r.Uvarint()
				header = true
			case frameItem:
				it := readItem(r)
				st.items[it.ID] = &it
			case frameBuyer:
				k := readFingerprint(r)
				st.bought.load(k, r.Int32())
			case frameRequestRef:
				k := readFingerprint(r)
				st.dedupQueue.push(k, r.Varint())
			case frameRequest:
				k := readFingerprint(r)
				st.dedup.load(k, readDedup(r))
			case frameModes:
				modes := r.Uvarint()
				if modes&^modeAppendChanges != 0 {
					r.Err = wire.ErrMalformed
				}
				st.appendChanges = modes&modeAppendChanges != 0
			case frameOutbox:
				o := readOrder(r)
				st.pending = append(st.pending, outboxEntry{order: o, change: r.Bool()})
			case frameAwaiting:
				o := readOrder(r)
				st.awaiting.load(o.ID, o)
			case frameSettledRef:
				id := r.Uvarint()
				st.settledQueue.push(id, r.Varint())
			case frameSettled:
				o := readOrder(r)
				st.settled.load(o.ID, o)
			case frameRecentRef:
				id := r.Uvarint()
				st.recentQueue.push(id, r.Varint())
			case frameRecent:
				o := readOrder(r)
				st.recent.load(o.ID, recentOrder{order: o, expires: r.Varint()})
			default:
				return st, 0, fmt.Errorf("%w: unknown frame %d", errSnapshot, kind)
			}
		}
		if err := r.Done(); err != nil {
			return st, 0, fmt.Errorf("%w: frame %d: %v", errSnapshot, kind, err)
		}
	}
}

// rebuildPending derives what the snapshot does not carry: each order's
// latest outbox entry (the last one, in Seq order) and the deadline heap.
func (st *state) rebuildPending() {
	for i := range st.pending {
		o := &st.pending[i].order
		st.pendingSeq.load(o.ID, o.Seq)
	}
	st.deadlines = st.deadlines[:0]
	st.awaiting.each(func(id uint64, o orders.Order) bool {
		st.deadlines = append(st.deadlines, deadline{at: o.PayBy.UnixNano(), id: id})
		return true
	})
	heap.Init(&st.deadlines)
}

// gobState is the snapshot format before layered maps: one gob value.
// Only Restore reads it, so that a node upgraded in place restores the
// snapshots it wrote before.
type gobState struct {
	Items  []sale.Item
	Bought []struct {
		Item, User string
		Quantity   int32
	}
	Dedup []struct {
		User, Item, Request string
		Expires             int64
		Order               orders.Order
	}
	Pending     []orders.Order
	FlushedUpTo uint64
	LastStamp   int64
	Applied     uint64
	NextSeq     uint64
	Changes     []uint64
	Awaiting    []orders.Order
	Settled     []gobRecord
	Recent      []gobRecord
}

type gobRecord struct {
	Expires int64
	Order   orders.Order
}

// readGobSnapshot decodes a snapshot of the earlier format.
func readGobSnapshot(r io.Reader) (state, uint64, error) {
	var g gobState
	if err := gob.NewDecoder(r).Decode(&g); err != nil {
		return state{}, 0, fmt.Errorf("raftstore: decode snapshot: %w", err)
	}
	st := newState()
	for i := range g.Items {
		it := g.Items[i]
		st.items[it.ID] = &it
	}
	for _, b := range g.Bought {
		st.bought.load(buyerKey(b.Item, b.User), b.Quantity)
	}
	for _, d := range g.Dedup {
		k := requestKey(d.User, d.Item, d.Request)
		st.dedup.load(k, newDedupEntry(d.Order, d.Expires))
		st.dedupQueue.push(k, d.Expires)
	}
	changes := make(map[uint64]bool, len(g.Changes))
	for _, seq := range g.Changes {
		changes[seq] = true
	}
	for _, o := range g.Pending {
		st.pending = append(st.pending, outboxEntry{order: o, change: changes[o.Seq]})
	}
	for _, o := range g.Awaiting {
		st.awaiting.load(o.ID, o)
	}
	for _, r := range g.Settled {
		st.settled.load(r.Order.ID, r.Order)
		st.settledQueue.push(r.Order.ID, r.Expires)
	}
	for _, r := range g.Recent {
		st.recent.load(r.Order.ID, recentOrder{order: r.Order, expires: r.Expires})
		st.recentQueue.push(r.Order.ID, r.Expires)
	}
	st.nextSeq, st.flushedUpTo, st.lastStamp = g.NextSeq, g.FlushedUpTo, g.LastStamp
	st.rebuildPending()
	return st, g.Applied, nil
}

// Dump returns the FSM's whole state in a canonical encoding: two FSMs that
// applied the same log return the same bytes, and two that differ in any
// remembered item, buyer, request ID, order, watermark or command time
// return different bytes. Snapshot's own bytes do not compare: they list
// what maps hold in map order. Dump is for tests and debugging (it is how
// raftstoretest compares replicas).
//
// Called from another goroutine than Raft's, it may see an entry's effects
// an instant before the applied index that goes with them.
func (f *FSM) Dump() ([]byte, error) {
	snap, err := f.Snapshot()
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).write(&buf, true); err != nil {
		return nil, fmt.Errorf("raftstore: dump: %w", err)
	}
	return buf.Bytes(), nil
}
