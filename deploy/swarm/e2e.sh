#!/usr/bin/env bash
# e2e.sh: deploys the Flashstock stack on a single-host swarm and checks it
# end to end, then removes everything it created (a trap, on any exit).
#
#   1. `docker swarm init` if this Docker is not in a swarm (left initialised)
#   2. build.sh (all images; E2E_SKIP_BUILD=1 to reuse them)
#   3. label this host (zone=e2e, edge=true, monitoring=true), create secrets
#      (secrets.sh: the cluster's CA, node certificates and gossip key)
#   4. deploy stack.yml as stack "fse2e": node1..3, two gateways, nginx
#      (with a copy of nginx.conf that also logs every purchase answer),
#      mysql0/1, prometheus, alertmanager, alert-log
#   5. wait until every container passes its health check, /readyz answers
#      200 through nginx (that is, a gateway) and 3 core members are alive
#   6. create an item, buy a few units with shopper JWTs
#   7. during a loadgen crowd, SIGKILL the container of the node leading the
#      crowd item's shard (E2E_KILL_NODE=node1..3 to choose), buy more, read
#      /v1/cluster/status
#   8. wait for Swarm to restart the node, then until every shard lists the
#      three nodes as voters on every node (E2E_VOTER_WAIT, 120 s)
#   9. during a loadgen crowd, SIGSTOP the node leading the crowd item's
#      shard for 10 s (E2E_PAUSE), then a gateway for 10 s; three voters again
#  10. during a loadgen crowd, `docker service update --force` nginx (the
#      only edge on this host: it is down until the new task listens)
#  11. scale the gateway service from 2 to 3 and down to 1 during a crowd
#  12. rolling-restart.sh --image to a new tag (node1..3 one at a time, then
#      the gateways) during a crowd
#  13. stop node3 until FlashstockNodeDown reaches the alert log
#      (Prometheus -> Alertmanager -> alert-log), then bring it back
#
# Every crowd is cmd/loadgen in a container on the stack's network, buying
# through nginx at the host's published port (the edge, as shoppers reach
# it) with a request_id per purchase, retried with it on 5xx, lost
# connections and timeouts. Each must end with every purchase confirmed and
# loadgen's verification passing: the items' books, orders read back, and
# every confirmed order stored exactly once in the two MariaDB databases
# (--verify-mysql). For each fault (7, 9, 10) the e2e prints the longest
# time without a confirmed purchase seen through nginx (from nginx's log of
# purchase answers) and fails past E2E_MAX_GAP seconds (default: a second
# less than the pause, so a sale that stalls for the whole pause fails).
#
# E2E_QUICK=1 (CI): steps 1-9 only: a crowd through nginx, a leader kill,
# the two 10 s pauses, the three-voter checks, verification against both
# MariaDB databases.
#
# Every wait is bounded; E2E_TIMEOUT (default 240 s) bounds each one.
# E2E_KEEP=1 skips the teardown (for debugging; remove with
# `docker stack rm fse2e` and the secrets and volumes named fse2e_*).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STACK=${E2E_STACK:-fse2e}
PORT=${E2E_HTTP_PORT:-18088}
PROM_PORT=${E2E_PROM_PORT:-19090}
WAIT=${E2E_TIMEOUT:-240}
VOTER_WAIT=${E2E_VOTER_WAIT:-120}
PAUSE=${E2E_PAUSE:-10}
MAX_GAP=${E2E_MAX_GAP:-$((PAUSE - 1))}
QUICK=${E2E_QUICK:-0}
# The node to kill mid-crowd: "leader" (default) leads the crowd item's
# shard, so the kill exercises a failover; or node1, node2, node3.
KILL_NODE=${E2E_KILL_NODE:-leader}
TAG=${FLASHSTOCK_TAG:-dev}
BASE="http://127.0.0.1:$PORT"

