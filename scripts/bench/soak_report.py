#!/usr/bin/env python3
"""soak_report.py: the Markdown report (and an SVG chart) of scripts/soak.sh.

Reads the soak's result lines on stdin:

  window=K t=S metric=v1,v2,... sold=N wrkI:requests=..,duration_us=..,p50_us=..,...
  restart victim=nI catchup_s=X index=N

and prints the per-window table and a summary. Latency percentiles of a
window are the worst over the load generators of that window (one per node
it targets); RSS and heap are the largest over the nodes.

  soak_report.py NODES WINDOW [--svg FILE] < results
"""
import sys


def parse(lines):
    windows, restart = [], {}
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "restart":
            restart = dict(p.split("=", 1) for p in parts[1:])
            continue
        w = {"wrk": []}
        for p in parts:
            if p.startswith("wrk"):
                kv = dict(x.split("=", 1) for x in p.split(":", 1)[1].split(",") if "=" in x)
                if kv:
                    w["wrk"].append({k: int(v) for k, v in kv.items()})
                continue
            k, v = p.split("=", 1)
            if "," in v or k.startswith(("process_", "go_", "flashstock_")):
                w[k] = [float(x) if x else None for x in v.split(",")]
            else:
                w[k] = v
        windows.append(w)
    return windows, restart


def biggest(vals):
    vals = [v for v in vals if v is not None]
    return max(vals) if vals else None


def mib(b):
    return "-" if b is None else f"{b / 2**20:.0f}"


def ms(us):
    return f"{us / 1e3:.1f}"


def row_figures(w):
    ok = sum(x["requests"] - x["non2xx"] for x in w["wrk"])
    bad = sum(x["non2xx"] + x["errors"] for x in w["wrk"])
    dur = max((x["duration_us"] for x in w["wrk"]), default=0)
    return {
        "rate": ok / (dur / 1e6) if dur else 0,
        "failed": bad,
        "p50": max((x["p50_us"] for x in w["wrk"]), default=0),
        "p99": max((x["p99_us"] for x in w["wrk"]), default=0),
        "max": max((x["max_us"] for x in w["wrk"]), default=0),
        "rss": biggest(w["process_resident_memory_bytes"]),
        "heap": biggest(w["go_memstats_heap_inuse_bytes"]),
        "snaps": biggest(w["flashstock_raft_snapshots_total"]),
        "pause": biggest(w["flashstock_raft_snapshot_pause_seconds"]),
        "persist": biggest(w["flashstock_raft_snapshot_persist_seconds"]),
        "raft": biggest(w["flashstock_raft_dir_bytes"]),
        "sold": int(w["sold"]) if w.get("sold") else None,
    }


def per_order(windows, key, victim):
    """Bytes per order of a memory series over the last two thirds of the
    soak, for nodes never restarted: the growth over the orders sold."""
    start = len(windows) // 3
    a, b = windows[start], windows[-1]
    if a.get("sold") in (None, "") or b.get("sold") in (None, ""):
        return None
    sold = int(b["sold"]) - int(a["sold"])
    if sold <= 0:
        return None
    growth = []
    for i, (x, y) in enumerate(zip(a[key], b[key])):
        if victim == f"n{i + 1}" or x is None or y is None:
            continue
        growth.append((y - x) / sold)
    return max(growth) if growth else None


