package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flashstock/flashstock/client"
)

// Report is the result of a run, written as a table and as JSON.
type Report struct {
	Config    map[string]any `json:"config"`
	StartedAt time.Time      `json:"started_at"`
	ElapsedS  float64        `json:"elapsed_s"`
	// Arrivals counts shoppers due (crowd, browse) or purchases due (hot,
	// many); Dropped those not sent because MaxInFlight was reached.
	Arrivals int64 `json:"arrivals"`
	Dropped  int64 `json:"dropped"`
	// Requests counts every HTTP exchange of the load by outcome; Purchases
	// counts each purchase once, by its final outcome.
	Requests  Counts `json:"requests"`
	Purchases Counts `json:"purchases"`
	// Retries is the number of re-sends; UnknownPurchases the purchases that
	// ended without an order after an answer that left the outcome open.
	Retries          int64            `json:"retries"`
	UnknownPurchases int64            `json:"unknown_purchases"`
	ErrorCodes       map[string]int64 `json:"error_codes"`
	Throughput       Throughput       `json:"throughput"`
	// Latency holds per-request latency overall ("all") and by outcome
	// ("confirmed", "sold_out", "rejected", "page"), and "purchase": a
	// purchase from its due time to its final answer, retries included.
	Latency map[string]LatencySummary `json:"latency"`
	Verify  *client.Verdict           `json:"verify,omitempty"`
}

// Counts are outcome counts.
type Counts struct {
	Total     int64            `json:"total"`
	ByOutcome map[string]int64 `json:"by_outcome"`
}

// Throughput is per second of load.
type Throughput struct {
	RequestsPerS  float64 `json:"requests_per_s"`
	PurchasesPerS float64 `json:"purchases_per_s"`
	ConfirmedPerS float64 `json:"confirmed_per_s"`
}

// Passed reports whether the run verified, or was not asked to.
func (r *Report) Passed() bool { return r.Verify == nil || r.Verify.Pass }

// counts turns an outcome array into Counts, leaving out zeros.
func counts(a [client.NumOutcomes]int64) Counts {
	c := Counts{ByOutcome: make(map[string]int64)}
	for o, n := range a {
		if n > 0 {
			c.ByOutcome[client.Outcome(o).String()] = n
			c.Total += n
		}
	}
	return c
}

// report builds the report of the load just run.
func (e *engine) report(startedAt time.Time, elapsed time.Duration) *Report {
	r := e.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{
		Config:           e.cfg.echo(),
		StartedAt:        startedAt.UTC(),
		ElapsedS:         round3(elapsed.Seconds()),
		Arrivals:         r.mu.arrivals,
		Dropped:          r.mu.dropped,
		Requests:         counts(r.mu.requests),
		Purchases:        counts(r.mu.purchases),
		Retries:          r.mu.retries,
		UnknownPurchases: r.mu.unknown,
		ErrorCodes:       make(map[string]int64, len(r.mu.codes)),
		Latency:          make(map[string]LatencySummary, numHists),
	}
	rep.Config["user_prefix"] = e.userPrefix
	for k, v := range r.mu.codes {
		rep.ErrorCodes[k] = v
	}
	for i, h := range r.mu.hists {
		rep.Latency[histNames[i]] = h.Summary()
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.Throughput = Throughput{
			RequestsPerS:  round3(float64(rep.Requests.Total) / s),
			PurchasesPerS: round3(float64(rep.Purchases.Total) / s),
			ConfirmedPerS: round3(float64(r.mu.purchases[client.OutcomeConfirmed]+r.mu.purchases[client.OutcomeReplayed]) / s),
		}
	}
	return rep
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	targets, _ := r.Config["targets"].([]string)
	fmt.Fprintf(w, "scenario %v (%v loop) against %s, %.2fs\n", r.Config["scenario"], r.Config["mode"], strings.Join(targets, ","), r.ElapsedS)
	fmt.Fprintf(w, "arrivals %d (dropped %d), requests %d (%.1f/s), purchases %d (%.1f/s), confirmed %.1f/s, retries %d, unknown outcomes %d\n\n",
		r.Arrivals, r.Dropped, r.Requests.Total, r.Throughput.RequestsPerS, r.Purchases.Total,
		r.Throughput.PurchasesPerS, r.Throughput.ConfirmedPerS, r.Retries, r.UnknownPurchases)

	// Names are padded by hand so they read left-aligned among right-aligned numbers.
	p("%-14s\trequests\tpurchases\t\n", "outcome")
	for o := range client.NumOutcomes {
		name := client.Outcome(o).String()
		nr, np := r.Requests.ByOutcome[name], r.Purchases.ByOutcome[name]
		if nr > 0 || np > 0 {
			p("%-14s\t%d\t%d\t\n", name, nr, np)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	p("%-14s\tcount\tmean\tp50\tp90\tp99\tp99.9\tmax\t\n", "latency")
	for _, name := range histNames {
		s := r.Latency[name]
		if s.Count == 0 {
			continue
		}
		p("%-14s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, s.Count, fmtUs(uint64(s.MeanUs)),
			fmtUs(s.P50Us), fmtUs(s.P90Us), fmtUs(s.P99Us), fmtUs(s.P999Us), fmtUs(s.MaxUs))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.ErrorCodes) > 0 {
		codes := make([]string, 0, len(r.ErrorCodes))
		for c := range r.ErrorCodes {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		var b strings.Builder
		for i, c := range codes {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s=%d", c, r.ErrorCodes[c])
		}
		fmt.Fprintf(w, "\nerror codes: %s\n", b.String())
	}
	if r.Verify == nil {
		fmt.Fprintln(w, "\nverify: skipped")
		return nil
	}
	return writeVerdict(w, r.Verify)
}

// writeVerdict writes the verdict for a terminal.
func writeVerdict(w io.Writer, v *client.Verdict) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "item\tstock\tsold before\tsold\tremaining\tconfirmed seen\tunknown\tlimit\tstatus\tok\t\n")
	for _, it := range v.Items {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%v\t\n", it.ID, it.Stock, it.SoldBefore, it.Sold,
			it.Remaining, it.Confirmed, it.Unknown, it.PerUserLimit, it.Status, it.Pass)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if v.OrdersChecked > 0 {
		fmt.Fprintf(w, "orders read back: %d (%d persisted)\n", v.OrdersChecked, v.OrdersPersisted)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if v.Pass {
		_, err := fmt.Fprintln(w, "verify: PASS")
		return err
	}
	fmt.Fprintln(w, "verify: FAIL")
	for _, pr := range v.Problems {
		fmt.Fprintf(w, "  - %s\n", pr)
	}
	return nil
}
