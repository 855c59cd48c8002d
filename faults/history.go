package faults

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/flashstock/flashstock/client"
)

// Phases of a history.
const (
	PhaseRun     = "run"     // the sale, with the fault
	PhaseSettle  = "settle"  // retries that settle unknown outcomes
	PhaseVerify  = "verify"  // lookups of confirmed orders on every node
	PhaseNemesis = "nemesis" // fault injected or healed
	// PhaseRestock: an admin's restock (POST /v1/items/{id}/stock) during
	// the sale; RequestID names the restock (it is not sent: a restock has
	// no idempotency key), Delta is its units.
	PhaseRestock = "restock"
	// PhasePay: a buyer paying a confirmed order (POST
	// /v1/orders/{id}/pay); RequestID is the purchase's.
	PhasePay = "pay"
	// PhaseFinal: an order read after the payment window closed on every
	// order (GET /v1/orders/{id} as admin); OrderStatus is its final status.
	PhaseFinal = "final"
)

// Outcomes of an attempt, from the client's classification (client.Outcome,
// recorded as Event.Answer).
const (
	OutcomeOK   = "ok"   // the order is confirmed (201, or 200 for a repeat)
	OutcomeFail = "fail" // definitely not bought: the sale refused it (409 sold_out, limit_exceeded, ...)
	// OutcomeShed: this attempt was shed before the sale looked at it (429,
	// 503 overloaded or unavailable): it was not applied, but an earlier
	// attempt may still commit and a later one may buy.
	OutcomeShed = "shed"
	OutcomeInfo = "info" // unknown: timeout, connection error, 503 unknown_outcome, other 5xx
)

// historyOutcome is how the history records an answer.
func historyOutcome(o client.Outcome) string {
	switch {
	case o.OK():
		return OutcomeOK
	case o.Unknown():
		return OutcomeInfo
	case o.Rejected():
		return OutcomeShed
	}
	return OutcomeFail
}

// Event is one line of a history: one HTTP attempt, or a nemesis action.
type Event struct {
	Seq         int64   `json:"seq"`
	Phase       string  `json:"phase"`
	Item        string  `json:"item,omitempty"`
	User        string  `json:"user,omitempty"`
	RequestID   string  `json:"request_id,omitempty"`
	Quantity    int     `json:"quantity,omitempty"`
	Attempt     int     `json:"attempt,omitempty"`
	Node        int     `json:"node"` // -1: not sent to a node
	StartMs     float64 `json:"start_ms"`
	EndMs       float64 `json:"end_ms"`
	Status      int     `json:"status,omitempty"`
	Code        string  `json:"code,omitempty"`
	OrderID     string  `json:"order_id,omitempty"`
	OrderStatus string  `json:"order_status,omitempty"` // of the order the answer carried: confirmed, paid, expired, cancelled
	Delta       int64   `json:"delta,omitempty"`        // a restock's units
	Err         string  `json:"err,omitempty"`
	Outcome     string  `json:"outcome"`          // ok, fail, shed, info; for nemesis events "inject" or "heal"
	Answer      string  `json:"answer,omitempty"` // the client's outcome (client.Outcome.String)
	Note        string  `json:"note,omitempty"`
}

// History records events in memory and streams them to a JSON-lines file.
// It is safe for concurrent use.
type History struct {
	t0 time.Time
	mu struct {
		sync.Mutex
		events  []Event
		injects int // nemesis "inject" events
		w       *bufio.Writer
		f       *os.File
	}
}

// NewHistory starts a history at t0; path may be empty (memory only).
func NewHistory(t0 time.Time, path string) (*History, error) {
	h := &History{t0: t0}
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return nil, err
		}
		h.mu.f, h.mu.w = f, bufio.NewWriterSize(f, 1<<16)
	}
	return h, nil
}

// Ms converts a time to milliseconds since the start of the history.
func (h *History) Ms(t time.Time) float64 { return float64(t.Sub(h.t0)) / float64(time.Millisecond) }

// Add appends e, numbering it.
func (h *History) Add(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e.Seq = int64(len(h.mu.events))
	h.mu.events = append(h.mu.events, e)
	if e.Phase == PhaseNemesis && e.Outcome == "inject" {
		h.mu.injects++
	}
	if h.mu.w != nil {
		b, _ := json.Marshal(e)
		h.mu.w.Write(b)
		h.mu.w.WriteByte('\n')
	}
}

// Nemesis records a fault action (outcome "inject" or "heal").
func (h *History) Nemesis(action, note string, start time.Time) {
	h.Add(Event{Phase: PhaseNemesis, Node: -1, StartMs: h.Ms(start), EndMs: h.Ms(time.Now()), Outcome: action, Note: note})
}

// Injects returns how many times a fault was injected so far.
func (h *History) Injects() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mu.injects
}

// Events returns a copy of the events so far.
func (h *History) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.mu.events...)
}

// Close flushes and closes the file.
func (h *History) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.f == nil {
		return nil
	}
	err := h.mu.w.Flush()
	if cerr := h.mu.f.Close(); err == nil {
		err = cerr
	}
	h.mu.f, h.mu.w = nil, nil
	return err
}
