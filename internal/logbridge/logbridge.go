// Package logbridge routes the log lines of libraries that write text
// (hashicorp/raft through hclog, memberlist through the standard log
// package) into the node's slog logger, so that a node writes one format
// (--log-format text or json) at one set of levels (--log-level).
//
// A line's level comes from its bracketed tag ("[WARN]", "[ERR]" ...); a
// line without one is logged at Info. Lines that are noise at the level the
// library chose are demoted (Demote).
package logbridge

import (
	"context"
	"log/slog"
	"strings"
)

// Writer is an io.Writer that logs each line written to it through Log,
// with attribute lib set to its library's name.
type Writer struct {
	Log *slog.Logger
	Lib string
	// Demote, if set, may lower a line's level (return a lower one): e.g.
	// hashicorp/raft's election warnings while a group has never had a
	// leader, which every fresh start prints once per shard.
	Demote func(level slog.Level, msg string) slog.Level
}

// Write implements io.Writer; it never fails.
func (w *Writer) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		level, msg := Parse(line)
		if w.Demote != nil {
			level = w.Demote(level, msg)
		}
		if w.Log.Enabled(context.Background(), level) {
			w.Log.Log(context.Background(), level, msg, "lib", w.Lib)
		}
	}
	return len(p), nil
}

// tags maps the level tags hclog and memberlist write to slog levels.
var tags = map[string]slog.Level{
	"TRACE": slog.LevelDebug - 4, "DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo,
	"WARN": slog.LevelWarn, "ERR": slog.LevelError, "ERROR": slog.LevelError,
}

// Parse returns a line's level and its message without the timestamp and
// the level tag: "2026-12-03T16:09:39.512Z [WARN]  raft-3: no known peers"
// is Warn, "raft-3: no known peers".
func Parse(line string) (slog.Level, string) {
	open := strings.IndexByte(line, '[')
	if open < 0 {
		return slog.LevelInfo, line
	}
	end := strings.IndexByte(line[open:], ']')
	if end < 0 {
		return slog.LevelInfo, line
	}
	level, ok := tags[line[open+1:open+end]]
	if !ok {
		return slog.LevelInfo, line
	}
	return level, strings.TrimSpace(line[open+end+1:])
}

// RaftStartupNoise demotes to Debug hashicorp/raft's warnings that a group
// that never had a leader starts an election (a fresh node prints one per
// shard), and that one without peers yet cannot: an election after a
// leader was known, which matters mid-sale, keeps its level.
func RaftStartupNoise(level slog.Level, msg string) slog.Level {
	switch {
	case strings.Contains(msg, "heartbeat timeout reached, starting election") && strings.Contains(msg, "last-leader-addr= "):
		return slog.LevelDebug
	case strings.Contains(msg, "no known peers, aborting election"):
		return slog.LevelDebug
	}
	return level
}
