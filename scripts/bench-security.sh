#!/usr/bin/env bash
# bench-security.sh measures what the cluster's keys cost (docs/security.md):
# a 3-node cluster on loopback with the keys off (plain gossip, plain TCP
# and gRPC) and on (gossip key, mutual TLS 1.3 on Raft and actors), in
# rounds where both run side by side (the idle one waits while the other is
# measured; the order alternates, off-on, on-off, ...) so that what else
# the machine does falls on both, and prints the medians as Markdown.
#
#   scripts/bench-security.sh [ROUNDS] [SECONDS]     defaults: 3 rounds of 8 s
#
# Per round and setting:
#   purchase      wrk on the three HTTP ports (22+21+21 connections), every
#                 request a new shopper buying one unit of one item: two
#                 thirds are forwarded to the item's owner over the actor
#                 port, and every purchase is replicated over Raft;
#   soldout_tls   wrk on a node that holds no replica of a sold-out item's
#                 shard (--replicas 2, --item-cache-ttl 0): every answer is a
#                 round trip over the actor port to the owner;
#   soldout_local the same item asked on a node with a replica (answered
#                 there, no cluster traffic: the control).
#
# Needs wrk and ../shared/bench/purchase.lua (SHARED_BENCH=DIR to point
# elsewhere). Everything listens on 127.0.0.1 and is stopped at the end;
# every wait is bounded. BENCH_RESULTS=FILE regenerates the report from the
# "name key=value ..." lines of an earlier run (printed on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
secs=${2:-8}
from=${BENCH_RESULTS:-}
shared=${SHARED_BENCH:-../shared/bench}
tmp=$(mktemp -d)
results="$tmp/results"
: >"$results"
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
token=bench-admin-token-0123456789

if [ -z "$from" ]; then
for t in wrk curl python3; do
	command -v "$t" >/dev/null || { echo "bench-security: $t not found (apt-get install -y wrk curl)" >&2; exit 1; }
done
[ -f "$shared/purchase.lua" ] || { echo "bench-security: $shared/purchase.lua not found (SHARED_BENCH=DIR)" >&2; exit 1; }
lua=$(cd "$shared" && pwd)/purchase.lua
for i in 1 2 3; do
	sed "s/prefix = \"u\"/prefix = \"s$i\"/" "$lua" >"$tmp/purchase$i.lua"
done

echo "bench-security: building" >&2
go build -o "$tmp/node" ./cmd/node
keys="$tmp/keys"
"$tmp/node" tls ca --out "$keys/ca" >/dev/null
for i in 1 2 3; do "$tmp/node" tls cert --ca "$keys/ca" --name "n$i" --host 127.0.0.1 --out "$keys" >/dev/null; done
"$tmp/node" gossip-key --out "$keys/gossip.key"
printf '%s\n' "$token" >"$keys/admin-token"
chmod 600 "$keys/admin-token"