def svg(rows, window, path, title):
    W, H, pad, gap = 720, 420, 60, 30
    ph = (H - 2 * pad - gap) / 2
    t = [(i + 1) * window for i in range(len(rows))]
    tmax = max(t) if t else 1

    def panel(y0, vals, label, color):
        vmax = max([v for v in vals if v is not None] + [1e-9]) * 1.15
        out = [f'<rect x="{pad}" y="{y0}" width="{W - 2 * pad}" height="{ph:.0f}" fill="none" stroke="#999"/>',
               f'<text x="{pad}" y="{y0 - 6}" font-size="13">{label}</text>']
        for k in range(5):
            v = vmax * k / 4
            y = y0 + ph - ph * k / 4
            out.append(f'<text x="{pad - 6}" y="{y + 4:.0f}" font-size="11" text-anchor="end">{v:.0f}</text>')
            out.append(f'<line x1="{pad}" x2="{W - pad}" y1="{y:.0f}" y2="{y:.0f}" stroke="#eee"/>')
        pts = " ".join(f"{pad + (W - 2 * pad) * tt / tmax:.1f},{y0 + ph - ph * v / vmax:.1f}"
                       for tt, v in zip(t, vals) if v is not None)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        return out

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<text x="{W / 2}" y="20" font-size="14" text-anchor="middle">{title}</text>']
    parts += panel(pad, [r["p99"] / 1e3 for r in rows], "p99 per window (ms)", "#c0392b")
    parts += panel(pad + ph + gap, [None if r["rss"] is None else r["rss"] / 2**20 for r in rows],
                   "RSS, largest node (MiB)", "#2c7fb8")
    parts.append(f'<text x="{W / 2}" y="{H - 15}" font-size="12" text-anchor="middle">seconds into the sale</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def main():
    args = sys.argv[1:]
    svg_path = None
    if "--svg" in args:
        i = args.index("--svg")
        svg_path = args[i + 1]
        del args[i:i + 2]
    nodes, window = int(args[0]), int(args[1])
    windows, restart = parse(sys.stdin)
    if not windows:
        sys.exit("soak_report: no windows")
    rows = [row_figures(w) for w in windows]
    victim = restart.get("victim")

    print(f"### Soak: {nodes} node{'s' if nodes > 1 else ''}, {len(rows) * window} s, windows of {window} s\n")
    print("| t (s) | purchases/s | p50 ms | p99 ms | max ms | failed | RSS MiB | heap MiB | snapshots | "
          "snapshot pause ms | persist ms | raft dir MiB | units sold |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        pause = "-" if r["pause"] is None else "%.2f" % (r["pause"] * 1e3)
        persist = "-" if r["persist"] is None else "%.0f" % (r["persist"] * 1e3)
        snaps = "-" if r["snaps"] is None else "%.0f" % r["snaps"]
        sold = "-" if r["sold"] is None else str(r["sold"])
        print(f"| {(i + 1) * window} | {r['rate']:.0f} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['max'])} | "
              f"{r['failed']} | {mib(r['rss'])} | {mib(r['heap'])} | {snaps} | {pause} | {persist} | "
              f"{mib(r['raft'])} | {sold} |")
    sold = next((r["sold"] for r in reversed(rows) if r["sold"] is not None), 0)
    first = rows[0]["p99"]
    worst = max(r["p99"] for r in rows)
    over = sum(1 for r in rows if r["p99"] > 50_000)
    print()
    print(f"- Units sold: {sold:,} in {len(rows) * window} s ({sold / (len(rows) * window):,.0f}/s); "
          f"failed requests: {sum(r['failed'] for r in rows)}.")
    print(f"- p99: first window {ms(first)} ms, worst {ms(worst)} ms ({worst / max(first, 1):.1f}x the first); "
          f"windows over 50 ms: {over} of {len(rows)}; median window p99 "
          f"{ms(sorted(r['p99'] for r in rows)[len(rows) // 2])} ms.")
    rss_b = per_order(windows, "process_resident_memory_bytes", victim)
    if rss_b is not None:
        print(f"- RSS growth per order over the last two thirds: {rss_b:.0f} B (largest over the nodes never "
              f"restarted). Go heap in use swings with each collection; the lowest sample of a stretch is "
              f"the nearest to the live heap.")
    raft = [r["raft"] for r in rows if r["raft"] is not None]
    if raft:
        print(f"- Raft directory: {mib(raft[0])} MiB after the first window, {mib(max(raft))} MiB at most, "
              f"{mib(raft[-1])} MiB at the end.")
    if restart:
        half = (len(rows) + 1) // 2
        around = rows[max(half - 2, 0):min(half + 2, len(rows))]
        print(f"- Follower {victim} killed at {half * window - window} s, restarted at {half * window} s: "
              f"caught up in {restart.get('catchup_s', '?')} s (to index {restart.get('index', '?')}); "
              f"p99 of the windows around it: {', '.join(ms(r['p99']) for r in around)} ms.")
    if svg_path:
        svg(rows, window, svg_path, f"Flashstock soak: {nodes} node{'s' if nodes > 1 else ''}, one hot item")
        print(f"- Chart: {svg_path}")


if __name__ == "__main__":
    main()
