#!/usr/bin/env bash
# bench.sh runs Flashstock and the ../shared/bench baselines back to back on
# this machine with the same load tool (wrk + purchase.lua, 64 connections),
# several rounds, and prints the medians as Markdown tables.
#
#   scripts/bench.sh [ROUNDS] [SECONDS]     defaults: 3 rounds of 8 s
#
# Runs, per round: hello (the HTTP ceiling), redis (Redis + Lua), mysql (one
# InnoDB transaction per purchase), Flashstock single node (embedded store;
# purchase and sold-out), Flashstock single node with two MariaDB order
# databases, and a 3-node Flashstock cluster (purchase load spread over the
# three HTTP ports; sold-out answers from a node that does not lead the
# item's shard).
#
# Needs wrk, redis-server and MariaDB (apt-get install -y wrk redis-server
# mariadb-server) and the baselines in ../shared/bench. Everything listens on
# 127.0.0.1 and is stopped at the end; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
secs=${2:-8}
# BENCH_RESULTS=FILE regenerates the report from the "name key=value ..."
# lines of an earlier run (as printed on stderr) without running anything.
from=${BENCH_RESULTS:-}
shared=${SHARED_BENCH:-../shared/bench}
tmp=$(mktemp -d)
results="$tmp/results"
: >"$results"
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	scripts/mariadb.sh stop "$tmp/mariadb" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$from" ]; then
for t in wrk redis-server curl python3; do
	command -v "$t" >/dev/null || { echo "bench: $t not found (apt-get install -y wrk redis-server curl)" >&2; exit 1; }
done
[ -f "$shared/purchase.lua" ] || { echo "bench: $shared/purchase.lua not found" >&2; exit 1; }
lua=$(cd "$shared" && pwd)/purchase.lua

echo "bench: building" >&2
go build -o "$tmp/node" ./cmd/node
go build -o "$tmp/loadgen" ./cmd/loadgen
(cd "$shared/baseline" && go build -o "$tmp/baseline" .)

