package raftstore

import (
	"bytes"
	"container/heap"
	"encoding/gob"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// PurchaseResult is the Apply response for one purchase of a batch.
type PurchaseResult struct {
	Outcome sale.Outcome
	Order   orders.Order // set when Outcome is Confirmed or Duplicate
}

type userItem struct{ item, user string }

// userRequest keys an idempotent purchase: request IDs are scoped to the
// user and the item, so a shopper may reuse one for another item.
type userRequest struct{ user, item, request string }

type dedupEntry struct {
	order   orders.Order
	expires int64
}

// FSMConfig bounds the state machine's memory.
type FSMConfig struct {
	// DedupRetention is how long a request ID is remembered, in command
	// time. DedupMax caps how many are remembered; the oldest go first.
	DedupRetention time.Duration
	DedupMax       int
	// OrderRetention is how long a flushed order stays readable from the
	// FSM, in command time, at most OrderRetentionMax per shard; older
	// orders are read from the order store.
	OrderRetention    time.Duration
	OrderRetentionMax int
}

// FSM is the replicated state of one shard: items, per-user purchases,
// idempotency keys, and confirmed orders not yet in the order store. It is
// the source of truth for stock; every other copy is a cache.
//
// Apply is deterministic: it reads no clock and no randomness (time is the
// leader's stamp in the command) and produces no side effects. Reads from
// other goroutines take mu for reading.
type FSM struct {
	shard int
	cfg   FSMConfig

	applied atomic.Uint64 // last applied log index

	mu struct {
		sync.RWMutex
		items      map[string]*sale.Item
		bought     map[userItem]int32
		dedup      map[userRequest]dedupEntry
		dedupQueue expiry[userRequest]
		// The outbox: changes not yet in the order store (new orders,
		// status changes), ascending Seq. pendingSeq maps an order ID to
		// the Seq of its latest entry.
		pending     []orders.Order
		pendingSeq  map[uint64]uint64
		changes     map[uint64]bool // Seqs of entries that change an order already stored
		nextSeq     uint64
		flushedUpTo uint64 // a Seq
		lastStamp   int64

		// Payment window: unpaid orders, their deadlines (a min-heap), and
		// recently settled orders (paid or expired), remembered like
		// request IDs so that a late pay gets a definite answer.
		awaiting     map[uint64]orders.Order
		deadlines    deadlineHeap
		settled      map[uint64]orders.Order
		settledQueue expiry[uint64]

		// Flushed orders kept readable for OrderRetention.
		recent      map[uint64]recentOrder
		recentQueue expiry[uint64]
	}
}

type recentOrder struct {
	order   orders.Order
	expires int64
}

// deadline is an unpaid order's expiry; deadlineHeap is ordered by it, then
// by order ID, so every replica pops in the same order.
type deadline struct {
	at int64
	id uint64
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].id < h[j].id
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)   { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// NewFSM returns an empty state machine for shard.
func NewFSM(shard int, cfg FSMConfig) *FSM {
	f := &FSM{shard: shard, cfg: cfg}
	f.resetLocked()
	return f
}

func (f *FSM) resetLocked() {
	f.mu.items = make(map[string]*sale.Item)
	f.mu.bought = make(map[userItem]int32)
	f.mu.dedup = make(map[userRequest]dedupEntry)
	f.mu.dedupQueue.reset()
	f.mu.pending = nil
	f.mu.pendingSeq = make(map[uint64]uint64)
	f.mu.changes = make(map[uint64]bool)
	f.mu.nextSeq = 0
	f.mu.flushedUpTo = 0
	f.mu.lastStamp = 0
	f.mu.awaiting = make(map[uint64]orders.Order)
	f.mu.deadlines = nil
	f.mu.settled = make(map[uint64]orders.Order)
	f.mu.settledQueue.reset()
	f.mu.recent = make(map[uint64]recentOrder)
	f.mu.recentQueue.reset()
}

// Apply applies one committed log entry. An entry that does not decode means
// the replicas would drift, so it panics.
func (f *FSM) Apply(l *raft.Log) any {
	defer f.applied.Store(l.Index)
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raftstore: shard %d index %d: %v", f.shard, l.Index, err))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c := cmd.(type) {
	case *CreateItem:
		f.advanceLocked(c.Stamp)
		return f.createItemLocked(c)
	case *PurchaseBatch:
		now := f.advanceLocked(c.Stamp)
		return f.purchaseLocked(l.Index, now, c)
	case *MarkFlushed:
		f.advanceLocked(c.Stamp)
		f.markFlushedLocked(c.UpTo)
		return nil
	case *Restock:
		f.advanceLocked(c.Stamp)
		return f.restockLocked(c)
	case *Pay:
		now := f.advanceLocked(c.Stamp)
		return f.payLocked(c, now)
	case *Expire:
		now := f.advanceLocked(c.Stamp)
		return f.expireLocked(now)
	case *SetPaused:
		f.advanceLocked(c.Stamp)
		it, ok := f.mu.items[c.ItemID]
		if !ok {
			return sale.ErrItemNotFound
		}
		it.Paused = c.Paused
		return *it
	}
	panic(fmt.Sprintf("raftstore: shard %d index %d: unhandled command %T", f.shard, l.Index, cmd))
}

