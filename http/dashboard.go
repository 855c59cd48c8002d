package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashstock/flashstock/internal/metrics"
	"github.com/flashstock/flashstock/orders"
	"github.com/flashstock/flashstock/sale"
)

// The console's sampler: once every consoleTick it reads the node's state
// (its replicas' items, its view of the cluster, its own counters), keeps a
// bounded history of each counter, and builds the dashboard document once
// for however many consoles ask for it. Nothing of it is on the purchase
// path: it reads what the node keeps anyway, at its own pace.
const (
	consoleTick  = 500 * time.Millisecond
	historyTicks = 600 // 5 minutes of samples
	sparkTicks   = 10  // samples per sparkline point (5 s)
	sparkPoints  = historyTicks / sparkTicks
	rateTicks    = 4 // a rate is the average over the last 2 s
	// itemsTrackedMax bounds the items the console follows (the first
	// ones by ID): memory is about 5 KiB of history per item.
	itemsTrackedMax  = 1024
	leaderChangesMax = 50
	// storeStallMax: a shard whose orders wait this long with none
	// flushed means the order store is failing or stuck.
	storeStallMax = 15 * time.Second
	// flushErrorTicks is the window (15 s) in which this node's flush
	// errors raise the order store banner.
	flushErrorTicks = 30
	// Reconciliation reads the whole order store: it runs at most every
	// reconcileEvery, and only while a console was open within
	// watchedRecently.
	reconcileEvery   = 30 * time.Second
	reconcileTimeout = 10 * time.Second
	watchedRecently  = 2 * time.Minute
	// quietTicks: a reconciliation difference on an item that sold
	// nothing for 10 s is not a race with a flush in progress.
	quietTicks = 20
	// tickTimeout bounds the reads of one tick.
	tickTimeout = 2 * time.Second
)

// series is the bounded history of one counter: one sample per tick.
type series struct {
	v           [historyTicks]float64
	first, last uint64 // ticks of the oldest and newest samples
	ok          bool
}

func (s *series) put(k uint64, v float64) {
	if !s.ok || k-s.last >= historyTicks {
		s.first, s.ok = k, true
	} else {
		for j := s.last + 1; j < k; j++ { // a gap: hold the value
			s.v[j%historyTicks] = v
		}
	}
	s.v[k%historyTicks], s.last = v, k
	if k-s.first >= historyTicks {
		s.first = k - historyTicks + 1
	}
}

// has reports whether the sample of tick k is held.
func (s *series) has(k uint64) bool { return s.ok && k >= s.first && k <= s.last }

// Alert severities.
const (
	severityCritical = "critical"
	severityWarning  = "warning"
)

// consoleAlert is one line of the console's banner.
type consoleAlert struct {
	Severity string `json:"severity"`
	Kind     string `json:"kind"` // no_leader, node_down, not_ready, order_store, circuit_open, reconcile
	Message  string `json:"message"`
}

// leaderChange is one entry of the leader timeline.
type leaderChange struct {
	At    time.Time `json:"at"`
	Shard int       `json:"shard"`
	From  string    `json:"from"` // "" for none
	To    string    `json:"to"`
	Term  uint64    `json:"term"`
}

type itemRow struct {
	itemJSON
	Rate  float64   `json:"sales_per_s"` // units sold per second, last 2 s
	Spark []float64 `json:"spark"`       // units sold per second, per sparkline point, oldest first; -1: no sample
	// Stale: the item's shard has no current replica on this node right
	// now (an election, a move); the row is as last seen, up to 30 s ago.
	Stale bool `json:"stale,omitempty"`
}

type shardRow struct {
	ShardView
	Lag       uint64  `json:"lag"` // committed entries this node has not applied yet
	FlushRate float64 `json:"flushed_per_s"`
}

type orderStoreRow struct {
	Unflushed   int     `json:"unflushed_orders"`
	FlushRate   float64 `json:"flushed_per_s"`
	FlushErrors float64 `json:"flush_errors_15s"` // on this node
}

type turnedAway struct {
	TooMany          float64   `json:"rate_429_per_s"`
	Unavailable      float64   `json:"rate_503_per_s"`
	SparkTooMany     []float64 `json:"spark_429"`
	SparkUnavailable []float64 `json:"spark_503"`
}