mysql_dsns=""
if env_line=$(scripts/mariadb.sh start "$tmp/mariadb" 13399 2>/dev/null); then
	mysql_dsns=${env_line#FLASHSTOCK_TEST_MYSQL_DSNS=}
	mariadb -h127.0.0.1 -P13399 -uroot -e "CREATE DATABASE IF NOT EXISTS seckill_baseline" 2>/dev/null ||
		mysql -h127.0.0.1 -P13399 -uroot -e "CREATE DATABASE IF NOT EXISTS seckill_baseline"
else
	echo "bench: no MariaDB; skipping the mysql runs" >&2
fi

wait_code() { # url: up when it answers with any HTTP status
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" != "000" ] && return 0
		sleep 0.05
	done
	echo "bench: $1 did not come up" >&2
	return 1
}

wait_ready() { # url of /readyz
	for _ in $(seq 1 600); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: $1 not ready" >&2
	return 1
}

stop() { # pid
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	kill -9 "$1" 2>/dev/null || true
}

run_wrk() { # url item [threads conns [script]] -> "p50_us= p99_us= rps= non2xx= errors="
	ITEM=$2 wrk -t"${3:-2}" -c"${4:-64}" -d"${secs}s" -s "${5:-$lua}" "$1" 2>/dev/null | tail -n1
}

# Three wrk processes started in the same second would name the same users
# (purchase.lua names them by time and thread): each gets its own prefix.
for i in 1 2 3; do
	sed "s/prefix = \"u\"/prefix = \"u$i\"/" "$lua" >"$tmp/purchase$i.lua"
done

metric() { # name: sum of a metric's samples on the single node
	curl -fsS http://127.0.0.1:18080/metrics | awk -v n="$1" '$1 == n || index($1, n"{") == 1 { s += $2 } END { printf "%.0f\n", s }'
}
flushed() { metric flashstock_orders_flushed_total; }

start_node() { # name dir port-offset extra-args... -> prints pid
	local name=$1 dir=$2 off=$3
	shift 3
	"$tmp/node" --name "$name" --data-dir "$dir" --trust-user-header --rate-user 0 --rate-ip 0 \
		--http-addr 127.0.0.1:$((18080 + off)) --raft-addr 127.0.0.1:$((17000 + off)) \
		--gossip-addr 127.0.0.1:$((17900 + off)) --actor-addr 127.0.0.1:$((18190 + off)) \
		--admin-token bench-admin-token-0123456789 --log-level error "$@" >/dev/null 2>"$tmp/$name.err" &
	echo $!
}

create_item() { # port id stock
	curl -fsS -o /dev/null -X POST "http://127.0.0.1:$1/v1/items" -H "Authorization: Bearer bench-admin-token-0123456789" \
		-H 'Content-Type: application/json' -d "{\"id\":\"$2\",\"stock\":$3}"
}

record() { # name line
	echo "$1 $2" | tee -a "$results" >&2
}

for r in $(seq 1 "$rounds"); do
	echo "bench: round $r/$rounds" >&2

	"$tmp/baseline" -mode hello >/dev/null 2>&1 &
	p=$!; pids+=("$p"); wait_code http://127.0.0.1:18080/
	record hello "$(run_wrk http://127.0.0.1:18080/ 1)"
	stop "$p"

	rm -rf "$tmp/redis"; mkdir -p "$tmp/redis"
	redis-server --port 16379 --dir "$tmp/redis" --appendonly yes --appendfsync everysec --save '' >/dev/null 2>&1 &
	rp=$!; pids+=("$rp"); sleep 0.5
	"$tmp/baseline" -mode redis -redis 127.0.0.1:16379 -stock 100000000 >/dev/null 2>&1 &
	p=$!; pids+=("$p"); wait_code http://127.0.0.1:18080/
	record redis "$(run_wrk http://127.0.0.1:18080/ 1)"
	stop "$p"; stop "$rp"

	if [ -n "$mysql_dsns" ]; then
		"$tmp/baseline" -mode mysql -dsn "root@tcp(127.0.0.1:13399)/seckill_baseline" -stock 100000000 >/dev/null 2>&1 &
		p=$!; pids+=("$p"); wait_code http://127.0.0.1:18080/
		record mysql "$(run_wrk http://127.0.0.1:18080/ 1)"
		stop "$p"
	fi

	rm -rf "$tmp/d1"
	p=$(start_node solo "$tmp/d1" 0); pids+=("$p"); wait_ready "http://127.0.0.1:18080/readyz?all=1"
	create_item 18080 1 100000000
	create_item 18080 gone 0
	record flashstock "$(run_wrk http://127.0.0.1:18080/ 1)"
	record flashstock_soldout "$(run_wrk http://127.0.0.1:18080/ gone)"
	stop "$p"

	# Overload: the same hot item at 1x and 10x the concurrency, with the
	# admission bound at 256 purchases in flight (loadgen, closed loop).
	rm -rf "$tmp/d1"
	p=$(start_node solo "$tmp/d1" 0 --admission-max 256 --queue-max 128); pids+=("$p"); wait_ready "http://127.0.0.1:18080/readyz?all=1"
	for x in 1 10; do
		"$tmp/loadgen" --targets http://127.0.0.1:18080 --admin-token bench-admin-token-0123456789 --create \
			--item-prefix "ov$x-" --stock 100000000 --scenario hot --workers $((64 * x)) --duration "${secs}s" \
			--requests 100000000 --max-attempts 1 --out "$tmp/ov$x.json" >/dev/null 2>&1 || true
		python3 - "$tmp/ov$x.json" "$x" <<'PY' | tee -a "$results" >&2
import sys, json
d = json.load(open(sys.argv[1])); L = d["latency"]
rej = d["requests"]["by_outcome"].get("rejected", 0) + d["requests"]["by_outcome"].get("overloaded", 0)
print(f"overload_{sys.argv[2]}x rps={d['throughput']['confirmed_per_s']:.0f} p50_us={L['confirmed']['p50_us']} "
      f"p99_us={L['confirmed']['p99_us']} non2xx={sum(v for k, v in d['requests']['by_outcome'].items() if k not in ('confirmed', 'replayed'))} "
      f"rej_p50_us={L['rejected']['p50_us']} rej_p99_us={L['rejected']['p99_us']} verify={int(d['verify']['pass'])}")
PY
	done
	# A flash crowd: 20000 shoppers within 2 s for 5000 units, verified.
	"$tmp/loadgen" --targets http://127.0.0.1:18080 --admin-token bench-admin-token-0123456789 --create \
		--item-prefix crowd- --stock 5000 --scenario crowd --requests 20000 --arrival-window 2s --duration 20s \
		--out "$tmp/crowd1.json" >/dev/null 2>&1 || true
	python3 - "$tmp/crowd1.json" crowd_1node <<'PY' | tee -a "$results" >&2
import sys, json
d = json.load(open(sys.argv[1])); L = d["latency"]["purchase"]
print(f"{sys.argv[2]} rps={d['throughput']['purchases_per_s']:.0f} p50_us={L['p50_us']} p99_us={L['p99_us']} "
      f"non2xx={d['purchases']['by_outcome'].get('sold_out', 0)} confirmed={d['purchases']['by_outcome'].get('confirmed', 0)} verify={int(d['verify']['pass'])}")
PY
	stop "$p"

	if [ -n "$mysql_dsns" ]; then
		mariadb -h127.0.0.1 -P13399 -uroot -e "DROP DATABASE IF EXISTS flashstock_0; DROP DATABASE IF EXISTS flashstock_1; CREATE DATABASE flashstock_0; CREATE DATABASE flashstock_1"
		rm -rf "$tmp/d1"
		p=$(start_node solo "$tmp/d1" 0 --orders-dsn "$mysql_dsns"); pids+=("$p"); wait_ready "http://127.0.0.1:18080/readyz?all=1"
		create_item 18080 1 100000000
		f0=$(flushed); t0=$(date +%s.%N)
		record flashstock_mysql "$(run_wrk http://127.0.0.1:18080/ 1)"
		for _ in $(seq 1 200); do [ "$(metric flashstock_orders_unflushed)" = "0" ] && break; sleep 0.1; done
		f1=$(flushed); t1=$(date +%s.%N)
		record flush_rate "$(python3 -c "print('rps=%.0f p50_us=0 p99_us=0 non2xx=0' % (($f1-$f0)/($t1-$t0)))")"
		stop "$p"
	fi

	cp=()
	for i in 1 2 3; do
		rm -rf "$tmp/c$i"
		p=$(start_node "n$i" "$tmp/c$i" "$i" --bootstrap-expect 3 --join 127.0.0.1:17901 --gossip-profile local)
		pids+=("$p"); cp+=("$p")
	done
	for i in 1 2 3; do wait_ready "http://127.0.0.1:$((18080 + i))/readyz?all=1"; done
	# Measure the steady state: the reconcilers spread the shard leaders
	# (one move per node every 5 s), and a move is an election's pause.
	for _ in $(seq 1 120); do
		curl -fsS http://127.0.0.1:18081/v1/cluster/status -H "Authorization: Bearer bench-admin-token-0123456789" 2>/dev/null |
			python3 -c 'import sys, json, collections
c = collections.Counter(s["leader"] for s in json.load(sys.stdin)["shards"])
sys.exit(0 if len(c) == 3 and max(c.values()) <= 3 else 1)' && break
		sleep 0.5
	done
	create_item 18081 1 100000000
	create_item 18081 gone 0
	sleep 1
	out1="$tmp/w1"; out2="$tmp/w2"; out3="$tmp/w3"
	run_wrk http://127.0.0.1:18081/ 1 1 22 "$tmp/purchase1.lua" >"$out1" & w1=$!
	run_wrk http://127.0.0.1:18082/ 1 1 21 "$tmp/purchase2.lua" >"$out2" & w2=$!
	run_wrk http://127.0.0.1:18083/ 1 1 21 "$tmp/purchase3.lua" >"$out3" & w3=$!
	wait $w1 $w2 $w3
	python3 - "$out1" "$out2" "$out3" <<'PY' | tee -a "$results" >&2
import sys, re
rows = [dict((k, float(v)) for k, v in re.findall(r"(\w+)=([\d.]+)", open(p).read())) for p in sys.argv[1:]]
print("cluster3 rps=%d p50_us=%d p99_us=%d non2xx=%d errors=%d" % (
    sum(r["rps"] for r in rows), max(r["p50_us"] for r in rows), max(r["p99_us"] for r in rows),
    sum(r["non2xx"] for r in rows), sum(r["errors"] for r in rows)))
PY
	# Sold out from a node that does not lead the item's shard.
	shard=$(python3 -c 'import sys
h=2166136261
for b in b"gone": h=((h^b)*16777619)&0xffffffff
print(h%8)')
	leader=$(curl -fsS http://127.0.0.1:18081/v1/cluster/status -H "Authorization: Bearer bench-admin-token-0123456789" |
		python3 -c "import sys,json; print(json.load(sys.stdin)['shards'][$shard]['leader'])")
	follower=1; [ "$leader" = "n1" ] && follower=2
	record cluster3_soldout_follower "$(run_wrk "http://127.0.0.1:$((18080 + follower))/" gone)"
	"$tmp/loadgen" --targets http://127.0.0.1:18081,http://127.0.0.1:18082,http://127.0.0.1:18083 \
		--admin-token bench-admin-token-0123456789 --create --item-prefix crowd3- --stock 5000 --scenario crowd \
		--requests 20000 --arrival-window 2s --duration 20s --out "$tmp/crowd3.json" >/dev/null 2>&1 || true
	python3 - "$tmp/crowd3.json" crowd_3nodes <<'PY' | tee -a "$results" >&2
import sys, json
d = json.load(open(sys.argv[1])); L = d["latency"]["purchase"]
print(f"{sys.argv[2]} rps={d['throughput']['purchases_per_s']:.0f} p50_us={L['p50_us']} p99_us={L['p99_us']} "
      f"non2xx={d['purchases']['by_outcome'].get('sold_out', 0)} confirmed={d['purchases']['by_outcome'].get('confirmed', 0)} verify={int(d['verify']['pass'])}")
PY
	for p in "${cp[@]}"; do stop "$p"; done
done

echo "bench: failover (3 real processes, SIGKILL of the hot item's shard leader), $rounds runs" >&2
for r in $(seq 1 "$rounds"); do
	go test -count=1 -run TestClusterProcessesSurviveLeaderKill -v ./cmd/node/ 2>/dev/null |
		grep -o 'sales resumed [0-9.]*m\?s' | awk '{print "failover gap_s=" ($3 ~ /ms$/ ? $3/1000 : $3+0)}' | sed 's/ms//;s/s$//' | tee -a "$results" >&2 || true
done

fi # end of the runs

if [ -n "$from" ]; then
	grep -E '^[a-z0-9_]+ ([a-z0-9_]+=[0-9.]+ ?)+$' "$from" >"$results"
fi

echo "bench: Go benchmarks" >&2
if [ -n "${mysql_dsns:-}" ]; then
	export FLASHSTOCK_TEST_MYSQL_DSNS="$mysql_dsns" # BenchmarkWrite needs the databases
fi
gobench=$(go test -run '^$' -bench 'BenchmarkFSMApply|BenchmarkShardPurchaseBatch|BenchmarkEnginePurchase|BenchmarkPurchaseHandler|BenchmarkWrite|BenchmarkEmbeddedWrite' \
	-benchmem -benchtime 1s ./raftstore/ ./actors/ ./http/ ./orders/mysql/ ./orders/sqlite/ 2>/dev/null | grep -E '^Benchmark' || true)

cat <<HEADER
# Benchmarks

Generated by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d): $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),
$(free -g | awk '/Mem:/ {print $2}') GiB, $(go version | cut -d' ' -f3). The load tool, the server under test and any database share
the same cores, so absolute figures are a floor; the ratios are what to compare. Every run is back to back
with its baselines on the same machine.

