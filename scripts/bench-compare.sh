#!/usr/bin/env bash
# bench-compare.sh: the single-node purchase rate of two commits, side by
# side. Each commit is built from a clean worktree; each round starts a
# fresh node of each (the order alternates: old-new, new-old, ...), creates
# one item with a stock of 10^9 and runs wrk with ../shared/bench/purchase.lua
# (64 connections, a new shopper per request). Prints the medians as
# Markdown, so a refactor can show it changed no speed.
#
#   scripts/bench-compare.sh OLD [NEW] [ROUNDS] [SECONDS]
#                                     defaults: NEW=HEAD, 5 rounds of 8 s
#
# Needs wrk, curl, python3, go and git. Everything listens on 127.0.0.1
# and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: scripts/bench-compare.sh OLD [NEW] [ROUNDS] [SECONDS]" >&2; exit 2; }
old=$(git rev-parse --short "$1")
new=$(git rev-parse --short "${2:-HEAD}")
rounds=${3:-5}
secs=${4:-8}
lua=${SHARED_BENCH:-../shared/bench}/purchase.lua
for t in wrk curl python3 go git; do
	command -v "$t" >/dev/null || { echo "bench-compare: $t not found" >&2; exit 1; }
done
[ -f "$lua" ] || { echo "bench-compare: $lua not found (SHARED_BENCH=DIR)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	for c in "$old" "$new"; do git worktree remove --force "$tmp/src-$c" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/admin-token")
token=$(cat "$tmp/admin-token")

for c in "$old" "$new"; do
	echo "bench-compare: building $c" >&2
	git worktree add --detach -q "$tmp/src-$c" "$c"
	(cd "$tmp/src-$c" && go build -o "$tmp/node-$c" ./cmd/node)
done

run() { # commit round: one measured run of a fresh node; prints a result line
	local c=$1 r=$2
	rm -rf "$tmp/data"
	SECKILL_ADMIN_TOKEN_FILE=$tmp/admin-token "$tmp/node-$c" --name bc --data-dir "$tmp/data" \
		--trust-user-header --rate-user 0 --rate-ip 0 --http-addr 127.0.0.1:19480 \
		--raft-addr 127.0.0.1:19401 --gossip-addr 127.0.0.1:19402 --actor-addr 127.0.0.1:19403 \
		--log-level error </dev/null >"$tmp/node.log" 2>&1 &
	pid=$!
	for _ in $(seq 1 600); do
		curl -fsS -o /dev/null http://127.0.0.1:19480/readyz 2>/dev/null && break
		sleep 0.05
	done
	curl -fsS -o /dev/null -X POST http://127.0.0.1:19480/v1/items -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d '{"id":"1","stock":1000000000}'
	local out
	out=$(ITEM=1 wrk -t2 -c64 -d"${secs}s" -s "$lua" http://127.0.0.1:19480/ 2>/dev/null | tail -n1)
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=
	echo "$c round=$r $out"
}

: >"$tmp/results"
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) = 1 ]; then order="$old $new"; else order="$new $old"; fi
	for c in $order; do run "$c" "$r" | tee -a "$tmp/results" >&2; done
done

python3 - "$old" "$new" "$secs" "$tmp/results" <<'PY'
import statistics, sys
old, new, secs, results = sys.argv[1:5]
runs = {old: [], new: []}
for line in open(results):
    parts = line.split()
    kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    runs[parts[0]].append(kv)
def med(c, k):
    return statistics.median(float(r[k]) for r in runs[c])
print(f"### Purchase rate, {old} against {new}\n")
print(f"One node, one item, wrk 2 threads x 64 connections, a new shopper per request, "
      f"{len(runs[old])} alternating rounds of {secs} s; medians.\n")
print("| commit | purchases/s | p50 ms | p99 ms | non-2xx | rounds (purchases/s) |")
print("|---|---|---|---|---|---|")
for c in (old, new):
    each = ", ".join(f"{float(r['rps']):.0f}" for r in runs[c])
    print(f"| {c} | {med(c, 'rps'):.0f} | {med(c, 'p50_us') / 1e3:.1f} | {med(c, 'p99_us') / 1e3:.1f} | "
          f"{sum(int(r['non2xx']) for r in runs[c])} | {each} |")
ratios = [float(b["rps"]) / float(a["rps"]) for a, b in zip(runs[old], runs[new])]
print(f"\n{new} sells at {med(new, 'rps') / med(old, 'rps'):.2f}x {old}'s rate (medians); the median of the "
      f"per-round ratios, which cancels drift across rounds, is {statistics.median(ratios):.2f} "
      f"({', '.join(f'{r:.2f}' for r in ratios)}).")
PY