type reconcileRow struct {
	CheckedAt   time.Time       `json:"checked_at"`
	Differences int             `json:"differences"`
	Items       []reconcileDiff `json:"items"` // the differing items, at most 20
	Skipped     []int           `json:"skipped_shards"`
	Error       string          `json:"error,omitempty"`
}

type reconcileDiff struct {
	ItemID string `json:"item_id"`
	Diff   int64  `json:"diff"`
	// Settled: the item sold nothing for 10 s before the check, so the
	// difference is not an order caught between two reads.
	Settled bool `json:"settled"`
}

// dashboardDoc is the body of GET /v1/admin/dashboard.
type dashboardDoc struct {
	GeneratedAt time.Time `json:"generated_at"`
	RefreshMs   int       `json:"refresh_ms"`
	SparkStepS  float64   `json:"spark_step_s"` // seconds per sparkline point
	Node        struct {
		Name   string `json:"name"`
		Region string `json:"region,omitempty"`
		Ready  bool   `json:"ready"`
	} `json:"node"`
	Alerts        []consoleAlert    `json:"alerts"`
	Items         []itemRow         `json:"items"`
	ItemsNext     string            `json:"items_next,omitempty"`
	ItemsTracked  int               `json:"items_tracked"`
	ItemsCapped   bool              `json:"items_capped"` // more items exist than the console follows
	MissingShards []int             `json:"missing_shards"`
	Members       []MemberView      `json:"members"`
	Shards        []shardRow        `json:"shards"`
	LeaderChanges []leaderChange    `json:"leader_changes"` // newest first
	OrderStore    orderStoreRow     `json:"order_store"`
	Breakers      map[string]string `json:"circuit_breakers"`
	TurnedAway    turnedAway        `json:"turned_away"` // by this node
	Reconcile     *reconcileRow     `json:"reconcile"`
}

// consoleSnap is what one tick produced: the document with every tracked
// item, and the encoded first page, which most requests get as it is.
type consoleSnap struct {
	doc         dashboardDoc
	defaultPage []byte
}

type shardHistory struct {
	leader     string
	seen       bool
	flushed    series
	progressAt time.Time // last time its orders moved to the store, or it had none waiting
}

type itemHistory struct {
	sold     series
	lastSeen uint64
	row      itemRow // as last seen
}

// staleTicks is how long (30 s) an item whose shard has no current
// replica here keeps its last row on the console.
const staleTicks = 60

type reconResult struct {
	rep orders.Reconciliation
	err error
}

// console samples the node for the admin console. Its loop goroutine is
// started by start and stopped by close; the history below is touched only
// by tick, which runs on one goroutine at a time.
type console struct {
	engine Engine
	node   Node
	m      *metrics.Metrics
	log    *slog.Logger
	now    func() time.Time
	render func(sale.Item) itemJSON

	once    sync.Once
	stopped atomic.Bool
	stop    chan struct{}
	ctx     context.Context // ends at close
	cancel  context.CancelFunc
	bg      sync.WaitGroup // the loop and a reconciliation in flight
	snap    atomic.Pointer[consoleSnap]
	viewed  atomic.Int64 // unix nanoseconds of the last dashboard request

	// Owned by tick.
	n           uint64 // ticks taken; tick k's time is at[k%historyTicks]
	at          [historyTicks]time.Time
	items       map[string]*itemHistory
	shards      map[int]*shardHistory
	tooMany     series
	unavailable series
	flushErrors series
	changes     []leaderChange // oldest first, at most leaderChangesMax
	recon       *reconcileRow
	reconAt     time.Time
	reconBusy   bool
	reconCh     chan reconResult // capacity 1: the one reconciliation in flight
}

