package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Report is a whole run: its settings and one Result per fault.
type Report struct {
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed"`
	Duration time.Duration `json:"duration"`
	Rate     int           `json:"rate"`
	Shoppers int           `json:"shoppers"`
	Delay    string        `json:"delay"`
	Firewall string        `json:"firewall"`
	Kernel   string        `json:"kernel"`
	Commit   string        `json:"commit"`
	CPUs     int           `json:"cpus"`
	OutDir   string        `json:"out_dir"`
	Results  []Result      `json:"results"`
}

// Failed reports whether any scenario failed or did not run.
func (r *Report) Failed() bool {
	for i := range r.Results {
		if !r.Results[i].Passed() {
			return true
		}
	}
	return len(r.Results) == 0
}

// Run sets up the environment, runs every configured fault and tears
// everything down again. The error is for a run that could not start;
// scenario failures are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.OutDir == "" {
		return nil, fmt.Errorf("%w: no output dir", ErrInvalidConfig)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), Duration: cfg.Duration, Rate: cfg.Rate, Shoppers: cfg.Shoppers,
		CPUs: runtime.NumCPU(), OutDir: cfg.OutDir}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		rep.Kernel = strings.TrimSpace(string(b))
	}
	e, err := Setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rep.Commit = e.Commit()
	rep.Delay, rep.Firewall = e.DelayMethod(), e.FirewallName()
	names := cfg.Faults
	if len(names) == 0 {
		names = Faults()
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		rep.Results = append(rep.Results, e.RunScenario(ctx, name, cfg.OutDir))
	}
	closeErr := e.Close()
	rep.Elapsed = time.Since(rep.Started).Round(time.Second)
	if b, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(cfg.OutDir, "report.json"), b, 0o644)
	}
	_ = os.WriteFile(filepath.Join(cfg.OutDir, "report.md"), []byte(rep.Markdown()), 0o644)
	if closeErr != nil {
		return rep, fmt.Errorf("faults: tear-down: %w", closeErr)
	}
	return rep, ctx.Err()
}

// Table returns the faults x invariants table in Markdown.
func (r *Report) Table() string {
	var b strings.Builder
	b.WriteString("| fault | purchases | ok | failed | unknown → settled | oversell | lost | duplicate | over limit | max gap | fault → first ok | heal → first ok | verdict |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for i := range r.Results {
		res := &r.Results[i]
		verdict := "pass"
		switch {
		case res.Error != "" && res.Ops == 0:
			fmt.Fprintf(&b, "| %s | | | | | | | | | | | | **ERROR** |\n", res.Fault)
			continue
		case res.Error != "":
			verdict = "**ERROR**"
		case !res.Passed():
			verdict = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d → %d | %d | %d | %d | %d | %s | %s | %s | %s |\n",
			res.Fault, res.Ops, res.OK, res.Failed, res.Unknown, res.Settled,
			res.Oversell, res.Lost, res.Duplicate, res.Limit,
			fmtDur(res.MaxGap), fmtDur(res.AfterFault), fmtDur(res.AfterHeal), verdict)
	}
	return b.String()
}

// Markdown returns the table with the run's settings and each scenario's
// notes, violations and anomalies.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s at commit %s: %v per fault, hot item paced at %d purchases/s by %d shoppers, delay by %s, partitions by %s; Linux %s, %d CPUs; %v in all.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Commit, r.Duration, r.Rate, r.Shoppers, r.Delay, r.Firewall, r.Kernel, r.CPUs, r.Elapsed)
	b.WriteString(r.Table())
	b.WriteString("\n")
	for i := range r.Results {
		res := &r.Results[i]
		fmt.Fprintf(&b, "- **%s** (%v): %s.", res.Fault, res.Elapsed, res.About)
		if len(res.Notes) > 0 {
			fmt.Fprintf(&b, " %s.", strings.Join(res.Notes, "; "))
		}
		b.WriteString("\n")
		if back := res.StockBack(); back != "" {
			fmt.Fprintf(&b, "  - stock back: %s\n", back)
		}
		if res.Error != "" {
			fmt.Fprintf(&b, "  - error: %s\n", oneLine(res.Error))
		}
		for _, v := range res.Violations {
			fmt.Fprintf(&b, "  - violation: %s\n", oneLine(v))
		}
		for _, a := range res.Anomalies {
			fmt.Fprintf(&b, "  - anomaly: %s\n", oneLine(a))
		}
	}
	return b.String()
}

// StockBack describes the stock that came back in a scenario: restocks
// (acknowledged and unknown units per item), payments by outcome, and the
// units of orders that expired, with those sold again; "" for none.
func (r *Result) StockBack() string {
	var parts []string
	if rs := r.Restocks; rs.Sent > 0 {
		s := fmt.Sprintf("restocks %d sent, %d acknowledged (%s)", rs.Sent, rs.OK, unitsText(rs.Units, "+"))
		if rs.Unknown > 0 {
			s += fmt.Sprintf(", %d unknown (%s)", rs.Unknown, unitsText(rs.UnknownUnits, "+"))
		}
		if rs.Failed > 0 {
			s += fmt.Sprintf(", %d not applied", rs.Failed)
		}
		parts = append(parts, s)
	}
	if r.PayWindow > 0 {
		p := r.Payments
		s := fmt.Sprintf("payment window %v: %d orders paid for, %d paid, %d expired, %d unknown", r.PayWindow, p.Orders, p.Paid, p.Expired, p.Unknown)
		if p.Other > 0 {
			s += fmt.Sprintf(", %d not paid (shed or refused)", p.Other)
		}
		parts = append(parts, s)
	}
	if len(r.Returned) > 0 {
		s := "units returned by expired orders " + unitsText(r.Returned, "")
		if len(r.Resold) > 0 {
			s += ", sold again at least " + unitsText(r.Resold, "")
		}
		if r.Unexpired > 0 {
			s += fmt.Sprintf("; %d orders never expired", r.Unexpired)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// unitsText lists units per item, in item order, each with sign before it.
func unitsText(units map[string]int64, sign string) string {
	ids := make([]string, 0, len(units))
	for id := range units {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s %s%d", id, sign, units[id])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "none"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}

// Markers around the generated part of docs/reliability.md.
const (
	docBegin = "<!-- faults:begin (generated by go run ./faults/cmd/faultsuite; do not edit) -->"
	docEnd   = "<!-- faults:end -->"
)

// WriteDoc replaces the generated part of the document at path with the
// report; the rest of the document is kept.
func (r *Report) WriteDoc(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	i, j := strings.Index(doc, docBegin), strings.Index(doc, docEnd)
	if i < 0 || j < i {
		return errors.New("faults: " + path + " has no generated section markers")
	}
	doc = doc[:i+len(docBegin)] + "\n" + r.Markdown() + doc[j:]
	return os.WriteFile(path, []byte(doc), 0o644)
}
