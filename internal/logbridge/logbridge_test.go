package logbridge

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"2026-12-03T16:09:39.512Z [WARN]  raft-3: no known peers, aborting election", slog.LevelWarn, "raft-3: no known peers, aborting election"},
		{"[ERR] memberlist: Failed to send ping: write udp", slog.LevelError, "memberlist: Failed to send ping: write udp"},
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5", slog.LevelDebug, "memberlist: Stream connection from=1.2.3.4:5"},
		{"no tag at all", slog.LevelInfo, "no tag at all"},
		{"a [bracket] that is no level", slog.LevelInfo, "a [bracket] that is no level"},
	} {
		level, msg := Parse(tt.line)
		if level != tt.level || msg != tt.msg {
			t.Errorf("Parse(%q) = %v %q; want %v %q", tt.line, level, msg, tt.level, tt.msg)
		}
	}
}

// TestWriterLevelsAndNoise: lines come out in the node's format at their
// own level, below the node's level they are dropped, and a fresh group's
// election warnings are demoted while a later election's are not.
func TestWriterLevelsAndNoise(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := &Writer{Log: log, Lib: "raft", Demote: RaftStartupNoise}
	_, _ = w.Write([]byte("2026-12-03T16:09:39.956Z [WARN]  raft-2: heartbeat timeout reached, starting election: last-leader-addr= last-leader-id=\n" +
		"2026-12-03T16:09:39.956Z [WARN]  raft-2: heartbeat timeout reached, starting election: last-leader-addr=10.0.0.1:7000 last-leader-id=n1\n" +
		"2026-12-03T16:09:39.956Z [DEBUG] raft-2: nothing to see\n" +
		"2026-12-03T16:09:39.956Z [ERROR] raft-2: failed to appendEntries\n"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines logged; want 2 (the later election and the error):\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], "last-leader-id=n1") || !strings.Contains(lines[0], `"lib":"raft"`) {
		t.Errorf("line 1 = %s", lines[0])
	}
	if !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Errorf("line 2 = %s", lines[1])
	}
}
