#!/usr/bin/env bash
# bench-scale.sh: does a bigger cluster sell more? Each node process runs
# in its own cgroup with a CPU quota (an emulated host of Q cores); wrk
# runs outside them. Runs, back to back, for a sale of 64 items over all
# shards and for one hot item:
#
#   A   1 core node at Q          A3  1 core node at 3Q
#   B   3 core nodes at Q each    C   6 core nodes at Q each (3 replicas per shard)
#   D   3 core nodes + 3 gateways (--role gateway) at Q each, the load sent to the gateways
#
# then, for what a crowd asks once items are gone (reads of sold-out items
# and purchases answered 409 sold_out, half each; scripts/bench/soldout.lua):
#
#   E1  3 core nodes + 1 gateway     E6  3 core nodes + 6 gateways, the load sent to the gateways
#
# and prints Markdown: purchases/s (E: answers/s), p50/p99, node CPU per
# purchase (from cpuacct, every process of the run), idle CPU per node,
# purchases per Raft entry, and where a 3-node run's CPU goes (a CPU
# profile of one node, by subsystem).
#
#   scripts/bench-scale.sh [Q] [SECONDS] [ROUNDS] [QE]    defaults: 0.25 10 1 Q
#
# ONLY="B D E1 E6" runs only those runs (their ratios need the others).
# QE is the quota of each gateway in the E runs (the core nodes keep Q):
# E6 and wrk must fit the machine, and six gateways at Q = 0.25 are 1.5
# cores of a 2-core machine before the core nodes and wrk.
#
# Needs root (cgroup v1 cpu and cpuacct under /sys/fs/cgroup), wrk, curl,
# python3 and go. Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

q=${1:-0.25}
secs=${2:-10}
rounds=${3:-1}
qe=${4:-$q}
conns=96 # closed-loop shoppers, split over the nodes
token=scale-admin-token-0123456789
tmp=$(mktemp -d)
pids=()
cgroups=()

cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for c in "${cgroups[@]:-}"; do
		[ -n "$c" ] && rmdir "/sys/fs/cgroup/cpu/$c" "/sys/fs/cgroup/cpuacct/$c" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

for t in wrk curl python3 go; do
	command -v "$t" >/dev/null || { echo "bench-scale: $t not found" >&2; exit 1; }
done
[ -w /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpuacct ] ||
	{ echo "bench-scale: needs root and cgroup v1 cpu, cpuacct at /sys/fs/cgroup" >&2; exit 1; }

echo "bench-scale: building" >&2
go build -o "$tmp/node" ./cmd/node
lua=$(pwd)/scripts/bench/buy.lua

# cg_start name quota-cores log cmd... : run cmd in its own cgroup, its
# output to log; prints its pid.
cg_start() {
	local name=flashstock-scale-$1 quota=$2 log=$3
	shift 3
	mkdir -p "/sys/fs/cgroup/cpu/$name" "/sys/fs/cgroup/cpuacct/$name"
	echo 100000 >"/sys/fs/cgroup/cpu/$name/cpu.cfs_period_us"
	local us
	us=$(awk -v q="$quota" 'BEGIN { printf "%d", q * 100000 }')
	echo "$us" >"/sys/fs/cgroup/cpu/$name/cpu.cfs_quota_us"
	cgroups+=("$name")
	sh -c 'echo $$ >/sys/fs/cgroup/cpu/'"$name"'/cgroup.procs; echo $$ >/sys/fs/cgroup/cpuacct/'"$name"'/cgroup.procs; exec "$@"' sh "$@" </dev/null >"$log" 2>&1 &
	echo $!
}
cg_usage() { cat "/sys/fs/cgroup/cpuacct/flashstock-scale-$1/cpuacct.usage"; } # ns

port() { echo $((28080 + $1)); }  # core node i: 28080+i; gateway i: 28090+i
procs=() # the cgroup names of the run's processes: n1.. and g1..

start_cluster() { # n quota [extra node args...]: starts n1..nN
	local n=$1 quota=$2
	shift 2
	for i in $(seq 1 "$n"); do
		local join=()
		[ "$n" -gt 1 ] && join=(--join 127.0.0.1:27901 --gossip-profile local)
		p=$(cg_start "n$i" "$quota" "$tmp/n$i.log" "$tmp/node" --name "n$i" --data-dir "$tmp/d$i" --trust-user-header \
			--rate-user 0 --rate-ip 0 --http-addr 127.0.0.1:"$(port "$i")" --raft-addr 127.0.0.1:$((27000 + i)) \
			--gossip-addr 127.0.0.1:$((27900 + i)) --actor-addr 127.0.0.1:$((27100 + i)) --bootstrap-expect "$n" \
			--debug-addr 127.0.0.1:$((27200 + i)) "${join[@]}" --log-level error "$@")
		pids+=("$p")
		procs+=("n$i")
	done
	for i in $(seq 1 "$n"); do wait_ready "$i"; done
}