func newConsole(engine Engine, node Node, m *metrics.Metrics, log *slog.Logger, now func() time.Time, render func(sale.Item) itemJSON) *console {
	c := &console{engine: engine, node: node, m: m, log: log, now: now, render: render,
		stop: make(chan struct{}), items: map[string]*itemHistory{}, shards: map[int]*shardHistory{},
		reconCh: make(chan reconResult, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// start takes the first sample and starts the loop, once; it does
// nothing after close.
func (c *console) start() {
	c.once.Do(func() {
		if c.stopped.Load() {
			return
		}
		c.tick()
		c.bg.Add(1)
		go func() {
			defer c.bg.Done()
			c.loop()
		}()
	})
}

// closeWaitMax bounds how long close waits for the loop and a
// reconciliation in flight, which its cancelled context ends.
const closeWaitMax = 5 * time.Second

// close stops the loop and any reconciliation, and waits for them (at most
// closeWaitMax: a store that ignored the cancelled context would hold a
// shutdown otherwise; the goroutine then ends on its own timeout).
func (c *console) close() {
	if c.stopped.Swap(true) {
		return
	}
	c.once.Do(func() {}) // never start after close
	c.cancel()
	close(c.stop)
	done := make(chan struct{})
	go func() { c.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWaitMax):
		c.log.Warn("console: sampler still running after shutdown; abandoned")
	}
}

func (c *console) loop() {
	t := time.NewTicker(consoleTick)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.tick()
		}
	}
}

// page returns the encoded document with the items after `after`, at most
// limit of them.
func (c *console) page(after string, limit int) ([]byte, error) {
	c.viewed.Store(c.now().UnixNano())
	c.start()
	s := c.snap.Load()
	if s == nil {
		return nil, sale.ErrClosed
	}
	if after == "" && limit == itemsPageDefault {
		return s.defaultPage, nil
	}
	doc := s.doc
	doc.Items, doc.ItemsNext = pageOf(s.doc.Items, after, limit)
	b, err := json.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("httpapi: encode dashboard: %w", err)
	}
	return b, nil
}

// pageOf returns the rows after `after` (rows are sorted by ID), at most
// limit, and the after= value of the next page.
func pageOf(rows []itemRow, after string, limit int) ([]itemRow, string) {
	from := sort.Search(len(rows), func(i int) bool { return rows[i].ID > after })
	rows = rows[from:]
	if len(rows) > limit {
		return rows[:limit], rows[limit-1].ID
	}
	return rows, ""
}

// rate is the counter's average increase per second from tick k-over to
// tick k (never negative: units returned by an expiry are not sales).
func (c *console) rate(s *series, k, over uint64) float64 {
	if k < over || !s.has(k) {
		return 0
	}
	k0 := k - over
	if !s.has(k0) {
		k0 = s.first
	}
	if k0 >= k {
		return 0
	}
	dt := c.at[k%historyTicks].Sub(c.at[k0%historyTicks]).Seconds()
	if dt <= 0 {
		return 0
	}
	return round1(max(0, (s.v[k%historyTicks]-s.v[k0%historyTicks])/dt))
}

