package refusal

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRefusedOncePerPeerAndInterval(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute, func() time.Time { return now })
	lines := func() int { return strings.Count(buf.String(), "refused a peer") }

	for port := 0; port < 100; port++ { // a TCP peer dials from a new port each time
		l.Refused("raft", "10.0.0.9:"+string(rune('0'+port%10))+"000", "bad certificate")
	}
	if got := lines(); got != 1 {
		t.Fatalf("100 refusals of one peer: %d lines; want 1", got)
	}
	l.Refused("gossip", "10.0.0.10:7946", "no key")
	if got := lines(); got != 2 {
		t.Fatalf("a second peer: %d lines; want 2", got)
	}
	l.Refused("gossip", "10.0.0.9:7946", "no key")
	if got := lines(); got != 3 {
		t.Fatalf("the first peer on another port: %d lines; want 3", got)
	}
	now = now.Add(59 * time.Second)
	l.Refused("raft", "10.0.0.9:1234", "bad certificate")
	if got := lines(); got != 3 {
		t.Fatalf("within the interval: %d lines; want 3", got)
	}
	now = now.Add(2 * time.Second)
	l.Refused("raft", "10.0.0.9:1234", "bad certificate")
	if got := lines(); got != 4 {
		t.Fatalf("after the interval: %d lines; want 4", got)
	}
	if !strings.Contains(buf.String(), "also_refused_since_last_line=100") {
		t.Errorf("the line after the interval does not count the suppressed refusals:\n%s", buf.String())
	}
	var nilLog *Log
	nilLog.Refused("raft", "x", "y") // a nil Log is off
}

func TestRefusedBoundedMemory(t *testing.T) {
	l := New(slog.New(slog.DiscardHandler), time.Minute, nil)
	for i := 0; i < 3*peersMax; i++ {
		l.Refused("gossip", "10.1."+string(rune('a'+i%26))+"."+time.Duration(i).String(), "no key")
	}
	l.mu.Lock()
	n := len(l.mu.peers)
	l.mu.Unlock()
	if n > peersMax {
		t.Fatalf("%d peers remembered; want at most %d", n, peersMax)
	}
}
