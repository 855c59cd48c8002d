#!/usr/bin/env bash
# bench-console.sh measures what open admin consoles cost a node mid-sale:
# the purchase rate of one node with no console open and with CONSOLES of
# them (each polling GET /v1/admin/dashboard once a second, as the page
# does), alternating (off-on, on-off, ...), several rounds, in one run. It
# prints every run, the medians of both, and the median of the per-round
# ratios (on/off within a round, which cancels the drift of a machine whose
# other load comes and goes). Each run gets a fresh node: a node's state
# grows with every shopper (one buyer row each), and its Raft snapshots,
# which block applies while they encode, grow with it, so runs on one
# long-lived node are not alike.
#
#   scripts/bench-console.sh [ROUNDS] [SECONDS]     defaults: 5 rounds of 8 s
#
# Env: CONSOLES (10), CONNS (wrk connections buying, 64), SHARED_BENCH
# (where purchase.lua is, ../shared/bench). Needs wrk and curl. The node
# listens on 127.0.0.1 only, every wait is bounded, and everything is
# stopped at the end. The item on sale has 10^9 units and 49 more items sit
# on the shelf, so each dashboard carries a full first page (50 items with
# their sparklines).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-5}
secs=${2:-8}
consoles=${CONSOLES:-10}
conns=${CONNS:-64}
shared=${SHARED_BENCH:-../shared/bench}
[ -f "$shared/purchase.lua" ] || shared=../../shared/bench
for t in wrk curl; do
	command -v "$t" >/dev/null || { echo "bench-console: $t not found (apt-get install -y wrk curl)" >&2; exit 1; }
done
[ -f "$shared/purchase.lua" ] || { echo "bench-console: purchase.lua not found; set SHARED_BENCH" >&2; exit 1; }
lua=$(cd "$shared" && pwd)/purchase.lua

tmp=$(mktemp -d)
node_pid=""
cleanup() {
	[ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

token=bench-console-admin-token-0123456789
http=127.0.0.1:18480
url=http://$http

echo "bench-console: building" >&2
go build -o "$tmp/node" ./cmd/node

create() { # id stock
	curl -fsS -o /dev/null -X POST "$url/v1/items" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -d "{\"id\":\"$1\",\"name\":\"$1\",\"stock\":$2,\"per_user_limit\":1}"
}

start_node() { # a fresh node with the items, warmed up
	rm -rf "$tmp/data"
	"$tmp/node" --name bench --data-dir "$tmp/data" --http-addr "$http" --raft-addr 127.0.0.1:18481 \
		--gossip-addr 127.0.0.1:18482 --actor-addr 127.0.0.1:18483 --admin-token "$token" \
		--trust-user-header --log-level warn >"$tmp/node.log" 2>&1 &
	node_pid=$!
	for i in $(seq 1 600); do
		curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && break
		[ "$i" = 600 ] && { echo "bench-console: node not ready" >&2; cat "$tmp/node.log" >&2; exit 1; }
		sleep 0.05
	done
	create bench 1000000000
	for i in $(seq -w 1 49); do create "shelf-$i" 1000; done
	ITEM=bench wrk -t2 -c"$conns" -d2s -s "$lua" "$url/" >/dev/null
}

cpu_ms() { # the node's CPU time so far (user + system), in ms
	awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$node_pid/stat"
}

stop_node() {
	kill "$node_pid" 2>/dev/null || true
	for _ in $(seq 1 400); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.05; done
	kill -9 "$node_pid" 2>/dev/null || true
	wait "$node_pid" 2>/dev/null || true
	node_pid=""
}

# A console: one GET of the dashboard per second per connection (wrk's
# delay() holds each connection 1 s between requests).
cat >"$tmp/console.lua" <<EOF
request = function()
  return wrk.format("GET", "/v1/admin/dashboard", {["Authorization"] = "Bearer $token"})
end
delay = function() return 1000 end
done = function(summary, latency, requests)
  io.write(string.format("console_requests=%d console_non2xx=%d console_p50_us=%d console_p99_us=%d\n",
    summary.requests, summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
EOF

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2" | tail -1; }
: >"$tmp/off"
: >"$tmp/on"
: >"$tmp/ratio"
: >"$tmp/cpu_off"
: >"$tmp/cpu_on"
printf '| round | consoles | purchases/s | p99 ms | non-2xx | node CPU ms per 1000 purchases | console GETs (non-2xx) | dashboard p99 ms |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for r in $(seq 1 "$rounds"); do
	order="off on"
	[ $((r % 2)) = 0 ] && order="on off"
	for mode in $order; do
		start_node
		cpid=""
		if [ "$mode" = on ]; then
			wrk -t1 -c"$consoles" -d"$((secs + 2))s" -s "$tmp/console.lua" "$url/" >"$tmp/console.out" 2>&1 &
			cpid=$!
			sleep 1
		fi
		cpu0=$(cpu_ms)
		ITEM=bench wrk -t2 -c"$conns" -d"${secs}s" -s "$lua" "$url/" >"$tmp/buy.out" 2>&1
		cpu1=$(cpu_ms)
		cons="-"
		cp99="-"
		if [ -n "$cpid" ]; then
			wait "$cpid"
			cons="$(field console_requests "$tmp/console.out") ($(field console_non2xx "$tmp/console.out"))"
			cp99=$(awk -v u="$(field console_p99_us "$tmp/console.out")" 'BEGIN{printf "%.1f", u/1000}')
		fi
		stop_node
		rps=$(field rps "$tmp/buy.out")
		cpk=$(awk -v c="$((cpu1 - cpu0))" -v r="$rps" -v s="$secs" 'BEGIN{printf "%.1f", c*1000/(r*s)}')
		echo "$cpk" >>"$tmp/cpu_$mode"
		p99=$(awk -v u="$(field p99_us "$tmp/buy.out")" 'BEGIN{printf "%.1f", u/1000}')
		non2xx=$(field non2xx "$tmp/buy.out")
		echo "$rps" >>"$tmp/$mode"
		n=0
		[ "$mode" = on ] && n=$consoles
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$r" "$n" "$rps" "$p99" "$non2xx" "$cpk" "$cons" "$cp99"
		eval "rps_$mode=$rps"
	done
	awk -v a="$rps_off" -v b="$rps_on" 'BEGIN{printf "%.4f\n", b/a}' >>"$tmp/ratio"
done

median() { sort -g "$1" | awk '{a[NR]=$1} END{if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
off=$(median "$tmp/off")
on=$(median "$tmp/on")
echo
echo "median purchases/s: no console $off, $consoles consoles $on ($(awk -v a="$off" -v b="$on" 'BEGIN{printf "%+.1f%%", (b-a)*100/a}'))"
echo "per-round ratios ($consoles consoles / none): $(sort -g "$tmp/ratio" | tr '\n' ' ')"
echo "median per-round ratio: $(median "$tmp/ratio")"
echo "median node CPU ms per 1000 purchases: no console $(median "$tmp/cpu_off"), $consoles consoles $(median "$tmp/cpu_on")"
