#!/usr/bin/env python3
"""Where a node's CPU goes, by subsystem, from a CPU profile.

Usage: subsystems.py NODE_BINARY PROFILE

For each subsystem it asks `go tool pprof -focus` for the share of samples
whose stack passes through the subsystem's entry points (inclusive time:
a disk sync counts under the WAL, a socket write under HTTP or the
transport that made it). Shares are of the profile's total and overlap a
little where one stack crosses two subsystems.
"""
import re
import subprocess
import sys

SUBSYSTEMS = [
    ("HTTP API (Echo, net/http, incl. socket I/O)", r"net/http\.\(\*conn\)\.serve"),
    ("Raft leader and follower loops (replication, incl. WAL)", r"hashicorp/raft\.\(\*Raft\)\.(run|processRPC|replicate|heartbeat)"),
    ("WAL disk sync (fsync)", r"raft-wal.*\.sync$"),
    ("Raft transport (mux, TCP)", r"hashicorp/raft\.\(\*NetworkTransport\)|raftstore/mux"),
    ("state machine apply", r"raftstore\.\(\*FSM\)\.Apply"),
    ("engine and item actors", r"flashstock/actors\."),
    ("forwarding between nodes (protoactor, gRPC)", r"asynkron/protoactor-go/remote|google\.golang\.org/grpc"),
    ("order store flush (SQLite)", r"orders\.\(\*Flusher\)"),
    ("gossip (memberlist)", r"hashicorp/memberlist"),
    ("garbage collector", r"runtime\.gcBgMarkWorker|runtime\.gcAssist"),
]


def share(binary, profile, focus):
    out = subprocess.run(["go", "tool", "pprof", "-top", "-nodecount=1000000", "-focus=" + focus, binary, profile],
                         capture_output=True, text=True).stdout
    m = re.search(r"Showing nodes accounting for [^,]+, ([\d.]+)% of", out)
    return float(m.group(1)) if m else 0.0


def main(binary, profile):
    rows = [(name, share(binary, profile, focus)) for name, focus in SUBSYSTEMS]
    for name, s in sorted(rows, key=lambda r: -r[1]):
        print(f"{name}\t{s:.1f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