HEADER
python3 - "$results" "$rounds" "$secs" <<'PY'
import sys, statistics, re
path, rounds, secs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(path):
    name, rest = line.split(" ", 1)
    kv = dict(re.findall(r"(\w+)=([\d.]+)", rest))
    rows.setdefault(name, []).append({k: float(v) for k, v in kv.items()})
def med(name, k):
    return statistics.median(r[k] for r in rows[name])
labels = {
    "hello": "hello (HTTP ceiling, no work)",
    "redis": "redis baseline (Lua per purchase)",
    "mysql": "mysql baseline (InnoDB tx per purchase)",
    "flashstock": "Flashstock, 1 node, embedded store: purchase",
    "flashstock_soldout": "Flashstock, 1 node: sold-out answers (409)",
    "flashstock_mysql": "Flashstock, 1 node, 2 MariaDB order DBs: purchase",
    "cluster3": "Flashstock, 3 nodes, load over 3 ports: purchase",
    "cluster3_soldout_follower": "Flashstock, 3 nodes: sold-out from a non-leader (409)",
}
extra = {
    "overload_1x": "overload 1x: 64 shoppers, closed loop, admission 256",
    "overload_10x": "overload 10x: 640 shoppers, closed loop, admission 256",
    "crowd_1node": "flash crowd, 1 node: 20000 shoppers in 2 s for 5000 units",
    "crowd_3nodes": "flash crowd, 3 nodes: 20000 shoppers in 2 s for 5000 units",
}
print(f"{rounds} rounds of {secs} s each, wrk 64 connections (cluster: 22+21+21), medians.\n")
print("| run | req/s (median) | p50 | p99 | non-2xx | req/s of each round |")
print("|---|---|---|---|---|---|")
for name, label in labels.items():
    if name not in rows: continue
    print(f"| {label} | {med(name,'rps'):,.0f} | {med(name,'p50_us')/1000:.2f} ms | {med(name,'p99_us')/1000:.2f} ms | "
          f"{int(max(r['non2xx'] for r in rows[name]))} | {', '.join(str(int(r['rps'])) for r in rows[name])} |")