// advanceLocked moves command time forward and expires old request IDs.
// Time never goes backwards, even if a new leader's clock is behind.
func (f *FSM) advanceLocked(stamp int64) int64 {
	if stamp > f.mu.lastStamp {
		f.mu.lastStamp = stamp
	}
	now := f.mu.lastStamp
	f.mu.dedupQueue.trim(now, func() bool { return len(f.mu.dedup) > f.cfg.DedupMax },
		func(k userRequest, exp int64) {
			if e, ok := f.mu.dedup[k]; ok && e.expires == exp {
				delete(f.mu.dedup, k)
			}
		})
	f.mu.settledQueue.trim(now, func() bool { return len(f.mu.settled) > f.cfg.DedupMax },
		func(id uint64, _ int64) { delete(f.mu.settled, id) }) // each order settles once
	f.mu.recentQueue.trim(now, func() bool { return len(f.mu.recent) > f.cfg.OrderRetentionMax },
		func(id uint64, exp int64) {
			if e, ok := f.mu.recent[id]; ok && e.expires == exp {
				delete(f.mu.recent, id)
			}
		})
	return now
}

func (f *FSM) createItemLocked(c *CreateItem) any {
	if _, ok := f.mu.items[c.ID]; ok {
		return sale.ErrItemExists
	}
	it := &sale.Item{
		ID:           c.ID,
		Name:         c.Name,
		Stock:        c.Stock,
		Remaining:    c.Stock,
		PerUserLimit: c.PerUserLimit,
		StartsAt:     c.StartsAt,
		EndsAt:       c.EndsAt,
		CreatedAt:    c.Stamp,
	}
	f.mu.items[c.ID] = it
	return *it
}

func (f *FSM) restockLocked(c *Restock) any {
	it, ok := f.mu.items[c.ItemID]
	if !ok {
		return sale.ErrItemNotFound
	}
	if it.Remaining+c.Delta < 0 {
		return sale.ErrInvalidStock
	}
	it.Stock += c.Delta
	it.Remaining += c.Delta
	return *it
}