log() { printf '%s e2e: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
for c in docker curl openssl jq timeout awk go; do command -v "$c" >/dev/null || die "$c not found"; done
START=$SECONDS

# ------------------------------------------------------------------ teardown
ADDED_LABELS=()
SELF=
WORK=$(mktemp -d)
PROBE=
teardown() {
	local rc=$?
	set +e
	trap '' INT TERM # finish the cleanup even if interrupted again
	[ -n "$PROBE" ] && kill "$PROBE" 2>/dev/null
	docker ps -aq --filter "label=fse2e.crowd=$STACK" | xargs -r docker rm -fv >/dev/null 2>&1
	if [ "${E2E_KEEP:-0}" = 1 ]; then
		log "E2E_KEEP=1: leaving stack $STACK in place (work files in $WORK)"
		exit "$rc"
	fi
	rm -rf "$WORK"
	if [ "$rc" != 0 ] && docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
		log "--- diagnostics (exit $rc) ---"
		docker stack ps "$STACK" --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' 2>/dev/null | head -30 >&2
		for s in node1 node2 node3 gateway nginx mysql0; do
			echo "--- ${STACK}_$s (last 15 lines)" >&2
			timeout 20 docker service logs --raw --tail 15 "${STACK}_$s" 2>&1 | cut -c1-300 >&2
		done
	fi
	log "teardown: removing stack $STACK"
	timeout 60 docker stack rm "$STACK" >/dev/null 2>&1
	local i
	for i in $(seq 1 60); do
		[ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] &&
			[ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
		sleep 2
	done
	docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker rm -f >/dev/null 2>&1
	docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1
	docker secret ls -q --filter "name=${STACK}_" | xargs -r docker secret rm >/dev/null 2>&1
	for l in "${ADDED_LABELS[@]}"; do
		docker node update --label-rm "$l" "$SELF" >/dev/null 2>&1
	done
	docker rmi "flashstock/node:$TAG-next" >/dev/null 2>&1 # the rolling upgrade's tag
	log "teardown done ($((SECONDS - START))s in all)"
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT CMD...: run CMD every 2 s until it succeeds.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local start=$SECONDS
	until "$@" >/dev/null 2>&1; do
		[ $((SECONDS - start)) -lt "$limit" ] || die "timed out after ${limit}s waiting for $what"
		sleep 2
	done
	log "$what (after $((SECONDS - start))s)"
}

# ------------------------------------------------------------------- swarm
state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" != active ]; then
	log "initialising a single-host swarm"
	timeout 60 docker swarm init >/dev/null 2>&1 || timeout 60 docker swarm init --advertise-addr 127.0.0.1 >/dev/null ||
		die "docker swarm init failed"
fi
SELF=$(docker info --format '{{.Swarm.NodeID}}')
[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] || die "this Docker is a swarm worker; run e2e.sh on a manager"
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
	die "stack $STACK already exists; remove it first: docker stack rm $STACK"
fi

if [ "${E2E_SKIP_BUILD:-0}" != 1 ]; then
	log "building images (build.sh --tag $TAG)"
	timeout 3600 "$HERE/build.sh" --tag "$TAG" || die "build.sh failed"
fi
for img in node nginx mariadb prometheus alertmanager; do
	docker image inspect "flashstock/$img:$TAG" >/dev/null 2>&1 || die "image flashstock/$img:$TAG missing (run build.sh)"
done

# The load generator, static: it runs in a container of the node image on
# the stack's network (it reaches MariaDB there for its verification).
LOADGEN=$WORK/loadgen
for i in 1 2 3; do
	(cd "$HERE/../.." && CGO_ENABLED=0 timeout 600 go build -o "$LOADGEN" ./cmd/loadgen) && break
	[ "$i" = 3 ] && die "go build ./cmd/loadgen failed"
	log "go build ./cmd/loadgen failed; retrying in 20 s"
	sleep 20
done

# A single host carries every zone: all three nodes are placed on zone=e2e.
for l in zone=e2e edge=true monitoring=true; do
	k=${l%%=*}
	if [ -z "$(docker node inspect "$SELF" --format "{{index .Spec.Labels \"$k\"}}")" ]; then
		docker node update --label-add "$l" "$SELF" >/dev/null
		ADDED_LABELS+=("$k")
	elif [ "$k" = zone ]; then
		die "this host already has a zone label; run e2e.sh on a scratch swarm"
	fi
done

# ------------------------------------------------------------------ secrets
rand() { openssl rand -hex "$1"; }
AUTH_SECRET=$(rand 32)
ADMIN_TOKEN=$(rand 24)
DB_PASSWORD=$(rand 16)
DSNS="flashstock:$DB_PASSWORD@tcp(mysql0:3306)/flashstock,flashstock:$DB_PASSWORD@tcp(mysql1:3306)/flashstock"
printf '%s' "$AUTH_SECRET" | docker secret create "${STACK}_auth_secret" - >/dev/null
printf '%s' "$ADMIN_TOKEN" | docker secret create "${STACK}_admin_token" - >/dev/null
printf '%s' "$DB_PASSWORD" | docker secret create "${STACK}_mysql_password" - >/dev/null
printf '%s' "$DSNS" | docker secret create "${STACK}_orders_dsn" - >/dev/null
# The cluster's keys: a throwaway CA, node certificates and a gossip key,
# made by the node binary build.sh staged (or `go build`).
"$HERE/secrets.sh" --prefix "${STACK}_" --ca-dir "$WORK/ca" >/dev/null 2>&1 || die "secrets.sh failed"

# nginx.conf as shipped, plus a log of every purchase answer (the time it
# was sent, its status) in the two purchase locations: the gaps below are
# read from it.
NGINX_CONF=$WORK/nginx.conf
sed 's|^\( *\)#purchase-log$|\1access_log /var/log/nginx/purchases.log flashstock_purchase buffer=32k flush=250ms; access_log /dev/stdout flashstock if=$flashstock_loggable;|' \
	"$HERE/nginx.conf" >"$NGINX_CONF"
[ "$(grep -c 'purchases.log' "$NGINX_CONF")" = 2 ] || die "nginx.conf: the two #purchase-log markers are gone"

# ------------------------------------------------------------------- deploy
log "deploying stack $STACK (nginx on 127.0.0.1:$PORT)"
(
	cd "$HERE"
	export FLASHSTOCK_TAG=$TAG FLASHSTOCK_HTTP_PORT=$PORT FLASHSTOCK_PROM_PORT=$PROM_PORT
	export FLASHSTOCK_ZONE_1=e2e FLASHSTOCK_ZONE_2=e2e FLASHSTOCK_ZONE_3=e2e
	export FLASHSTOCK_SECRET_PREFIX="${STACK}_" FLASHSTOCK_NGINX_CONF=$NGINX_CONF
	export FLASHSTOCK_NODE_CPUS=1 FLASHSTOCK_NODE_MEM=1G FLASHSTOCK_NODE_CPU_RES=0.05 FLASHSTOCK_NODE_MEM_RES=64M
	export FLASHSTOCK_DB_CPU_RES=0.05 FLASHSTOCK_DB_MEM_RES=64M FLASHSTOCK_LOG_LEVEL=info
	export FLASHSTOCK_GATEWAYS=2 FLASHSTOCK_GW_CPUS=1 FLASHSTOCK_GW_MEM=512M FLASHSTOCK_GW_PER_HOST=3 # one host here
	# dockerd may run with a lower open-files limit than production hosts.
	export FLASHSTOCK_NOFILE=${E2E_NOFILE:-$(awk '/Max open files/ { print $4 }' /proc/$(pgrep -xo dockerd)/limits 2>/dev/null || echo 4096)}
	timeout 120 docker stack deploy --resolve-image never -c stack.yml "$STACK" >/dev/null
) || die "docker stack deploy failed"

# ------------------------------------------------------------------ helpers
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
# jwt USER: an HS256 shopper token, valid for an hour.
jwt() {
	local h p s
	h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
	p=$(printf '{"sub":"%s","exp":%d}' "$1" $(($(date +%s) + 3600)) | b64url)
	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$AUTH_SECRET" -binary | b64url)
	printf '%s.%s.%s' "$h" "$p" "$s"
}
admin() { curl -sS -m 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$@"; }
ready() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$BASE/readyz?all=1")" = 200 ]; }
members_alive() { # N: core members (the ones with a Raft address) alive
	[ "$(admin "$BASE/v1/cluster/status" | jq '[.members[] | select(.state == "alive" and (.raft // "") != "")] | length')" = "$1" ]
}
task() { # SERVICE: the container of its running task (the first one)
	docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" | head -n1
}
# status_of NODE: /v1/cluster/status as that core node sees it. Through
# nginx a gateway answers: it knows the leaders but holds no shard.
status_of() {
	local c
	c=$(task "$1")
	[ -n "$c" ] && docker exec "$c" /bin/busybox wget -qO- --header "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8080/v1/cluster/status
}
core_status() { status_of node1; }
all_led() {
	admin "$BASE/v1/cluster/status" | jq -e '.shards | length > 0 and all(.[]; .leader != "")' >/dev/null
}
# healthy: every running container of the stack has passed its health check.
healthy() {
	local st
	st=$(docker ps --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Status}}')
	[ -n "$st" ] && ! grep -qv '(healthy)' <<<"$st"
}
# shard_of ITEM: the item's shard, as raftstore.ShardFor computes it
# (FNV-1a, 32 bits, modulo the number of shards).
SHARDS=
shard_of() {
	local s=$1 h=2166136261 i c
	for ((i = 0; i < ${#s}; i++)); do
		printf -v c '%d' "'${s:i:1}"
		h=$((((h ^ c) * 16777619) & 0xffffffff))
	done
	echo $((h % SHARDS))
}
# leader_of ITEM: the core node leading the item's shard.
leader_of() {
	local sh
	sh=$(shard_of "$1")
	core_status | jq -r --argjson s "$sh" '.shards[] | select(.id == $s) | .leader // empty'
}

# three_voters: on every core node, every shard has a leader and lists
# node1..3 as its voters (and no non-voter), and each node is a Follower or
# the Leader in it; and each node has applied, in every shard, at least what
# the leader had committed a moment before (so a node that came back at a
# new address really takes part in Raft: the leaders reach it).
three_voters() {
	local n s before=() after=()
	for n in node1 node2 node3; do
		s=$(status_of "$n") || return 1
		before+=("$s")
	done
	for n in node1 node2 node3; do
		s=$(status_of "$n") || return 1
		after+=("$s")
	done
	jq -e -s '
		(.[0:3] | map(.shards[] | select(.state == "Leader") | {key: (.id | tostring), value: .commit_index}) | from_entries) as $commit
		| .[3:6] | length == 3 and all(.[];
			.shards | length > 0 and all(.[];
				.leader != "" and ((.voters // []) | sort) == ["node1", "node2", "node3"]
				and ((.non_voters // []) | length) == 0
				and (.state == "Leader" or .state == "Follower")
				and ($commit[.id | tostring] != null) and .applied_index >= $commit[.id | tostring]))' \
		< <(printf '%s\n' "${before[@]}" "${after[@]}") >/dev/null
}
# wait_voters WHAT: three_voters within VOTER_WAIT seconds, else print every
# core node's view and fail.
wait_voters() {
	local start=$SECONDS n
	until three_voters; do
		if [ $((SECONDS - start)) -ge "$VOTER_WAIT" ]; then
			for n in node1 node2 node3; do
				echo "--- /v1/cluster/status on $n" >&2
				status_of "$n" | jq -r '"  \(.node.name) ready=\(.node.ready)",
					(.members[] | "  member \(.id) \(.state) raft=\(.raft)"),
					(.shards[] | "  shard \(.id) \(.state) leader=\(.leader) voters=\((.voters // []) | join(",")) non_voters=\((.non_voters // []) | join(",")) commit=\(.commit_index) applied=\(.applied_index)")' >&2 ||
					echo "  (no answer)" >&2
			done
			die "$1: not every shard lists three voters after ${VOTER_WAIT}s"
		fi
		sleep 2
	done
	log "$1: every shard lists node1..3 as voters on every node, each caught up (after $((SECONDS - start))s)"
}

# buy USER REQUEST_ID: a purchase through nginx, retried with the same
# request_id on 503 or a lost connection (at most 10 tries, 1 s apart). It
# also sends the request_id as Idempotency-Key, so nginx may resend it to
# another gateway (nginx.conf, @purchase_keyed). Prints the HTTP code and
# body; returns 0 on 200/201.
buy() {
	local tok code body i
	tok=$(jwt "$1")
	for i in $(seq 1 10); do
		body=$(curl -s -m 10 -w '\n%{http_code}' -X POST "$BASE/v1/items/$ITEM/purchase" \
			-H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -H "Idempotency-Key: $2" \
			-d "{\"quantity\":1,\"request_id\":\"$2\"}") || body=$'\n000'
		code=${body##*$'\n'}
		body=${body%$'\n'*}
		case "$code" in
		200 | 201) echo "$code $body"; return 0 ;;
		503 | 502 | 504 | 000) sleep 1 ;;
		*) echo "$code $body"; return 1 ;;
		esac
	done
	echo "$code $body"
	return 1
}

# ---------------------------------------------------------------- crowds
# The crowds reach nginx at the host's published port from the stack's
# network: through docker_gwbridge's gateway, the host's address there.
GWBRIDGE=$(docker network inspect docker_gwbridge --format '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || true)
[ -n "$GWBRIDGE" ] || die "no docker_gwbridge network (is this Docker in a swarm?)"
EDGE="http://$GWBRIDGE:$PORT"

# crowd_start NAME ITEMS SHOPPERS WINDOW: a loadgen crowd through nginx in
# the background (JWTs; every purchase with its request_id, retried with it
# on 5xx, lost connections and timeouts, as the API asks), verified after
# against the nodes and both MariaDB databases. Sets CROWD (the container),
# CROWD_DIR and CROWD_ITEM (its first item). The items are created here,
# before loadgen starts (it takes them as they are): an item read before
# it exists would be cached as unknown by a gateway for up to
# --item-cache-ttl, and loadgen reads its items right after creating them.
crowd_start() {
	local name=$1 prefix i code
	prefix="e2e-$name-$(rand 3)-"
	CROWD_DIR=$WORK/crowd-$name
	CROWD_ITEM=${prefix}1
	mkdir -p "$CROWD_DIR"
	for i in $(seq 1 "$2"); do
		code=$(admin -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/items" -H 'Content-Type: application/json' \
			-d "{\"id\":\"$prefix$i\",\"name\":\"E2E crowd\",\"stock\":1000000,\"per_user_limit\":1}") || true
		[ "$code" = 201 ] || die "create item $prefix$i: HTTP $code"
	done
	printf '%s' "$AUTH_SECRET" >"$CROWD_DIR/auth"
	printf '%s' "$ADMIN_TOKEN" >"$CROWD_DIR/admin"
	printf 'LOADGEN_VERIFY_MYSQL=%s\n' "$DSNS" >"$CROWD_DIR/env"
	CROWD=$(docker run -d --name "${STACK}-crowd-$name" --label "fse2e.crowd=$STACK" \
		--network "${STACK}_flashstock" --user 0:0 -v "$CROWD_DIR:/crowd" -v "$LOADGEN:/loadgen:ro" \
		--env-file "$CROWD_DIR/env" --entrypoint /loadgen "flashstock/node:$TAG" \
		--scenario crowd --targets "$EDGE" --auth-secret-file /crowd/auth --admin-token-file /crowd/admin \
		--create --items "$2" --item-prefix "$prefix" --stock 1000000 --per-user-limit 1 \
		--requests "$3" --arrival-window "$4" --duration $((${4%s} + 40))s --max-attempts 30 --backoff-max 2s \
		--timeout 10s --verify --verify-timeout 60s --progress 0 --out /crowd/report.json) ||
		die "docker run loadgen ($name)"
}
# crowd_running: loadgen has started buying.
crowd_running() {
	[ "$(docker inspect -f '{{.State.Running}}' "$CROWD" 2>/dev/null)" = true ] &&
		curl -s -m 5 "$BASE/v1/items/$CROWD_ITEM" | jq -e '.sold > 0' >/dev/null
}
# crowd_check WHAT: waits for the crowd; every purchase must end confirmed
# and loadgen's verification pass.
crowd_check() {
	local rc notok
	rc=$(timeout $((WAIT + 300)) docker wait "$CROWD") || die "$1: loadgen did not finish"
	docker logs "$CROWD" >"$CROWD_DIR/loadgen.out" 2>&1
	docker rm -fv "$CROWD" >/dev/null 2>&1
	grep -v 'level=INFO' "$CROWD_DIR/loadgen.out" | tail -5 >&2
	[ -s "$CROWD_DIR/report.json" ] || die "$1: loadgen wrote no report (exit $rc)"
	notok=$(jq '[.purchases.by_outcome | to_entries[] | select(.key != "confirmed" and .key != "replayed") | .value] | add // 0' "$CROWD_DIR/report.json")
	log "$1 during a loadgen crowd: $(jq '.purchases.by_outcome.confirmed // 0' "$CROWD_DIR/report.json") purchases confirmed," \
		"$notok not, $(jq .retries "$CROWD_DIR/report.json") retries, verification (books, orders, both MariaDB databases) exit $rc"
	[ "$notok" = 0 ] || die "$1: $notok purchases with a request_id did not end confirmed: $(jq -c .purchases.by_outcome "$CROWD_DIR/report.json")"
	[ "$rc" = 0 ] || die "$1: loadgen's verification failed (exit $rc): $(jq -c '.verify.problems // [] | .[:5]' "$CROWD_DIR/report.json")"
}

# now: the time, as nginx's $msec writes it.
now() { date +%s.%3N; }
# gap WHAT FROM TO: the longest time without a confirmed purchase (200 or
# 201) answered by nginx around the fault window [FROM, TO] (every gap
# between two confirmations that ends after FROM and starts before TO),
# from the purchase log of every nginx container of the stack, running or
# stopped; with the other answers nginx gave in the window. Fails past
# MAX_GAP seconds.
GAPS=()
gap() {
	local what=$1 from=$2 to=$3 c out g
	sleep 1 # nginx flushes its log buffer every 250 ms
	: >"$WORK/purchases.log"
	for c in $(docker ps -aq --filter "label=com.docker.swarm.service.name=${STACK}_nginx"); do
		docker cp "$c:/var/log/nginx/purchases.log" - 2>/dev/null | tar -xO >>"$WORK/purchases.log" 2>/dev/null || true
	done
	out=$(awk '$2 == 200 || $2 == 201 { print $1 }' "$WORK/purchases.log" | sort -n |
		awk -v from="$from" -v to="$to" '
			{ t = $1 + 0 }
			NR > 1 && t >= from && prev <= to && t - prev > max { max = t - prev; a = prev; b = t }
			t >= from && t <= to { n++ }
			{ prev = t }
			END {
				if (prev < to) { if (to - prev > max) { max = to - prev; a = prev; b = to }; note = " (confirmations stopped before the window ended)" }
				printf "%.2f %d %.3f %.3f%s\n", max, n, a - from, b - from, note
			}')
	g=${out%% *}
	local others
	others=$(awk -v from="$from" -v to="$to" '$1 >= from && $1 <= to && $2 != 200 && $2 != 201 { n[$2]++ }
		END { for (s in n) printf "%s%s x%d", (k++ ? ", " : ""), s, n[s] }' "$WORK/purchases.log")
	read -r _ n a b rest <<<"$out"
	log "GAP $what: longest time without a confirmed purchase through nginx: ${g}s (from +${a}s to +${b}s after the fault;" \
		"$n confirmations in the $(awk -v f="$from" -v t="$to" 'BEGIN { printf "%.1f", t - f }') s window; other answers: ${others:-none})${rest:+ $rest}"
	GAPS+=("$what ${g}s")
	awk -v g="$g" -v m="$MAX_GAP" 'BEGIN { exit !(g <= m) }' || die "$what: ${g}s without a confirmed purchase through nginx (E2E_MAX_GAP ${MAX_GAP}s)"
}

# -------------------------------------------------------------------- test
# Swarm's DNS must resolve service names on the overlay network. It does not
# when dockerd's network agent failed to start, e.g. because port 7946 was
# taken when the swarm was initialised (dockerd logs "error in agentInit").
resolves() {
	local c
	c=$(task nginx)
	[ -n "$c" ] && docker exec "$c" getent hosts mysql0
}
wait_for 150 "service names resolve on the overlay network (else: is dockerd's agent up? 'error in agentInit' in its log)" resolves
wait_for "$WAIT" "ready through nginx" ready
wait_for "$WAIT" "3 members alive" members_alive 3
wait_for "$WAIT" "every shard has a leader" all_led
wait_for "$WAIT" "every container of the stack passes its health check" healthy
SHARDS=$(core_status | jq '.shards | length')

ITEM=e2e-phone-$(rand 3)
log "creating item $ITEM (stock 20, 1 per shopper)"
code=$(admin -o "$WORK/item.json" -w '%{http_code}' -X POST "$BASE/v1/items" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$ITEM\",\"name\":\"E2E phone\",\"stock\":20,\"per_user_limit\":1}") || true
cat "$WORK/item.json" >&2
[ "$code" = 201 ] || die "create item: HTTP $code"

SOLD=0
FIRST_ORDER=
for u in 1 2 3 4 5; do
	out=$(buy "shopper-$u" "req-$u") || die "purchase by shopper-$u: $out"
	SOLD=$((SOLD + 1))
	[ -n "$FIRST_ORDER" ] || FIRST_ORDER=$(jq -r .order_id <<<"${out#* }")
done
log "bought $SOLD units before the failure"
out=$(buy shopper-1 req-1) || die "repeated request_id: $out"
[ "${out%% *}" = 200 ] || die "repeated request_id answered ${out%% *}, want 200"
out=$(buy shopper-1 req-1b || true)
[[ "$out" == 409* ]] || die "second unit for shopper-1: $out, want 409 limit_exceeded"
log "idempotent retry (200) and per-user limit (409) hold"

# ------------------------------------------- a leader killed mid-crowd
# The crowd buys one item; the node leading its shard is SIGKILLed.
crowd_start kill 1 2000 40s
wait_for 60 "crowd buying $CROWD_ITEM" crowd_running
sleep 6
core_status | jq -e --argjson s "$(shard_of "$CROWD_ITEM")" '.shards[] | select(.id == $s) | .items > 0' >/dev/null ||
	die "shard $(shard_of "$CROWD_ITEM") holds no item: does raftstore.ShardFor still hash as shard_of does?"
if [ "$KILL_NODE" = leader ]; then
	KILL_NODE=$(leader_of "$CROWD_ITEM")
	[ -n "$KILL_NODE" ] || die "no leader for the shard of $CROWD_ITEM in /v1/cluster/status"
	log "$KILL_NODE leads the shard of $CROWD_ITEM (shard $(shard_of "$CROWD_ITEM"))"
fi
CID=$(task "$KILL_NODE")
[ -n "$CID" ] || die "no running container for ${STACK}_$KILL_NODE"
log "SIGKILL $KILL_NODE (container ${CID:0:12}) during the crowd"
T_KILL=$(now)
docker kill -s KILL "$CID" >/dev/null

for u in 6 7 8 9 10; do
	out=$(buy "shopper-$u" "req-$u") || die "purchase by shopper-$u after killing $KILL_NODE: $out"
	SOLD=$((SOLD + 1))
done
log "bought $SOLD units of $ITEM in total; 5 of them with $KILL_NODE down or restarting"
crowd_check "a leader SIGKILLed"
gap "leader kill" "$T_KILL" "$(awk -v t="$T_KILL" 'BEGIN { printf "%.3f", t + 15 }')"

# Through nginx a gateway answers item reads from its cache, at most
# --item-cache-ttl (1 s) behind the owner: wait for it rather than read once.
item_counts() {
	item=$(curl -sS -m 10 "$BASE/v1/items/$ITEM")
	[ "$(jq .sold <<<"$item")" = "$SOLD" ] && [ "$(jq .remaining <<<"$item")" = $((20 - SOLD)) ]
}
wait_for 10 "item sold=$SOLD, remaining $((20 - SOLD)) through nginx (at most the cache TTL late)" item_counts
log "item: $item"

persisted() { admin "$BASE/v1/orders/$FIRST_ORDER" | jq -e '.persisted == true'; }
wait_for 60 "order $FIRST_ORDER persisted in MariaDB" persisted

status=$(admin "$BASE/v1/cluster/status")
log "cluster status (answered by $(jq -r .node.name <<<"$status")):"
jq -r '.members[] | "  member \(.id) \(.state) raft=\(.raft) gossip=\(.gossip_addr)"' <<<"$status" >&2
jq -r '.shards[] | "  shard \(.id) leader=\(.leader)"' <<<"$status" >&2
# (A gateway knows the leaders from gossip: bounded, not at once.)
wait_for 30 "every shard has a leader (a gateway's view)" all_led

log "waiting for Swarm to restart $KILL_NODE"
node_ready() {
	local c
	c=$(task "$KILL_NODE")
	[ -n "$c" ] && [ "$c" != "$CID" ] && docker exec "$c" /bin/busybox wget -qO- http://127.0.0.1:8080/readyz?all=1
}
wait_for "$WAIT" "a new $KILL_NODE task is ready" node_ready
log "$KILL_NODE is back at $(status_of "$KILL_NODE" | jq -r .node.raft_addr) (it was $(jq -r --arg n "$KILL_NODE" '.members[] | select(.id == $n) | .raft' <<<"$status"))"
wait_for "$WAIT" "3 members alive again" members_alive 3
wait_voters "$KILL_NODE back after SIGKILL"
# How its seats followed it (cluster/reconcile.go): the same ID re-added at
# the new address, or (back after --dead-node-grace) removed and added again.
for n in node1 node2 node3; do timeout 20 docker service logs --raw "${STACK}_$n" 2>&1 || true; done |
	grep -aE "node=$KILL_NODE( |\$)" >"$WORK/reconcile.log" || true
log "the leaders' reconcilers, for $KILL_NODE:" \
	"update server address x$(grep -ac 'msg="update server address"' "$WORK/reconcile.log" || true)," \
	"remove dead server x$(grep -ac 'msg="remove dead server"' "$WORK/reconcile.log" || true)," \
	"add non-voter x$(grep -ac 'msg="add non-voter"' "$WORK/reconcile.log" || true)," \
	"promote to voter x$(grep -ac 'msg="promote to voter"' "$WORK/reconcile.log" || true)"

out=$(buy shopper-11 req-11) || die "purchase after $KILL_NODE returned: $out"
SOLD=$((SOLD + 1))

# ------------------------------------------- gray failures: SIGSTOP
# A node that is alive but silent (a long GC pause, a frozen VM): first the
# leader of the crowd item's shard, then a gateway, each for PAUSE seconds.
# pause SERVICE [CMD...]: SIGSTOP its container for PAUSE seconds, running
# CMD meanwhile; sets T_PAUSE.
pause() {
	local c svc=$1 end
	shift
	c=$(task "$svc")
	[ -n "$c" ] || die "no running container for ${STACK}_$svc"
	log "SIGSTOP ${STACK}_$svc (container ${c:0:12}) for ${PAUSE}s during the crowd"
	T_PAUSE=$(now)
	end=$((SECONDS + PAUSE))
	docker kill -s STOP "$c" >/dev/null
	[ $# -eq 0 ] || "$@"
	[ "$SECONDS" -ge "$end" ] || sleep $((end - SECONDS))
	docker kill -s CONT "$c" >/dev/null
	log "SIGCONT ${STACK}_$svc"
}
# keyed_buys: while a gateway is paused, purchases that carry an
# Idempotency-Key: nginx resends one that its gateway leaves unanswered for
# 2 s to another gateway (@purchase_keyed), so each ends confirmed well
# before the 7 s an unkeyed purchase may wait there.
keyed_buys() {
	local i out t slow=0 max=0
	for i in 1 2 3 4; do
		t=$(now)
		out=$(buy "keyed-$i" "keyed-req-$i") || die "keyed purchase $i during the gateway pause: $out"
		[[ "$out" == 201* ]] || die "keyed purchase $i during the gateway pause: $out, want 201"
		t=$(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
		awk -v t="$t" 'BEGIN { exit !(t >= 1.9) }' && slow=$((slow + 1))
		max=$(awk -v t="$t" -v m="$max" 'BEGIN { print (t > m ? t : m) }')
	done
	awk -v m="$max" 'BEGIN { exit !(m < 7) }' || die "a keyed purchase took ${max}s during the gateway pause: nginx did not resend it"
	log "4 purchases with an Idempotency-Key during the gateway pause: all confirmed, slowest ${max}s; $slow resent after 2 s"
}
ITEM_KEYED=e2e-keyed-$(rand 3)
code=$(admin -o /dev/null -w '%{http_code}' -X POST "$BASE/v1/items" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$ITEM_KEYED\",\"name\":\"E2E keyed\",\"stock\":100,\"per_user_limit\":1}") || true
[ "$code" = 201 ] || die "create item $ITEM_KEYED: HTTP $code"
ITEM_MAIN=$ITEM
crowd_start pause 1 2400 48s
wait_for 60 "crowd buying $CROWD_ITEM" crowd_running
sleep 4
PAUSE_NODE=$(leader_of "$CROWD_ITEM")
[ -n "$PAUSE_NODE" ] || die "no leader for the shard of $CROWD_ITEM"
log "$PAUSE_NODE leads the shard of $CROWD_ITEM"
# leader_views: while the leader is paused, when Raft elects another (as a
# surviving core node sees it) and when the gateways route to it (the
# gateway that answers /v1/cluster/status through nginx, from gossip).
leader_views() {
	local sh other raft gw t0=$SECONDS said=
	sh=$(shard_of "$CROWD_ITEM")
	other=node1
	[ "$PAUSE_NODE" != node1 ] || other=node2
	while [ $((SECONDS - t0)) -lt $((PAUSE - 2)) ]; do
		raft=$(status_of "$other" | jq -r --argjson s "$sh" '.shards[] | select(.id == $s) | .leader') || raft=
		gw=$(admin -m 2 "$BASE/v1/cluster/status" | jq -r --argjson s "$sh" '.shards[] | select(.id == $s) | .leader') || gw=
		if [ -n "$raft" ] && [ "$raft" != "$PAUSE_NODE" ] && [ -z "$said" ]; then
			log "  +$(awk -v a="$T_PAUSE" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s: Raft leader of shard $sh is $raft ($other's view); a gateway routes to ${gw:-nobody}"
			said=1
		fi
		if [ -n "$said" ] && [ "$gw" = "$raft" ]; then
			log "  +$(awk -v a="$T_PAUSE" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')s: the gateway routes shard $sh to $gw"
			return
		fi
		sleep 0.3
	done
}
pause "$PAUSE_NODE" leader_views
T_LEADER=$T_PAUSE
sleep 8
ITEM=$ITEM_KEYED
pause gateway keyed_buys
T_GATEWAY=$T_PAUSE
ITEM=$ITEM_MAIN
crowd_check "a leader and a gateway paused"
gap "leader pause (${PAUSE}s SIGSTOP of $PAUSE_NODE)" "$T_LEADER" "$(awk -v t="$T_LEADER" -v p="$PAUSE" 'BEGIN { printf "%.3f", t + p + 7 }')"
gap "gateway pause (${PAUSE}s SIGSTOP)" "$T_GATEWAY" "$(awk -v t="$T_GATEWAY" -v p="$PAUSE" 'BEGIN { printf "%.3f", t + p + 5 }')"
wait_for "$WAIT" "3 members alive after the pauses" members_alive 3
wait_voters "after the pauses"

# ------------------------------------------- the design article's Locust shoppers
# deploy/locust's shoppers through nginx, minting their JWTs with the
# stack's secret (from a 0600 file, never an argument): sign in, buy among
# fresh items (one sells out), read their orders. Any failed request or
# broken invariant fails the e2e.
locust_cmd=()
if command -v locust >/dev/null 2>&1; then
	locust_cmd=(locust)
elif /usr/bin/python3 -c 'import locust' >/dev/null 2>&1; then
	locust_cmd=(/usr/bin/python3 -m locust)
fi
[ ${#locust_cmd[@]} -gt 0 ] || die "Locust not found (apt-get install -y python3-locust)"
LOCUST_DIR=$WORK/locust
mkdir -p "$LOCUST_DIR"
(umask 077 && printf '%s' "$AUTH_SECRET" >"$LOCUST_DIR/auth" && printf '%s' "$ADMIN_TOKEN" >"$LOCUST_DIR/admin")
log "Locust: 40 shoppers for 20 s through nginx"
rc=0
FLASHSTOCK_AUTH_SECRET_FILE=$LOCUST_DIR/auth FLASHSTOCK_ADMIN_TOKEN_FILE=$LOCUST_DIR/admin \
	FLASHSTOCK_CREATE_ITEMS=1 FLASHSTOCK_SUMMARY_FILE=$LOCUST_DIR/summary.json \
	timeout 180 "${locust_cmd[@]}" -f "$HERE/../locust/locustfile.py" --headless -u 40 -r 20 -t 20s \
	--host "$BASE" --only-summary --stop-timeout 0 >"$LOCUST_DIR/locust.log" 2>&1 || rc=$?
grep -e 'locust\|Aggregated\|verdict\|item ' "$LOCUST_DIR/locust.log" | tail -8 >&2 || true
[ "$rc" = 0 ] || die "Locust through nginx exited $rc (log: $LOCUST_DIR/locust.log)"
log "Locust through nginx: $(jq -r '"\(.requests // "?") requests, \(.failures // "?") failures, \(.confirmed_units // .confirmed // "?") units confirmed"' "$LOCUST_DIR/summary.json" 2>/dev/null || echo "summary unreadable")"

if [ "$QUICK" = 1 ]; then
	log "PASS (E2E_QUICK): $SOLD units of $ITEM sold, a leader killed and back with three voters, a leader and a gateway" \
		"paused ${PAUSE}s, every crowd purchase confirmed and verified against both MariaDB databases;" \
		"longest gaps through nginx: $(IFS=';'; echo "${GAPS[*]}" | sed 's/;/; /g'); $((SECONDS - START))s"
	exit 0
fi

# ------------------------------------------- nginx replaced mid-crowd
# nginx's port is published on the host (mode: host): the new task can
# only start once the old one has stopped, and on this host it is the only
# edge. Shoppers retry with their request_id; none may be lost. A probe
# records when the edge refuses connections.
crowd_start edge 1 2000 40s
wait_for 60 "crowd buying $CROWD_ITEM" crowd_running
sleep 5
(while :; do
	if curl -s -o /dev/null -m 1 "$BASE/healthz"; then echo "$(now) up"; else echo "$(now) down"; fi
	sleep 0.05
done) >"$WORK/edge-probe.log" 2>/dev/null &
PROBE=$!
OLD_NGINX=$(task nginx)
log "docker service update --force ${STACK}_nginx during the crowd"
T_EDGE=$(now)
timeout 120 docker service update --force --detach --quiet "${STACK}_nginx" >/dev/null || die "docker service update nginx"
new_nginx_up() {
	local c
	c=$(task nginx)
	[ -n "$c" ] && [ "$c" != "$OLD_NGINX" ] && curl -fs -m 2 -o /dev/null "$BASE/healthz"
}
wait_for "$WAIT" "a new nginx task answers on the host port" new_nginx_up
T_EDGE_UP=$(now)
sleep 2
kill "$PROBE" 2>/dev/null
wait "$PROBE" 2>/dev/null || true
PROBE=
down=$(awk '$2 == "down" && !d { d = $1 } $2 == "up" && d && !u { u = $1 } END { if (d) printf "%.2f", (u ? u : d) - d; else print 0 }' "$WORK/edge-probe.log")
log "the edge refused connections for ${down}s (probe every 50 ms)"
crowd_check "nginx replaced"
gap "nginx update (edge down ${down}s)" "$T_EDGE" "$(awk -v t="$T_EDGE_UP" 'BEGIN { printf "%.3f", t + 3 }')"
# Swarm calls the update done once the new task passed its health check,
# stayed up for `monitor` and `delay` passed.
updated() { [ "$(docker service inspect "${STACK}_nginx" --format '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}')" = completed ]; }
wait_for "$WAIT" "the nginx update completed (new task healthy, monitored)" updated

# ----------------------------------------- crowds: gateway scale, upgrade
# The gateway service goes from 2 to 3 tasks and down to 1 mid-crowd.
crowd_start scale 1 2400 40s
gateways_alive() { # N: gateway members alive
	[ "$(admin "$BASE/v1/cluster/status" | jq '[.members[] | select(.state == "alive" and .role == "gateway")] | length')" = "$1" ]
}
sleep 6
log "scaling ${STACK}_gateway to 3 during the sale"
timeout 120 docker service scale --detach "${STACK}_gateway=3" >/dev/null
wait_for "$WAIT" "3 gateways alive" gateways_alive 3
sleep 8 # nginx re-resolves every 5 s: let it spread the shoppers
log "scaling ${STACK}_gateway down to 1"
timeout 120 docker service scale --detach "${STACK}_gateway=1" >/dev/null
wait_for "$WAIT" "1 gateway alive" gateways_alive 1
crowd_check "gateway scale 2 -> 3 -> 1"

# rolling-restart.sh --image moves node1, node2, node3 (one at a time, each
# back and every shard led before the next) and then the gateways to a new
# image tag mid-crowd.
docker tag "flashstock/node:$TAG" "flashstock/node:$TAG-next"
NEXT_IMAGE="flashstock/node:$TAG-next"
crowd_start upgrade 4 6000 200s
sleep 5
log "rolling upgrade to $NEXT_IMAGE during the sale"
up_start=$SECONDS
rr=0
FLASHSTOCK_ADMIN_TOKEN_FILE="$CROWD_DIR/admin" WAIT="$WAIT" \
	"$HERE/rolling-restart.sh" --stack "$STACK" --image "$NEXT_IMAGE" --url "$BASE" >"$WORK/rolling-restart.out" 2>&1 || rr=$?
# (docker's warning that a local image has no registry digest left out)
grep -v -e 'could not be accessed on a registry' -e 'its digest. Each node' -e 'possibly leading to' \
	-e 'versions of the image' -e '^$' "$WORK/rolling-restart.out" >&2 || true
[ "$rr" = 0 ] || die "rolling-restart.sh failed (exit $rr)"
log "rolling upgrade done in $((SECONDS - up_start))s; waiting for the crowd to finish"
crowd_check "rolling upgrade"
for n in node1 node2 node3 gateway; do
	img=$(docker service inspect "${STACK}_$n" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
	[[ "$img" == "$NEXT_IMAGE"* ]] || die "${STACK}_$n runs $img after the upgrade, want $NEXT_IMAGE"
done

# ------------------------------------------------------------- an alert
# Stop node3: Prometheus sees it down, FlashstockNodeDown fires after 30 s,
# and Alertmanager delivers it to the alert log. Then node3 comes back and
# every shard must list the three voters again.
log "stopping node3 until FlashstockNodeDown reaches the alert log"
timeout 120 docker service scale --detach "${STACK}_node3=0" >/dev/null
alert_logged() {
	timeout 20 docker service logs --raw "${STACK}_alert-log" 2>/dev/null |
		grep -a '"status":"firing"' | grep -aq '"alertname":"FlashstockNodeDown"'
}
wait_for 180 "FlashstockNodeDown fired and reached the alert log" alert_logged
timeout 120 docker service scale --detach "${STACK}_node3=1" >/dev/null
wait_for "$WAIT" "3 members alive after node3's return" members_alive 3
wait_voters "node3 back after the alert"

log "PASS: $SOLD units sold, no oversell, orders persisted, a leader killed and back with three voters, a leader and a" \
	"gateway paused, nginx replaced, gateways scaled 2 -> 3 -> 1 and a rolling upgrade with no failed purchase," \
	"every crowd verified against both MariaDB databases, an alert delivered;" \
	"longest gaps through nginx: $(IFS=';'; echo "${GAPS[*]}" | sed 's/;/; /g'); $((SECONDS - START))s"
