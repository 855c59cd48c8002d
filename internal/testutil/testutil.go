// Package testutil holds generic test helpers that several packages share:
// bounded waits instead of sleeps, free loopback ports, and a logger that
// writes to the test's own log. It imports nothing of the project: the
// harnesses that start project code live next to that code
// (raftstore/raftstoretest for Raft shard groups, actors/enginetest for
// the single-node engine stack).
package testutil

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it returns true, and fails the test if it does
// not within timeout. Use it instead of sleeping.
func WaitFor(tb testing.TB, timeout time.Duration, cond func() bool) {
	tb.Helper()
	if !Eventually(timeout, cond) {
		tb.Fatalf("condition not met within %v", timeout)
	}
}

// Eventually polls cond until it returns true or timeout passes, and
// reports whether it became true.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
		wait = min(wait*2, 20*time.Millisecond)
	}
}

// Logger returns a logger that writes every record, at any level, to the
// test's log (tb.Logf): shown when the test fails or runs with -v. It is
// safe to use from any goroutine, also after the test has ended: records
// logged then (a goroutine still shutting down) are dropped, where a
// direct tb.Logf would panic.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(tb), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LogWriter returns a writer that sends each write, one log line or
// record, to the test's log, with Logger's guarantees. It suits loggers
// that take an io.Writer, such as hashicorp/raft's hclog
// (raftstore.Config.RaftLog).
//
// A fuzz target's *testing.F may not log while the fuzz function runs (the
// testing package panics, which kills the fuzz worker), and background
// goroutines log at any time. For an F the writer keeps the last
// fuzzLogLines lines and hands them to the F's log at cleanup, outside the
// fuzz function, if the fuzz test failed.
func LogWriter(tb testing.TB) io.Writer {
	w := &tbWriter{tb: tb}
	if _, ok := tb.(*testing.F); ok {
		w.held = make([]string, 0, fuzzLogLines)
	}
	tb.Cleanup(w.end)
	return w
}

// fuzzLogLines bounds the lines a fuzz test's logger holds back.
const fuzzLogLines = 200

// tbWriter forwards writes to tb.Logf until the test ends. The mutex orders
// every forwarded write before end, so none can reach a finished test.
type tbWriter struct {
	mu    sync.Mutex
	tb    testing.TB
	held  []string // non-nil for a *testing.F: the newest lines, oldest first
	ended bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	line := string(bytes.TrimRight(p, "\n"))
	switch {
	case w.ended:
	case w.held != nil:
		if len(w.held) == fuzzLogLines {
			w.held = append(w.held[:0], w.held[1:]...)
		}
		w.held = append(w.held, line)
	default:
		w.tb.Logf("%s", line)
	}
	return len(p), nil
}

// end runs at cleanup. Cleanups run last-registered first, so a harness
// that creates its logger before it registers its own cleanups still logs
// while those run.
func (w *tbWriter) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held != nil && w.tb.Failed() {
		for _, line := range w.held {
			w.tb.Logf("%s", line)
		}
	}
	w.ended = true
}

// handedOut holds the ports FreeAddr returned in this process: a port
// picked but not yet bound (a node process about to start) looks free,
// and a second pick of it would fail one of the two nodes at bind.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreeAddr returns a 127.0.0.1 address whose port is free for TCP and UDP
// (gossip uses both), and that it never returned before in this process.
// Ports come from 20000-31999, below Linux's ephemeral range (32768 and
// up), so that a port picked here is not taken by some outgoing connection
// before the test binds it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		handedOut.ports[port] = true
		return addr
	}
	tb.Fatal("no free port in 20000-31999")
	return ""
}
