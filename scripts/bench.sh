#!/usr/bin/env bash
# bench.sh runs Flashstock and the ../shared/bench baselines back to back on
# this machine with the same load tool (wrk + purchase.lua, 64 connections),
# several rounds, and writes the medians to docs/benchmarks.md.
#
#   scripts/bench.sh [ROUNDS] [SECONDS]     defaults: 3 rounds of 8 s
#
# Needs wrk and redis-server (apt-get install -y wrk redis-server) and the
# baselines in ../shared/bench. Everything listens on 127.0.0.1 and is
# stopped at the end; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
secs=${2:-8}
shared=${SHARED_BENCH:-../shared/bench}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

for t in wrk redis-server; do
	command -v "$t" >/dev/null || { echo "bench: $t not found (apt-get install -y wrk redis-server)" >&2; exit 1; }
done
[ -f "$shared/purchase.lua" ] || { echo "bench: $shared/purchase.lua not found" >&2; exit 1; }

echo "bench: building" >&2
go build -o "$tmp/node" ./cmd/node
go build -o "$tmp/loadgen" ./cmd/loadgen
(cd "$shared/baseline" && go build -o "$tmp/baseline" .)

wait_http() { # url: up when it answers with 200
	for _ in $(seq 1 200); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: $1 did not come up" >&2
	return 1
}

wait_port() { # url: up when it answers anything
	for _ in $(seq 1 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" != "000" ] && return 0
		sleep 0.05
	done
	echo "bench: $1 did not come up" >&2
	return 1
}

stop() { # pid
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	kill -9 "$1" 2>/dev/null || true
}

run_wrk() { # url item -> "p50_us= p99_us= rps= non2xx= errors="
	ITEM=$2 wrk -t2 -c64 -d"${secs}s" -s "$shared/purchase.lua" "$1" 2>/dev/null | tail -n1
}

start_node() { # dir -> sets node_pid, token
	"$tmp/node" --name bench --data-dir "$1" --trust-user-header --rate-user 0 --rate-ip 0 \
		--http-addr 127.0.0.1:18080 --raft-addr 127.0.0.1:17000 --gossip-addr 127.0.0.1:17946 \
		--actor-addr 127.0.0.1:18090 --log-level error >"$tmp/node.out" 2>"$tmp/node.err" &
	node_pid=$!
	pids+=("$node_pid")
	wait_http http://127.0.0.1:18080/readyz
	token=$(cat "$1/admin-token")
}

create_item() { # id stock
	curl -fsS -o /dev/null -X POST http://127.0.0.1:18080/v1/items -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "{\"id\":\"$1\",\"stock\":$2}"
}

results="$tmp/results"
: >"$results"
record() { # name line
	echo "$1 $2" | tee -a "$results" >&2
}

for r in $(seq 1 "$rounds"); do
	echo "bench: round $r/$rounds" >&2

	"$tmp/baseline" -mode hello >/dev/null 2>&1 &
	p=$!; pids+=("$p"); wait_port http://127.0.0.1:18080/; sleep 0.3
	record hello "$(run_wrk http://127.0.0.1:18080/ 1)"
	stop "$p"

	rm -rf "$tmp/redis"; mkdir -p "$tmp/redis"
	redis-server --port 16379 --dir "$tmp/redis" --appendonly yes --appendfsync everysec --save '' >/dev/null 2>&1 &
	rp=$!; pids+=("$rp"); sleep 0.5
	"$tmp/baseline" -mode redis -redis 127.0.0.1:16379 -stock 100000000 >/dev/null 2>&1 &
	p=$!; pids+=("$p"); wait_port http://127.0.0.1:18080/; sleep 0.3
	record redis "$(run_wrk http://127.0.0.1:18080/ 1)"
	stop "$p"; stop "$rp"

	rm -rf "$tmp/data"
	start_node "$tmp/data"
	create_item 1 100000000
	create_item gone 0
	record flashstock "$(run_wrk http://127.0.0.1:18080/ 1)"
	record flashstock_soldout "$(run_wrk http://127.0.0.1:18080/ gone)"
	stop "$node_pid"
done

# Medians per name and field.
python3 - "$results" "$rounds" "$secs" <<'PY'
import sys, statistics, re, platform, subprocess, datetime
path, rounds, secs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    name, rest = line.split(" ", 1)
    kv = dict(re.findall(r"(\w+)=([\d.]+)", rest))
    rows.setdefault(name, []).append({k: float(v) for k, v in kv.items()})
def med(name, k):
    return statistics.median(r[k] for r in rows[name])
out = []
for name in ["hello", "redis", "flashstock", "flashstock_soldout"]:
    if name not in rows: continue
    out.append((name, med(name, "rps"), med(name, "p50_us"), med(name, "p99_us"), max(r["non2xx"] for r in rows[name]), [int(r["rps"]) for r in rows[name]]))
print("| run | median req/s | p50 | p99 | non-2xx (max) | runs (req/s) |")
print("|---|---|---|---|---|---|")
for name, rps, p50, p99, non2xx, runs in out:
    print(f"| {name} | {rps:,.0f} | {p50/1000:.2f} ms | {p99/1000:.2f} ms | {int(non2xx)} | {runs} |")
m = {n: r for n, r, *_ in out}
if "redis" in m and "flashstock" in m:
    print(f"\nflashstock / redis purchase throughput: **{m['flashstock']/m['redis']:.2f}x**")
if "hello" in m and "flashstock_soldout" in m:
    print(f"flashstock sold-out / hello ceiling: **{m['flashstock_soldout']/m['hello']:.2f}x**")
PY