func (f *FSM) purchaseLocked(index uint64, now int64, b *PurchaseBatch) []PurchaseResult {
	res := make([]PurchaseResult, len(b.Purchases))
	it := f.mu.items[b.ItemID]
	for i := range b.Purchases {
		p := &b.Purchases[i]
		var key userRequest
		if p.RequestID != "" {
			key = userRequest{p.UserID, b.ItemID, p.RequestID}
			if e, ok := f.mu.dedup[key]; ok {
				res[i] = PurchaseResult{Outcome: sale.OutcomeDuplicate, Order: e.order}
				continue
			}
		}
		if it == nil {
			res[i].Outcome = sale.OutcomeItemNotFound
			continue
		}
		ui := userItem{b.ItemID, p.UserID}
		had := f.mu.bought[ui]
		if err := sale.Admit(it, p.Quantity, had, now); err != nil {
			res[i].Outcome = sale.OutcomeOf(err)
			continue
		}
		it.Remaining -= int64(p.Quantity)
		f.mu.bought[ui] = had + p.Quantity
		o := orders.Order{
			ID:        orders.MakeID(f.shard, index, i),
			ItemID:    b.ItemID,
			UserID:    p.UserID,
			RequestID: p.RequestID,
			Quantity:  p.Quantity,
			Status:    orders.StatusConfirmed,
			CreatedAt: time.Unix(0, now).UTC(),
			Shard:     f.shard,
			LogIndex:  index,
		}
		if b.PayWindow > 0 {
			o.PayBy = time.Unix(0, now+b.PayWindow).UTC()
			f.mu.awaiting[o.ID] = o
			heap.Push(&f.mu.deadlines, deadline{at: now + b.PayWindow, id: o.ID})
		}
		f.outboxLocked(o, false)
		if p.RequestID != "" {
			exp := now + int64(f.cfg.DedupRetention)
			f.mu.dedup[key] = dedupEntry{order: o, expires: exp}
			f.mu.dedupQueue.push(key, exp)
		}
		res[i] = PurchaseResult{Outcome: sale.OutcomeConfirmed, Order: o}
	}
	return res
}

// outboxLocked queues a change of o for the order store. A change to an
// order still waiting in the outbox updates that entry instead, so the
// store sees each order's latest state.
func (f *FSM) outboxLocked(o orders.Order, change bool) {
	if seq, ok := f.mu.pendingSeq[o.ID]; ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			f.mu.pending[i].Status = o.Status
			return
		}
	}
	f.mu.nextSeq++
	o.Seq = f.mu.nextSeq
	f.mu.pending = append(f.mu.pending, o)
	f.mu.pendingSeq[o.ID] = o.Seq
	if change {
		f.mu.changes[o.Seq] = true
	}
}

func (f *FSM) pendingIndexLocked(seq uint64) int {
	p := f.mu.pending
	i := sort.Search(len(p), func(i int) bool { return p[i].Seq >= seq })
	if i < len(p) && p[i].Seq == seq {
		return i
	}
	return -1
}

// settleLocked records an order's final status (paid, expired): out of
// the payment window, into the outbox and the settled memory, and into the
// remembered request so a replay shows the current status.
func (f *FSM) settleLocked(o orders.Order, now int64) {
	delete(f.mu.awaiting, o.ID)
	f.mu.settled[o.ID] = o
	f.mu.settledQueue.push(o.ID, now+int64(f.cfg.DedupRetention))
	f.outboxLocked(o, true)
	if o.RequestID != "" {
		key := userRequest{o.UserID, o.ItemID, o.RequestID}
		if e, ok := f.mu.dedup[key]; ok && e.order.ID == o.ID {
			e.order.Status = o.Status
			f.mu.dedup[key] = e
		}
	}
}

// payLocked pays an order in its window. Paying after the deadline, even
// before the Expire command that would have caught it, expires the order:
// whichever of pay and expiry comes first in the log decides, the same way
// on every replica.
func (f *FSM) payLocked(c *Pay, now int64) any {
	if o, ok := f.mu.awaiting[c.OrderID]; ok {
		if o.UserID != c.UserID {
			return sale.ErrOrderNotFound
		}
		if now >= o.PayBy.UnixNano() {
			f.expireOneLocked(o, now)
			return sale.ErrOrderExpired
		}
		o.Status = orders.StatusPaid
		f.settleLocked(o, now)
		return o
	}
	if o, ok := f.mu.settled[c.OrderID]; ok && o.UserID == c.UserID {
		if o.Status == orders.StatusExpired {
			return sale.ErrOrderExpired
		}
		return o // paid already: paying again is a no-op
	}
	return sale.ErrOrderNotFound
}

