#!/usr/bin/env bash
# soak.sh: a long sale. One hot item with a stock of 10^9 is sold for
# SECONDS to distinct shoppers (a new user per request, 64 closed-loop
# connections) in back-to-back windows of WINDOW seconds; after each window
# the nodes' figures are read from /metrics. Prints Markdown: per window the
# purchases/s, p50, p99 and max latency, RSS and Go heap, snapshots taken and
# the longest Apply pause and Persist time of the last ones, the Raft
# directory; then bytes per order and, with 3 nodes, how a follower restarted
# mid-soak caught up. SOAK_SVG=FILE also draws p99 and RSS over time.
#
#   scripts/soak.sh [NODES] [SECONDS] [WINDOW]     defaults: 1 300 10
#
# NODES is 1 or 3. With 3 (replicas 3), the shoppers go to every node but
# one, the victim: a follower of the item's shard, killed (-9) at half time
# and restarted one window later. Its catch-up is the time until it has
# applied what the leader had committed when it came back.
#
# Needs wrk, curl, python3 and go. Everything listens on 127.0.0.1 and is
# stopped at the end; data lives in a temporary directory (SOAK_DIR to keep
# it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=${1:-1}
secs=${2:-300}
window=${3:-10}
conns=64
item=soak1 # buy.lua names items PREFIX1..PREFIX$ITEMS
case "$nodes" in 1 | 3) ;; *) echo "soak: NODES must be 1 or 3" >&2; exit 2 ;; esac
[ "$secs" -ge "$window" ] || { echo "soak: SECONDS must be at least WINDOW" >&2; exit 2; }
for t in wrk curl python3 go; do
	command -v "$t" >/dev/null || { echo "soak: $t not found" >&2; exit 1; }
done

tmp=$(mktemp -d)
data=${SOAK_DIR:-$tmp}
mkdir -p "$data"
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/admin-token")
token=$(cat "$tmp/admin-token")
echo "soak: building" >&2
go build -o "$tmp/node" ./cmd/node
lua=$(pwd)/scripts/bench/buy.lua

port() { echo $((29080 + $1)); }
node_args=()
start_node() { # i: starts node i (again, after a kill) with its data dir
	local i=$1 join=()
	[ "$nodes" -gt 1 ] && join=(--join 127.0.0.1:29901 --gossip-profile local)
	SECKILL_ADMIN_TOKEN_FILE=$tmp/admin-token "$tmp/node" --name "n$i" --data-dir "$data/d$i" \
		--trust-user-header --rate-user 0 --rate-ip 0 --http-addr 127.0.0.1:"$(port "$i")" \
		--raft-addr 127.0.0.1:$((29000 + i)) --gossip-addr 127.0.0.1:$((29900 + i)) \
		--actor-addr 127.0.0.1:$((29100 + i)) --bootstrap-expect "$nodes" --replicas 3 \
		"${join[@]}" --log-level warn </dev/null >>"$tmp/n$i.log" 2>&1 &
	pids[$i]=$!
}
wait_ready() { # i: bounded wait for /readyz?all=1
	for _ in $(seq 1 600); do
		curl -fsS -o /dev/null "http://127.0.0.1:$(port "$1")/readyz?all=1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "soak: node n$1 not ready after 60 s" >&2
	tail -20 "$tmp/n$1.log" >&2
	exit 1
}
metric() { # i name: sum of the samples of a metric (empty when the node is down)
	{ curl -fsS -m 5 "http://127.0.0.1:$(port "$1")/metrics" 2>/dev/null || true; } |
		awk -v n="$2" '$1 == n || index($1, n"{") == 1 { s += $2; f = 1 } END { if (f) printf "%.6f\n", s }'
}
status() { # i: the node's cluster status (JSON; {} when the node is down)
	curl -fsS -m 5 -H "Authorization: Bearer $token" "http://127.0.0.1:$(port "$1")/v1/cluster/status" 2>/dev/null || echo '{}'
}
# shard_field i shard field: a field of one shard in node i's status.
shard_field() {
	status "$1" | python3 -c '
import json, sys
s, f = int(sys.argv[1]), sys.argv[2]
for sh in json.load(sys.stdin).get("shards", []):
    if sh.get("id") == s:
        print(sh.get(f, ""))' "$2" "$3"
}