wait_ready() { # url of /readyz
	for _ in $(seq 1 600); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench-security: $1 not ready" >&2
	tail -n 20 "$tmp"/*.err >&2 || true
	return 1
}
stop() { # pid
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	kill -9 "$1" 2>/dev/null || true
}
# Each setting has its own ports: off on 29xxx, on on 30xxx.
base() { [ "$1" = on ] && echo 30000 || echo 29000; }
http() { echo "http://127.0.0.1:$(($(base "$1") + 80 + $2))"; } # mode node
status() { curl -fsS "$(http "$1" "${2:-1}")/v1/cluster/status" -H "Authorization: Bearer $token"; }
run_wrk() { # url item conns script -> "p50_us= p99_us= rps= non2xx= errors="
	ITEM=$2 wrk -t1 -c"$3" -d"${secs}s" -s "$4" "$1" 2>/dev/null | tail -n1
}
record() { echo "$1 $2" | tee -a "$results" >&2; }

# cpu MODE: CPU seconds the cluster's three processes used so far. On a
# shared machine the CPU a request costs is steadier than req/s.
cpu() {
	local i t=0 v
	for i in 1 2 3; do
		v=$(curl -fsS "$(http "$1" "$i")/metrics" 2>/dev/null | awk '$1 == "process_cpu_seconds_total" { print $2 }')
		t=$(python3 -c "print($t + ${v:-0})")
	done
	echo "$t"
}
# measured NAME MODE CMD...: runs CMD (a wrk line on stdout) and records it
# with the cluster's CPU microseconds per request.
measured() {
	local name=$1 mode=$2 c0 c1 line
	shift 2
	c0=$(cpu "$mode")
	line=$("$@")
	c1=$(cpu "$mode")
	record "$name" "$line $(python3 -c "import re, sys
kv = dict(re.findall(r'(\w+)=([\d.]+)', sys.argv[1]))
n = float(kv.get('rps', 0)) * $secs
print('cpu_us=%d' % ((($c1) - ($c0)) * 1e6 / n if n else 0))" "$line")"
}

# start_cluster MODE WAIT EXTRA... starts three nodes (pids in cp); MODE is
# on or off; WAIT is readyz (every node holds a replica of every shard) or
# leaders (some do not, and their /readyz stays 503: wait until every node
# knows a leader of the shard measured).
start_cluster() {
	local mode=$1 wait=$2 b
	shift 2
	b=$(base "$mode")
	for i in 1 2 3; do
		rm -rf "$tmp/$mode-c$i"
		local sec=()
		if [ "$mode" = on ]; then
			sec=(--gossip-key-file "$keys/gossip.key" --tls-ca "$keys/ca/ca.crt" --tls-cert "$keys/n$i.crt" --tls-key "$keys/n$i.key")
		fi
		SECKILL_ADMIN_TOKEN_FILE="$keys/admin-token" "$tmp/node" --name "n$i" --data-dir "$tmp/$mode-c$i" --trust-user-header \
			--rate-user 0 --rate-ip 0 --http-addr 127.0.0.1:$((b + 80 + i)) --raft-addr 127.0.0.1:$((b + i)) \
			--gossip-addr 127.0.0.1:$((b + 900 + i)) --actor-addr 127.0.0.1:$((b + 190 + i)) --bootstrap-expect 3 \
			--join 127.0.0.1:$((b + 901)) --gossip-profile local --log-level error "${sec[@]}" "$@" >/dev/null 2>"$tmp/$mode-n$i.err" &
		pids+=($!)
		cp+=($!)
	done
}
wait_cluster() { # mode wait [shard]
	local mode=$1 wait=$2 shard=${3:-} i
	if [ "$wait" = readyz ]; then
		for i in 1 2 3; do wait_ready "$(http "$mode" "$i")/readyz"; done
		# The steady state: the reconcilers spread the shard leaders.
		for _ in $(seq 1 120); do
			status "$mode" 2>/dev/null | python3 -c 'import sys, json, collections
c = collections.Counter(s["leader"] for s in json.load(sys.stdin)["shards"])
sys.exit(0 if len(c) == 3 and max(c.values()) <= 3 else 1)' && break
			sleep 0.5
		done
	else
		for i in 1 2 3; do wait_ready "$(http "$mode" "$i")/healthz"; done
		local led
		for _ in $(seq 1 300); do
			led=0
			for i in 1 2 3; do
				status "$mode" "$i" 2>/dev/null | python3 -c 'import sys, json
sys.exit(0 if json.load(sys.stdin)["shards"][int(sys.argv[1])]["leader"] else 1)' "$shard" && led=$((led + 1))
			done
			[ "$led" = 3 ] && break
			sleep 0.1
		done
	fi
	if [ "$mode" = on ] && ! status on | grep -q '"tls":true'; then
		echo "bench-security: the secured cluster does not report TLS" >&2
		exit 1
	fi
}
stop_clusters() { for p in "${cp[@]}"; do stop "$p"; done; cp=(); }
create_item() { # mode id stock
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null -X POST "$(http "$1" 1)/v1/items" -H "Authorization: Bearer $token" \
			-H 'Content-Type: application/json' -d "{\"id\":\"$2\",\"stock\":$3}" 2>/dev/null && return 0
		sleep 0.2
	done
	echo "bench-security: cannot create $2 ($1)" >&2
	return 1
}
shard_of() { # item shards
	python3 -c 'import sys
h=2166136261
for b in sys.argv[1].encode(): h=((h^b)*16777619)&0xffffffff
print(h%int(sys.argv[2]))' "$1" "$2"
}

purchase() { # mode
	measured "purchase_$1" "$1" purchase_run "$1"
}
purchase_run() { # mode: one line on stdout
	local mode=$1
	run_wrk "$(http "$mode" 1)/" 1 22 "$tmp/purchase1.lua" >"$tmp/w1" & w1=$!
	run_wrk "$(http "$mode" 2)/" 1 21 "$tmp/purchase2.lua" >"$tmp/w2" & w2=$!
	run_wrk "$(http "$mode" 3)/" 1 21 "$tmp/purchase3.lua" >"$tmp/w3" & w3=$!
	wait $w1 $w2 $w3
	python3 - "$tmp/w1" "$tmp/w2" "$tmp/w3" <<'PY'
import sys, re
rows = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", open(p).read())) for p in sys.argv[1:]]
print("rps=%d p50_us=%d p99_us=%d non2xx=%d errors=%d" % (
    sum(r["rps"] for r in rows), max(r["p50_us"] for r in rows), max(r["p99_us"] for r in rows),
    sum(r["non2xx"] for r in rows), sum(r["errors"] for r in rows)))
PY
}

# settle MODE waits (at most 60 s) until the cluster's order backlog is
# flushed, so that the next run does not share the machine with it.
settle() {
	local i n
	for _ in $(seq 1 300); do
		n=0
		for i in 1 2 3; do
			n=$((n + $(curl -fsS "$(http "$1" "$i")/metrics" 2>/dev/null |
				awk '$1 == "flashstock_orders_unflushed" { s += $2 } END { printf "%.0f\n", s }')))
		done
		[ "$n" = 0 ] && return 0
		sleep 0.2
	done
}

# outsider MODE SHARD: a node whose own view lists no voters of the shard.
outsider() {
	local i
	for _ in $(seq 1 100); do
		for i in 1 2 3; do
			if status "$1" "$i" | python3 -c "import sys, json
s = json.load(sys.stdin)['shards'][$2]
sys.exit(0 if not s['voters'] and s['leader'] else 1)"; then
				echo "$i"
				return 0
			fi
		done
		sleep 0.2
	done
	echo "bench-security: no node without a replica of shard $2 ($1)" >&2
	return 1
}

# round R: both settings run side by side, so that whatever else the
# machine does falls on both; the order of the runs alternates by round.
round() {
	local r=$1 order mode
	order="off on"
	[ $((r % 2)) = 0 ] && order="on off"
	echo "bench-security: round $r ($order)" >&2
	for mode in off on; do start_cluster "$mode" readyz; done
	for mode in off on; do wait_cluster "$mode" readyz; create_item "$mode" 1 100000000; create_item "$mode" gone 0; done
	sleep 1
	for mode in $order; do purchase "$mode"; settle "$mode"; done
	for mode in $order; do measured "soldout_local_$mode" "$mode" run_wrk "$(http "$mode" 2)/" gone 64 "$tmp/purchase2.lua"; done
	stop_clusters

	# Sold out across the actor port: two replicas per shard, so one node
	# holds none of gone's shard and asks the owner every time.
	for mode in off on; do start_cluster "$mode" leaders --replicas 2 --item-cache-ttl 0; done
	local shard o_off o_on
	shard=$(shard_of gone 8)
	for mode in off on; do
		wait_cluster "$mode" leaders "$shard"
		# With two replicas on three nodes a shard group has been seen
		# never to form (no voters on any node; with the keys off too):
		# then this round has no sold-out-over-the-actor-port figure.
		if ! create_item "$mode" gone 0; then
			echo "bench-security: round $r: shard $shard of gone has no leader ($mode); skipping soldout_tls" >&2
			stop_clusters
			return 0
		fi
	done
	o_off=$(outsider off "$shard") || { stop_clusters; return 0; }
	o_on=$(outsider on "$shard") || { stop_clusters; return 0; }
	for mode in $order; do
		local o=$o_off
		[ "$mode" = on ] && o=$o_on
		for _ in $(seq 1 100); do # the outsider has learnt where gone lives
			[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$(http "$mode" "$o")/v1/items/gone/purchase" \
				-H 'X-User-ID: probe' -H 'Content-Type: application/json' -d '{}')" = 409 ] && break
			sleep 0.1
		done
		measured "soldout_tls_$mode" "$mode" run_wrk "$(http "$mode" "$o")/" gone 64 "$tmp/purchase$o.lua"
	done
	stop_clusters
}

cp=()
for r in $(seq 1 "$rounds"); do round "$r"; done
fi # end of the runs

if [ -n "$from" ]; then
	grep -E '^[a-z0-9_]+ ([a-z0-9_]+=[0-9.]+ ?)+$' "$from" >"$results"
fi

cat <<HEADER

## Security: what the cluster's keys cost

Generated by \`scripts/bench-security.sh\` (run by \`make bench\`) on $(date -u +%Y-%m-%d): $(nproc) cores, shared with the
load tool (wrk) and with other work on the machine, so the figures are a floor and the ratio is what to
compare. Three nodes on loopback; **off**: no gossip key, plain TCP and gRPC; **on**: gossip key, mutual TLS 1.3
(ECDSA P-256) on Raft and actors. Both clusters run side by side, each measured while the other idles; the order
alternates by round (off-on, on-off); $rounds rounds of $secs s per run; medians.

HEADER
python3 - "$results" <<'PY'
import sys, statistics, re
rows = {}
for line in open(sys.argv[1]):
    name, rest = line.split(" ", 1)
    rows.setdefault(name, []).append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", rest)})
def med(n, k):
    return statistics.median(r[k] for r in rows[n])
labels = {
    "purchase": "purchase, load over 3 ports (2/3 forwarded over the actor port; Raft replication)",
    "soldout_tls": "sold-out asked on a node without a replica (every answer over the actor port)",
    "soldout_local": "sold-out asked on a node with a replica (no cluster traffic; control)",
}
print("| run | off: req/s | on: req/s | on / off (medians) | on / off, median of the rounds' own ratios | CPU per request, off / on (all 3 nodes) | p50 off / on | p99 off / on | req/s each round (off; on) |")
print("|---|---|---|---|---|---|---|---|---|")
for base, label in labels.items():
    off, on = base + "_off", base + "_on"
    if off not in rows or on not in rows:
        continue
    per = statistics.median(b["rps"] / a["rps"] for a, b in zip(rows[off], rows[on]) if a["rps"] > 0)
    cpu = "n/a"
    if all("cpu_us" in r for r in rows[off] + rows[on]):
        cpu = f"{med(off,'cpu_us'):.0f} / {med(on,'cpu_us'):.0f} µs (**{med(on,'cpu_us')/med(off,'cpu_us'):.2f}x**)"
    print(f"| {label} | {med(off,'rps'):,.0f} | {med(on,'rps'):,.0f} | **{med(on,'rps')/med(off,'rps'):.2f}** | {per:.2f} | {cpu} | "
          f"{med(off,'p50_us')/1000:.2f} / {med(on,'p50_us')/1000:.2f} ms | {med(off,'p99_us')/1000:.2f} / {med(on,'p99_us')/1000:.2f} ms | "
          f"{', '.join(str(int(r['rps'])) for r in rows[off])}; {', '.join(str(int(r['rps'])) for r in rows[on])} |")
errs = {n: int(sum(r.get("errors", 0) for r in rows[n])) for n in rows}
if any(errs.values()):
    print(f"\nSocket errors reported by wrk: {errs}")
PY
cat <<TAIL

    scripts/bench-security.sh 5 10     # more and longer rounds
TAIL