// expireLocked expires every unpaid order whose deadline is at or before
// now, and returns how many.
func (f *FSM) expireLocked(now int64) int {
	n := 0
	for len(f.mu.deadlines) > 0 && f.mu.deadlines[0].at <= now {
		d := heap.Pop(&f.mu.deadlines).(deadline)
		if o, ok := f.mu.awaiting[d.id]; ok {
			f.expireOneLocked(o, now)
			n++
		}
	}
	return n
}

// expireOneLocked returns an unpaid order's stock to the sale and to the
// buyer's per-user allowance.
func (f *FSM) expireOneLocked(o orders.Order, now int64) {
	if it, ok := f.mu.items[o.ItemID]; ok {
		it.Remaining += int64(o.Quantity)
	}
	ui := userItem{o.ItemID, o.UserID}
	if left := f.mu.bought[ui] - o.Quantity; left > 0 {
		f.mu.bought[ui] = left
	} else {
		delete(f.mu.bought, ui)
	}
	o.Status = orders.StatusExpired
	f.settleLocked(o, now)
}

func (f *FSM) markFlushedLocked(upTo uint64) {
	if upTo <= f.mu.flushedUpTo {
		return
	}
	f.mu.flushedUpTo = upTo
	p := f.mu.pending
	n := sort.Search(len(p), func(i int) bool { return p[i].Seq > upTo })
	if n == 0 {
		return
	}
	exp := f.mu.lastStamp + int64(f.cfg.OrderRetention)
	for _, o := range p[:n] {
		if f.mu.pendingSeq[o.ID] == o.Seq {
			delete(f.mu.pendingSeq, o.ID)
			if f.cfg.OrderRetention > 0 {
				f.mu.recent[o.ID] = recentOrder{order: o, expires: exp}
				f.mu.recentQueue.push(o.ID, exp)
			}
		}
		delete(f.mu.changes, o.Seq)
	}
	// Copy the tail so the flushed prefix does not pin memory.
	f.mu.pending = append([]orders.Order(nil), p[n:]...)
}

// NextDeadline returns the earliest payment deadline, unix nanoseconds,
// and false when no order awaits payment.
func (f *FSM) NextDeadline() (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.mu.deadlines) == 0 {
		return 0, false
	}
	return f.mu.deadlines[0].at, true
}

// OrderState returns the latest state of an order this FSM still holds:
// awaiting payment, recently settled, or waiting in the outbox.
func (f *FSM) OrderState(id uint64) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if o, ok := f.mu.awaiting[id]; ok {
		return o, true
	}
	if o, ok := f.mu.settled[id]; ok {
		return o, true
	}
	if seq, ok := f.mu.pendingSeq[id]; ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			return f.mu.pending[i], true
		}
	}
	if e, ok := f.mu.recent[id]; ok {
		return e.order, true
	}
	return orders.Order{}, false
}

// AppliedIndex returns the index of the last applied log entry.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Item returns a copy of the item.
func (f *FSM) Item(id string) (sale.Item, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.mu.items[id]
	if !ok {
		return sale.Item{}, false
	}
	return *it, true
}

// Items returns copies of all items, sorted by ID.
func (f *FSM) Items() []sale.Item {
	f.mu.RLock()
	out := make([]sale.Item, 0, len(f.mu.items))
	for _, it := range f.mu.items {
		out = append(out, *it)
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Admission is what a purchase's answer may be decided from without a
// Raft round, read under one lock: the original order of a remembered
// request, the item, and the number of orders waiting for the store.
type Admission struct {
	Original  orders.Order
	Duplicate bool // the request ID is remembered; Original is its order
	Item      sale.Item
	Found     bool // the item exists
	Pending   int
}

// Admission reads the state a purchase of item by user, with an optional
// request ID, can be answered from.
func (f *FSM) Admission(item, user, request string) Admission {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var a Admission
	if request != "" {
		if e, ok := f.mu.dedup[userRequest{user, item, request}]; ok {
			a.Original, a.Duplicate = e.order, true
			return a
		}
	}
	if it, ok := f.mu.items[item]; ok {
		a.Item, a.Found = *it, true
	}
	a.Pending = len(f.mu.pending)
	return a
}

// Remaining returns the committed remaining stock of an item, and false if
// the item does not exist.
func (f *FSM) Remaining(id string) (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	it, ok := f.mu.items[id]
	if !ok {
		return 0, false
	}
	return it.Remaining, true
}

// Bought returns how many units of item the user holds.
func (f *FSM) Bought(item, user string) int32 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.bought[userItem{item, user}]
}

// LookupRequest returns the order a user's request ID for an item
// produced, if it is still remembered.
func (f *FSM) LookupRequest(item, user, request string) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	e, ok := f.mu.dedup[userRequest{user, item, request}]
	return e.order, ok
}