// spark returns sparkPoints rates, oldest first; -1 where there is no
// sample.
func (c *console) spark(s *series) []float64 {
	out := make([]float64, sparkPoints)
	for p := range out {
		back := uint64(sparkPoints-1-p) * sparkTicks
		if c.n < back+sparkTicks {
			out[p] = -1
			continue
		}
		end := c.n - back
		if !s.has(end) || end == s.first {
			out[p] = -1
			continue
		}
		out[p] = c.rate(s, end, sparkTicks) // from s.first when the series starts inside the point
	}
	return out
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// tick takes one sample and publishes the document built from it.
func (c *console) tick() {
	ctx, cancel := context.WithTimeout(c.ctx, tickTimeout)
	defer cancel()
	now := c.now()
	c.n++
	k := c.n
	c.at[k%historyTicks] = now

	var doc dashboardDoc
	doc.GeneratedAt = now.UTC()
	doc.RefreshMs = 1000
	doc.SparkStepS = (time.Duration(sparkTicks) * consoleTick).Seconds()
	doc.Alerts = []consoleAlert{}
	alert := func(sev, kind, format string, args ...any) {
		doc.Alerts = append(doc.Alerts, consoleAlert{Severity: sev, Kind: kind, Message: fmt.Sprintf(format, args...)})
	}

	// Items, from this node's replicas.
	list, more, missing, err := c.engine.ListItems(ctx, "", itemsTrackedMax)
	if err != nil {
		c.log.Warn("console: list items", "err", err)
	}
	doc.ItemsCapped, doc.MissingShards, doc.ItemsTracked = more, missing, len(list)
	if doc.MissingShards == nil {
		doc.MissingShards = []int{}
	}
	doc.Items = make([]itemRow, len(list))
	for i, it := range list {
		h := c.items[it.ID]
		if h == nil {
			h = &itemHistory{}
			c.items[it.ID] = h
		}
		h.sold.put(k, float64(it.Sold()))
		h.lastSeen = k
		h.row = itemRow{itemJSON: c.render(it), Rate: c.rate(&h.sold, k, rateTicks), Spark: c.spark(&h.sold)}
		doc.Items[i] = h.row
	}
	stale := false
	for id, h := range c.items {
		switch age := k - h.lastSeen; {
		case age >= historyTicks:
			delete(c.items, id) // gone for 5 minutes (its shard's replica left this node)
		case age > 0 && age < staleTicks && len(doc.Items) < itemsTrackedMax:
			row := h.row
			row.Stale = true
			doc.Items = append(doc.Items, row)
			stale = true
		}
	}
	if stale {
		sort.Slice(doc.Items, func(i, j int) bool { return doc.Items[i].ID < doc.Items[j].ID })
	}

	// The cluster.
	cv := c.node.ClusterView(ctx)
	doc.Node.Name, doc.Node.Region, doc.Node.Ready = cv.Node, cv.Region, cv.Ready
	doc.Members, doc.Breakers = cv.Members, cv.Breakers
	if doc.Members == nil {
		doc.Members = []MemberView{}
	}
	if doc.Breakers == nil {
		doc.Breakers = map[string]string{}
	}
	if !cv.Ready {
		alert(severityCritical, "not_ready", "This node (%s) is not ready: it does not see a leader for every shard, or it is shutting down.", cv.Node)
	}
	for _, mb := range cv.Members {
		if mb.State == "dead" {
			alert(severityCritical, "node_down", "Node %s is down (no gossip since %s); its shards elect new leaders, its seats are replaced after the dead-node grace.",
				mb.ID, mb.Since.UTC().Format(time.TimeOnly))
		}
	}
	doc.Shards = make([]shardRow, len(cv.Shards))
	flushRate := 0.0
	for i, sv := range cv.Shards {
		h := c.shards[sv.ID]
		if h == nil {
			h = &shardHistory{progressAt: now}
			c.shards[sv.ID] = h
		}
		if h.seen && h.leader != sv.Leader {
			c.changes = append(c.changes, leaderChange{At: now.UTC(), Shard: sv.ID, From: h.leader, To: sv.Leader, Term: sv.Term})
			if len(c.changes) > leaderChangesMax {
				c.changes = append(c.changes[:0], c.changes[len(c.changes)-leaderChangesMax:]...)
			}
		}
		prevFlushed, hadFlushed := h.flushed.v[h.flushed.last%historyTicks], h.flushed.ok
		h.leader, h.seen = sv.Leader, true
		h.flushed.put(k, float64(sv.FlushedSeq))
		if sv.Unflushed == 0 || !hadFlushed || prevFlushed != float64(sv.FlushedSeq) {
			h.progressAt = now
		}
		row := shardRow{ShardView: sv, FlushRate: c.rate(&h.flushed, k, rateTicks)}
		if sv.CommitIndex > sv.AppliedIndex {
			row.Lag = sv.CommitIndex - sv.AppliedIndex
		}
		if row.Voters == nil {
			row.Voters = []string{}
		}
		if row.NonVoters == nil {
			row.NonVoters = []string{}
		}
		doc.Shards[i] = row
		doc.OrderStore.Unflushed += sv.Unflushed
		flushRate += row.FlushRate
		if sv.Leader == "" {
			alert(severityCritical, "no_leader", "Shard %d has no leader: purchases of its items are answered 503 until one is elected.", sv.ID)
		} else if stalled := now.Sub(h.progressAt); stalled >= storeStallMax {
			alert(severityCritical, "order_store", "Order store: shard %d has %d confirmed orders waiting and none written for %s.",
				sv.ID, sv.Unflushed, stalled.Round(time.Second))
		}
	}
	doc.OrderStore.FlushRate = round1(flushRate)
	doc.LeaderChanges = make([]leaderChange, len(c.changes))
	for i, ch := range c.changes {
		doc.LeaderChanges[len(c.changes)-1-i] = ch
	}

	// This node's counters.
	tot := c.m.Totals()
	c.tooMany.put(k, tot.TooMany)
	c.unavailable.put(k, tot.Unavailable)
	c.flushErrors.put(k, tot.FlushErrors)
	doc.TurnedAway = turnedAway{
		TooMany: c.rate(&c.tooMany, k, rateTicks), Unavailable: c.rate(&c.unavailable, k, rateTicks),
		SparkTooMany: c.spark(&c.tooMany), SparkUnavailable: c.spark(&c.unavailable),
	}
	if back := min(k-c.flushErrors.first, flushErrorTicks); back > 0 {
		doc.OrderStore.FlushErrors = tot.FlushErrors - c.flushErrors.v[(k-back)%historyTicks]
	}
	if doc.OrderStore.FlushErrors > 0 {
		alert(severityCritical, "order_store", "Order store failing: %.0f failed writes on this node in the last 15 s; orders wait safely in Raft.",
			doc.OrderStore.FlushErrors)
	}
	for addr, st := range doc.Breakers {
		if st != "closed" {
			alert(severityWarning, "circuit_open", "Circuit to %s is %s: this node stops forwarding there for a moment.", addr, st)
		}
	}

	// Reconciliation, while someone watches.
	c.reconcile(now, k)
	if r := c.recon; r != nil {
		doc.Reconcile = r
		if r.Error != "" {
			alert(severityWarning, "reconcile", "Reconciliation failed: %s", r.Error)
		}
		for _, d := range r.Items {
			if d.Settled {
				alert(severityCritical, "reconcile", "Reconciliation: item %s differs by %d units between Raft and the order store.", d.ItemID, d.Diff)
			}
		}
	}
	sort.SliceStable(doc.Alerts, func(i, j int) bool {
		return doc.Alerts[i].Severity == severityCritical && doc.Alerts[j].Severity != severityCritical
	})

	snap := &consoleSnap{doc: doc}
	first := doc
	first.Items, first.ItemsNext = pageOf(doc.Items, "", itemsPageDefault)
	b, err := json.Marshal(&first)
	if err != nil {
		c.log.Error("console: encode dashboard", "err", err)
		return
	}
	snap.defaultPage = b
	c.snap.Store(snap)
}

// reconcile collects a finished reconciliation and starts the next one
// when it is due and a console was open recently. One runs at a time, on
// its own goroutine: it reads the whole order store.
func (c *console) reconcile(now time.Time, k uint64) {
	select {
	case r := <-c.reconCh:
		c.reconBusy = false
		row := &reconcileRow{CheckedAt: r.rep.CheckedAt, Differences: r.rep.Differences, Items: []reconcileDiff{}, Skipped: r.rep.SkippedShards}
		if r.err != nil {
			row.CheckedAt, row.Error = now.UTC(), r.err.Error()
		}
		for _, it := range r.rep.Items {
			if it.Diff == 0 || len(row.Items) == 20 {
				continue
			}
			d := reconcileDiff{ItemID: it.ItemID, Diff: it.Diff}
			if h := c.items[it.ItemID]; h != nil && k > quietTicks && h.sold.has(k-quietTicks) {
				d.Settled = h.sold.v[k%historyTicks] == h.sold.v[(k-quietTicks)%historyTicks]
			}
			row.Items = append(row.Items, d)
		}
		if row.Skipped == nil {
			row.Skipped = []int{}
		}
		c.recon = row
	default:
	}
	watched := now.Sub(time.Unix(0, c.viewed.Load())) < watchedRecently
	if c.reconBusy || !watched || now.Sub(c.reconAt) < reconcileEvery {
		return
	}
	c.reconBusy, c.reconAt = true, now
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx, cancel := context.WithTimeout(c.ctx, reconcileTimeout)
		defer cancel()
		rep, err := c.engine.Reconcile(ctx)
		c.reconCh <- reconResult{rep: rep, err: err} // never blocks: one in flight
	}()
}