for i in $(seq 1 "$nodes"); do start_node "$i"; done
for i in $(seq 1 "$nodes"); do wait_ready "$i"; done
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$(port 1)/v1/items" -H "Authorization: Bearer $token" \
	-H 'Content-Type: application/json' -d "{\"id\":\"$item\",\"stock\":1000000000,\"per_user_limit\":1}"
shards=$(curl -fsS "http://127.0.0.1:$(port 1)/readyz" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["shards"]))')
shard=$(python3 -c '
import sys
h = 0x811c9dc5
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x01000193) & 0xffffffff
print(h % int(sys.argv[2]))' "$item" "$shards")

victim=
targets=$(seq 1 "$nodes")
if [ "$nodes" -gt 1 ]; then
	leader=$(shard_field 1 "$shard" leader)
	for i in $(seq 1 "$nodes"); do if [ "n$i" != "$leader" ]; then victim=$i; fi; done
	targets=$(for i in $(seq 1 "$nodes"); do if [ "$i" != "$victim" ]; then echo "$i"; fi; done)
	echo "soak: item $item on shard $shard, leader $leader; n$victim is restarted mid-soak" >&2
fi
ntargets=$(echo "$targets" | wc -w)

windows=$((secs / window))
half=$(((windows + 1) / 2))
catchup=
: >"$tmp/results"
for w in $(seq 1 "$windows"); do
	if [ -n "$victim" ] && [ "$w" = "$half" ]; then
		kill -9 "${pids[$victim]}" 2>/dev/null || true
		wait "${pids[$victim]}" 2>/dev/null || true
		echo "soak: window $w: n$victim killed" >&2
	fi
	if [ -n "$victim" ] && [ "$w" = $((half + 1)) ]; then
		start_node "$victim"
		restarted=$(date +%s.%N)
		(# owned by the soak: ends when caught up or after 120 s
			target=""
			for _ in $(seq 1 1200); do
				[ -n "$target" ] || target=$(shard_field "$(echo "$targets" | head -1)" "$shard" commit_index)
				got=$(shard_field "$victim" "$shard" applied_index)
				if [ -n "$target" ] && [ -n "$got" ] && [ "$got" -ge "$target" ]; then
					python3 -c "import sys,time; print(f'catchup_s={time.time() - float(sys.argv[1]):.2f} index={sys.argv[2]}')" "$restarted" "$target"
					exit 0
				fi
				sleep 0.1
			done
			echo "catchup_s=none"
		) >"$tmp/catchup" &
		catchup=$!
		echo "soak: window $w: n$victim restarted" >&2
	fi
	outs=()
	for i in $targets; do
		RUN="w$w-n$i" ITEMS=1 PREFIX=soak wrk -t1 -c$((conns / ntargets)) -d"${window}s" -s "$lua" "http://127.0.0.1:$(port "$i")/" \
			>"$tmp/wrk-$w-$i" 2>/dev/null &
		outs+=($!)
	done
	for p in "${outs[@]}"; do wait "$p" || true; done
	line="window=$w t=$((w * window))"
	for m in process_resident_memory_bytes go_memstats_heap_inuse_bytes flashstock_raft_snapshots_total \
		flashstock_raft_snapshot_pause_seconds flashstock_raft_snapshot_persist_seconds flashstock_raft_dir_bytes; do
		vals=""
		for i in $(seq 1 "$nodes"); do vals="$vals,$(metric "$i" "$m")"; done
		line="$line $m=${vals#,}"
	done
	sold=$(curl -fsS "http://127.0.0.1:$(port "$(echo "$targets" | head -1)")/v1/items/$item" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["sold"])' 2>/dev/null || echo "")
	line="$line sold=$sold"
	for i in $targets; do line="$line wrk$i:$(tail -1 "$tmp/wrk-$w-$i" | tr ' ' ',')"; done
	echo "$line" | tee -a "$tmp/results" >&2
done
if [ -n "$catchup" ]; then wait "$catchup" || true; fi
[ -s "$tmp/catchup" ] && echo "restart victim=n$victim $(cat "$tmp/catchup")" >>"$tmp/results"
python3 scripts/bench/soak_report.py "$nodes" "$window" ${SOAK_SVG:+--svg "$SOAK_SVG"} <"$tmp/results"
