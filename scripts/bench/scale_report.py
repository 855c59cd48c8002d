#!/usr/bin/env python3
"""Markdown report of scripts/bench-scale.sh results.

Usage: scale_report.py Q SECONDS ROUNDS QE RESULTS [SUBSYSTEMS...]
RESULTS holds one "name key=value ..." line per run.
"""
import statistics
import sys


def main():
    q, secs, rounds, qe, results = sys.argv[1:6]
    runs = {}
    for line in open(results):
        parts = line.split()
        if not parts:
            continue
        kv = dict(p.split("=", 1) for p in parts[1:])
        runs.setdefault(parts[0], []).append(kv)

    def med(name, key):
        vals = [float(r[key]) for r in runs.get(name, [])]
        return statistics.median(vals) if vals else float("nan")

    print(f"Each node in its own cgroup of Q = {q} core (cgroup v1 cpu.cfs_quota_us); wrk outside them, "
          f"96 closed-loop connections split over the nodes, every request a new shopper; {secs} s per run, "
          f"{rounds} round(s), medians. CPU per purchase is the nodes' cpuacct time over confirmed purchases; "
          f"idle is each node's CPU over 5 s before the load.\n")
    for sale, title in (("multi", "A sale of 64 items over all shards"), ("hot", "One hot item")):
        print(f"### {title}\n")
        print("| run | nodes | purchases/s | p50 | p99 | CPU µs per purchase | idle CPU per node | purchases per Raft entry |")
        print("|---|---|--:|--:|--:|--:|--:|--:|")
        for run, label in (("A", "1 at Q"), ("A3", "1 at 3Q"), ("B", "3 at Q"), ("C", "6 at Q, 3 replicas"),
                           ("D", "3 at Q + 3 gateways at Q")):
            name = f"{run}-{sale}"
            if name not in runs:
                continue
            print(f"| {run} | {label} | {med(name, 'rps'):,.0f} | {med(name, 'p50_ms'):.1f} ms | {med(name, 'p99_ms'):.1f} ms "
                  f"| {med(name, 'cpu_us'):,.0f} | {med(name, 'idle_cores'):.3f} core | {med(name, 'per_entry'):.1f} |")
        a, a3, b, c, d = (med(f"{x}-{sale}", "rps") for x in ("A", "A3", "B", "C", "D"))
        print()
        print(f"Ratios: B/A = {b / a:.2f} (goal 1.8), B/A3 = {b / a3:.2f} (goal 0.6), C/B = {c / b:.2f} (goal 1.5), "
              f"D/B = {d / b:.2f} (goal 1.3).\n")
    if "E1" in runs:
        print(f"### Sold-out answers and item reads through gateways (core nodes at Q, each gateway at QE = {qe} core)\n")
        print("| run | nodes | answers/s | p50 | p99 | CPU µs per answer | failed |")
        print("|---|---|--:|--:|--:|--:|--:|")
        for run, label in (("E1", "3 core + 1 gateway"), ("E6", "3 core + 6 gateways")):
            if run in runs:
                print(f"| {run} | {label} | {med(run, 'rps'):,.0f} | {med(run, 'p50_ms'):.1f} ms | {med(run, 'p99_ms'):.1f} ms "
                      f"| {med(run, 'cpu_us'):,.0f} | {med(run, 'failed'):.0f} |")
        e1, e6 = med("E1", "rps"), med("E6", "rps")
        print()
        print(f"Ratio: E6 / (6 x E1) = {e6 / (6 * e1):.2f} (goal 0.8).\n")
    for path in sys.argv[6:]:
        name = path.rsplit("/", 1)[-1].split(".")[0]
        lines = [l.rstrip("\n").split("\t") for l in open(path) if "\t" in l]
        if not lines:
            continue
        print(f"Where the CPU of node 1 goes in run {name} (a 5 s CPU profile under load; the share of samples "
              f"whose stack passes through each subsystem, so shares overlap where one stack crosses two):\n")
        print("| subsystem | share of CPU |")
        print("|---|--:|")
        for sub, share in lines:
            print(f"| {sub} | {share} % |")
        print()


if __name__ == "__main__":
    main()