wait_ready() { # i: until the process on port(i) serves every shard (at most 60 s)
	for _ in $(seq 1 600); do
		curl -fsS -o /dev/null "http://127.0.0.1:$(port "$1")/readyz?all=1" 2>/dev/null && return 0
		sleep 0.1
	done
}

start_gateways() { # g quota [extra node args...]: starts g1..gG, joined to n1
	local g=$1 quota=$2
	shift 2
	for i in $(seq 1 "$g"); do
		p=$(cg_start "g$i" "$quota" "$tmp/g$i.log" "$tmp/node" --role gateway --name "g$i" --data-dir "$tmp/dg$i" \
			--trust-user-header --rate-user 0 --rate-ip 0 --http-addr 127.0.0.1:"$(port $((10 + i)))" \
			--gossip-addr 127.0.0.1:$((27910 + i)) --actor-addr 127.0.0.1:$((27110 + i)) --join 127.0.0.1:27901 \
			--gossip-profile local --log-level error "$@")
		pids+=("$p")
		procs+=("g$i")
	done
	for i in $(seq 1 "$g"); do wait_ready $((10 + i)); done
}

stop_cluster() {
	# The nodes were started in command substitutions, so they are not this
	# shell's children and `wait` cannot wait for them: poll until they are
	# gone (a node drains for a few seconds on SIGTERM), then kill what is
	# left, so the next cluster finds its ports free.
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]:-}"; do
		[ -n "$p" ] || continue
		for _ in $(seq 1 400); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
	pids=()
	for c in "${cgroups[@]:-}"; do
		[ -n "$c" ] && rmdir "/sys/fs/cgroup/cpu/$c" "/sys/fs/cgroup/cpuacct/$c" 2>/dev/null || true
	done
	cgroups=()
	procs=()
	rm -rf "$tmp"/d*
}

metric() { # node metric: sum of its samples
	curl -fsS "http://127.0.0.1:$(port "$1")/metrics" 2>/dev/null |
		awk -v n="$2" '$1 == n || index($1, n"{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}

sum_metric() { # n metric
	local s=0
	for i in $(seq 1 "$1"); do s=$((s + $(metric "$i" "$2"))); done
	echo "$s"
}

leaders_spread() { # n: wait until every node leads a shard (at most 30 s)
	[ "$1" -eq 1 ] && return 0
	for _ in $(seq 1 300); do
		local ok=1
		for i in $(seq 1 "$1"); do [ "$(metric "$i" flashstock_shards_led)" -ge 1 ] || ok=0; done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	echo "bench-scale: leaders not spread over $1 nodes after 30 s" >&2
}

# post_retry url body: POST as admin (or as a shopper with a user after the
# body); a 503 (a node at its quota, a shard between leaders) is retried, as
# a client must, at most 20 times. Prints the last HTTP status.
post_retry() {
	local url=$1 body=$2 user=${3:-} code=000
	local auth=(-H "Authorization: Bearer $token")
	[ -n "$user" ] && auth=(-H "X-User-ID: $user")
	for _ in $(seq 1 20); do
		code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$url" "${auth[@]}" \
			-H 'Content-Type: application/json' -d "$body" 2>/dev/null || true)
		case "$code" in 5*) sleep 0.5 ;; *) break ;; esac
	done
	echo "$code"
}

create_items() { # n items [prefix stock]: each from the next node; 409
	# item_exists on a retry means an earlier try took
	local prefix=${3:-it-} stock=${4:-1000000000}
	for k in $(seq 1 "$2"); do
		local code
		code=$(post_retry "http://127.0.0.1:$(port $(((k - 1) % $1 + 1)))/v1/items" \
			"{\"id\":\"$prefix$k\",\"stock\":$stock,\"per_user_limit\":1}")
		case "$code" in 201 | 409) ;; *) echo "bench-scale: creating $prefix$k: HTTP $code" >&2; exit 1 ;; esac
	done
}

sell_out() { # n items: buys the one unit of each so-k
	for k in $(seq 1 "$2"); do
		local code
		code=$(post_retry "http://127.0.0.1:$(port $(((k - 1) % $1 + 1)))/v1/items/so-$k/purchase" '{"quantity":1}' "first-$k")
		case "$code" in 201 | 409) ;; *) echo "bench-scale: selling out so-$k: HTTP $code" >&2; exit 1 ;; esac
	done
}

usage_all() { # total cpuacct ns of the run's processes
	local s=0
	for c in "${procs[@]}"; do s=$((s + $(cg_usage "$c"))); done
	echo "$s"
}

