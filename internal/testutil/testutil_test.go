package testutil

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// recordingTB is a testing.TB that records Logf and Cleanup, so that a
// test can end it and see what reaches its log.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	logs     []string
	cleanups []func()
}

func (r *recordingTB) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// end runs the cleanups, last registered first, as testing does.
func (r *recordingTB) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *recordingTB) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logs...)
}

func TestLoggerWritesToTestLog(t *testing.T) {
	tb := &recordingTB{TB: t}
	log := Logger(tb)
	log.Debug("elected", "shard", 3)
	log.With("node", "n1").Warn("barrier", "err", "timeout")
	got := tb.lines()
	want := []string{"level=DEBUG msg=elected shard=3", "level=WARN msg=barrier node=n1 err=timeout"}
	if len(got) != len(want) {
		t.Fatalf("Logger wrote %d lines %q; want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) || strings.HasSuffix(got[i], "\n") {
			t.Errorf("line %d = %q; want it to contain %q, without a trailing newline", i, got[i], want[i])
		}
	}
}

// TestLoggerAfterTestEnds: records logged once the test has ended are
// dropped, not passed to Logf (which panics then), even while goroutines
// log concurrently with the end.
func TestLoggerAfterTestEnds(t *testing.T) {
	tb := &recordingTB{TB: t}
	log := Logger(tb)
	w := LogWriter(tb)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				log.Info("busy", "g", g, "i", i)
				fmt.Fprintf(w, "raw %d %d\n", g, i)
			}
		}()
	}
	tb.end()
	n := len(tb.lines())
	wg.Wait()
	if got := len(tb.lines()); got != n {
		t.Errorf("%d lines reached the log after the test ended; want none", got-n)
	}
	log.Error("late")
	fmt.Fprintln(w, "late")
	if got := len(tb.lines()); got != n {
		t.Errorf("a record logged after the test ended reached the log; want it dropped")
	}
}