if any(n in rows for n in extra):
    print("\nLoad generator runs (cmd/loadgen; latency from the intended send time):\n")
    print("| run | confirmed/s (median) | p50 accepted | p99 accepted | rejected or sold out | p50 / p99 of rejections | verified |")
    print("|---|---|---|---|---|---|---|")
    for name, label in extra.items():
        if name not in rows: continue
        rj = ""
        if "rej_p50_us" in rows[name][0]:
            rj = f"{med(name,'rej_p50_us')/1000:.2f} / {med(name,'rej_p99_us')/1000:.2f} ms"
        ok = "PASS" if all(r.get("verify") == 1 for r in rows[name]) else "FAIL"
        print(f"| {label} | {med(name,'rps'):,.0f} | {med(name,'p50_us')/1000:.2f} ms | {med(name,'p99_us')/1000:.2f} ms | "
              f"{int(med(name,'non2xx'))} | {rj} | {ok} |")
m = {n: med(n, "rps") for n in rows if "rps" in rows[n][0]}
print()
def ratio(a, b, what):
    # The ratio of the medians, and each round's own ratio: the runs of a
    # round are seconds apart, so the per-round ratios see the same machine.
    if a in m and b in m:
        per = [x["rps"] / y["rps"] for x, y in zip(rows[a], rows[b]) if y["rps"] > 0]
        print(f"- {what}: **{m[a]/m[b]:.2f}x** (each round: {', '.join(f'{p:.2f}' for p in per)}; "
              f"median {statistics.median(per):.2f}x)")