// LookupOrder returns an order Raft still holds: waiting for the order store
// (stored false), or awaiting payment or settled and already stored.
func (f *FSM) LookupOrder(id uint64) (o orders.Order, stored, ok bool) {
	if o, ok := f.PendingOrder(id); ok {
		return o, false, true
	}
	if o, ok := f.OrderState(id); ok {
		return o, true, true
	}
	return orders.Order{}, false, false
}

// PendingOrder returns an order whose latest change is not yet flushed.
func (f *FSM) PendingOrder(id uint64) (orders.Order, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if seq, ok := f.mu.pendingSeq[id]; ok {
		if i := f.pendingIndexLocked(seq); i >= 0 {
			return f.mu.pending[i], true
		}
	}
	return orders.Order{}, false
}

// PendingByUser returns the unflushed orders of a user.
func (f *FSM) PendingByUser(user string) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []orders.Order
	for _, o := range f.mu.pending {
		if o.UserID == user {
			out = append(out, o)
		}
	}
	return out
}

// PendingUnits returns, per item, how many units the order store is
// missing of Raft's sales because of what waits in the outbox: new orders
// not yet written count plus, expiries of orders the store holds as
// sold count minus. After the outbox drains it is zero.
func (f *FSM) PendingUnits() map[string]int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]int64)
	for _, o := range f.mu.pending {
		if o.Seq != f.mu.pendingSeq[o.ID] {
			continue
		}
		change := f.mu.changes[o.Seq]
		switch {
		case !change && o.Status != orders.StatusExpired:
			out[o.ItemID] += int64(o.Quantity)
		case change && o.Status == orders.StatusExpired:
			out[o.ItemID] -= int64(o.Quantity)
		}
	}
	return out
}

// PendingCount returns the number of confirmed orders not yet flushed.
func (f *FSM) PendingCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.mu.pending)
}

// Unflushed returns up to max of the oldest confirmed orders not yet
// flushed, in ID order.
func (f *FSM) Unflushed(max int) []orders.Order {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.mu.pending
	if len(p) > max {
		p = p[:max]
	}
	return append([]orders.Order(nil), p...)
}

// FlushedUpTo returns the flushed watermark: every order with an ID up to
// it is in the order store.
func (f *FSM) FlushedUpTo() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.flushedUpTo
}

// Stats is a summary of the state for status pages and metrics.
type Stats struct {
	Items       int
	Awaiting    int // orders awaiting payment
	Pending     int
	DedupKeys   int
	BuyerRows   int
	FlushedUpTo uint64
	Applied     uint64
}

// Stats returns a summary of the state.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{
		Items:       len(f.mu.items),
		Awaiting:    len(f.mu.awaiting),
		Pending:     len(f.mu.pending),
		DedupKeys:   len(f.mu.dedup),
		BuyerRows:   len(f.mu.bought),
		FlushedUpTo: f.mu.flushedUpTo,
		Applied:     f.applied.Load(),
	}
}

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

type settledRecord struct {
	Expires int64
	Order   orders.Order
}

type boughtRecord struct {
	Item, User string
	Quantity   int32
}

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

type fsmSnapshot struct{ data []byte }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