# run name n quota items [profile] [gateways] [soldout]: one measured run;
# prints a result line. With gateways, the load goes to them; with soldout,
# the items are sold out first and the load is soldout.lua's.
run() {
	local name=$1 n=$2 quota=$3 items=$4 profile=${5:-} gws=${6:-0} soldout=${7:-} gq=${8:-$3}
	if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" ${name%%-*} "* ]]; then
		return 0
	fi
	start_cluster "$n" "$quota" --admin-token "$token" --replicas 3
	[ "$gws" -gt 0 ] && start_gateways "$gws" "$gq"
	local script=$lua prefix=it-
	if [ -n "$soldout" ]; then
		create_items "$n" "$items" so- 1
		sell_out "$n" "$items"
		script=$(pwd)/scripts/bench/soldout.lua prefix=so-
	else
		create_items "$n" "$items"
	fi
	leaders_spread "$n"
	sleep 3 # warm start: item actors and placement resolved everywhere
	local u0 u1 np=${#procs[@]}
	u0=$(usage_all); sleep 5; u1=$(usage_all)
	local idle
	idle=$(python3 -c "print(round(($u1 - $u0) / 5e9 / $np, 3))")
	local e0 p0
	e0=$(sum_metric "$n" flashstock_raft_purchase_entries_total)
	p0=$(sum_metric "$n" flashstock_raft_entry_purchases_total)
	u0=$(usage_all)
	local outs=() targets=()
	if [ "$gws" -gt 0 ]; then
		for i in $(seq 1 "$gws"); do targets+=($((10 + i))); done
	else
		for i in $(seq 1 "$n"); do targets+=("$i"); done
	fi
	rm -f "$tmp"/wrk* # a run with fewer nodes must not read an earlier run's
	for i in "${targets[@]}"; do
		RUN="$name$i" ITEMS=$items PREFIX=$prefix wrk -t1 -c$((conns / ${#targets[@]})) -d"${secs}s" -s "$script" \
			"http://127.0.0.1:$(port "$i")/" >"$tmp/wrk$i" 2>/dev/null &
		outs+=($!)
	done
	if [ -n "$profile" ]; then
		sleep 2
		curl -fsS -o "$tmp/$name.pprof" "http://127.0.0.1:27201/debug/pprof/profile?seconds=5" 2>/dev/null || true
	fi
	for p in "${outs[@]}"; do wait "$p"; done
	u1=$(usage_all)
	local e1 p1
	e1=$(sum_metric "$n" flashstock_raft_purchase_entries_total)
	p1=$(sum_metric "$n" flashstock_raft_entry_purchases_total)
	if [ -n "$profile" ] && [ -s "$tmp/$name.pprof" ]; then
		python3 scripts/bench/subsystems.py "$tmp/node" "$tmp/$name.pprof" >"$tmp/$name.subsystems" || true
	fi
	stop_cluster
	python3 - "$name" "$n+$gws" "$quota" "$items" "$idle" "$u0" "$u1" "$e0" "$e1" "$p0" "$p1" "$tmp"/wrk* <<'PY'
import re, statistics, sys
name, n, quota, items, idle, u0, u1, e0, e1, p0, p1 = sys.argv[1:12]
ok = dur = 0; p50s = []; p99s = []; bad = 0
for f in sys.argv[12:]:
    line = open(f).read().strip().splitlines()[-1]
    kv = dict(x.split("=") for x in line.split())
    ok += int(kv["requests"]) - int(kv["non2xx"]); bad += int(kv["non2xx"]) + int(kv["errors"])
    dur = max(dur, int(kv["duration_us"])); p50s.append(int(kv["p50_us"])); p99s.append(int(kv["p99_us"]))
rps = ok / (dur / 1e6)
cpu_us = (int(u1) - int(u0)) / 1e3 / max(ok, 1)
entries = int(e1) - int(e0); purchases = int(p1) - int(p0)
ppe = purchases / entries if entries else 0
print(f"{name} nodes={n} quota={quota} items={items} rps={rps:.0f} p50_ms={statistics.median(p50s)/1e3:.1f} "
      f"p99_ms={max(p99s)/1e3:.1f} cpu_us={cpu_us:.0f} idle_cores={idle} per_entry={ppe:.1f} failed={bad}")
PY
}

for r in $(seq 1 "$rounds"); do
	for sale in multi hot; do
		items=64
		[ "$sale" = hot ] && items=1
		q3=$(python3 -c "print($q * 3)")
		echo "bench-scale: round $r, $sale sale" >&2
		run "A-$sale" 1 "$q" "$items" | tee -a "$tmp/results" >&2
		run "A3-$sale" 1 "$q3" "$items" | tee -a "$tmp/results" >&2
		prof=""; [ "$r" = 1 ] && prof=profile
		run "B-$sale" 3 "$q" "$items" $prof | tee -a "$tmp/results" >&2
		run "C-$sale" 6 "$q" "$items" | tee -a "$tmp/results" >&2
		run "D-$sale" 3 "$q" "$items" "" 3 | tee -a "$tmp/results" >&2
	done
	echo "bench-scale: round $r, sold-out answers and reads (QE = $qe)" >&2
	run E1 3 "$q" 64 "" 1 soldout "$qe" | tee -a "$tmp/results" >&2
	run E6 3 "$q" 64 "" 6 soldout "$qe" | tee -a "$tmp/results" >&2
done

shopt -s nullglob
python3 scripts/bench/scale_report.py "$q" "$secs" "$rounds" "$qe" "$tmp/results" "$tmp"/B-*.subsystems