ratio("flashstock", "redis", "Flashstock purchase / redis baseline")
ratio("flashstock", "mysql", "Flashstock purchase / mysql baseline")
ratio("flashstock_soldout", "hello", "Flashstock sold-out / hello ceiling")
ratio("flashstock_mysql", "flashstock", "Flashstock with MySQL / embedded store")
ratio("cluster3", "redis", "3-node cluster purchase / redis baseline")
ratio("cluster3_soldout_follower", "hello", "3-node sold-out on a non-leader / hello ceiling")
if "flush_rate" in rows:
    print(f"- orders flushed into 2 MariaDB databases per second, from the start of the run until the backlog drained: {med('flush_rate','rps'):,.0f}")
if "failover" in rows:
    gaps = sorted(r["gap_s"] for r in rows["failover"])
    print(f"- failover: sales resumed {statistics.median(gaps):.2f} s (median; runs {', '.join(f'{g:.2f}' for g in gaps)}) after SIGKILL of the leader of the hot item's shard (3 processes, --raft-heartbeat-timeout 400ms)")
PY
cat <<TAIL

## Go benchmarks

\`go test -bench . -benchmem\` on the same machine (FSM apply; a shard's Raft round with raft-wal, batch 1 and 256;
the engine's purchase path with 128 concurrent buyers; the HTTP purchase handler; the MySQL and the embedded order writers):

\`\`\`
$gobench
\`\`\`

## How to reproduce

    make bench                       # this file, 3 rounds of 8 s
    scripts/bench.sh 5 10            # more and longer rounds
    wrk -t2 -c64 -d8s -s ../shared/bench/purchase.lua http://127.0.0.1:8080/   # one run by hand
    go run ./cmd/loadgen --help      # the flash-crowd scenarios
TAIL
