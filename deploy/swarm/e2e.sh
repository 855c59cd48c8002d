#!/usr/bin/env bash
# e2e.sh: deploys the Flashstock stack on a single-host swarm and checks it
# end to end, then removes everything it created (a trap, on any exit).
#
#   1. `docker swarm init` if this Docker is not in a swarm (left initialised)
#   2. build.sh (all images; E2E_SKIP_BUILD=1 to reuse them)
#   3. label this host (zone=e2e, edge=true, monitoring=true), create secrets
#      (secrets.sh: the cluster's CA, node certificates and gossip key)
#   4. deploy stack.yml as stack "fse2e": node1..3, one gateway, nginx,
#      mysql0/1, prometheus
#   5. wait until /readyz answers 200 through nginx (that is, a gateway) and
#      3 core members are alive
#   6. create an item, buy a few units with shopper JWTs
#   7. SIGKILL the container of the node leading the item's shard, buy more,
#      read /v1/cluster/status
#   8. wait for Swarm to restart the node and report what the cluster shows
#   9. scale the gateway service from 1 to 3 and back to 1 while a loadgen
#      crowd buys through nginx with request IDs: every purchase must end
#      confirmed and loadgen's verification pass
#  10. rolling-restart.sh --image to a new tag (node1..3 one at a time, then
#      the gateways) while a loadgen crowd buys: every purchase must end
#      confirmed and loadgen's verification pass
#  11. stop node3 until FlashstockNodeDown reaches the alert log
#      (Prometheus -> Alertmanager -> alert-log), then bring it back
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
TAG=${FLASHSTOCK_TAG:-dev}
BASE="http://127.0.0.1:$PORT"
# The node to kill: "leader" (default) is the leader of the item's shard,
# so the kill exercises a failover mid-sale; or node1, node2, node3.
KILL_NODE=${E2E_KILL_NODE:-leader}

log() { printf '%s e2e: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
for c in docker curl openssl jq timeout; do command -v "$c" >/dev/null || die "$c not found"; done

# ------------------------------------------------------------------ teardown
ADDED_LABELS=()
SELF=
CA_TMP=
teardown() {
	local rc=$?
	set +e
	[ -n "$CA_TMP" ] && rm -rf "$CA_TMP"
	trap '' INT TERM # finish the cleanup even if interrupted again
	if [ "${E2E_KEEP:-0}" = 1 ]; then
		log "E2E_KEEP=1: leaving stack $STACK in place"
		exit "$rc"
	fi
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
	log "teardown done"
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
printf '%s' "$AUTH_SECRET" | docker secret create "${STACK}_auth_secret" - >/dev/null
printf '%s' "$ADMIN_TOKEN" | docker secret create "${STACK}_admin_token" - >/dev/null
printf '%s' "$DB_PASSWORD" | docker secret create "${STACK}_mysql_password" - >/dev/null
printf 'flashstock:%s@tcp(mysql0:3306)/flashstock,flashstock:%s@tcp(mysql1:3306)/flashstock' \
	"$DB_PASSWORD" "$DB_PASSWORD" | docker secret create "${STACK}_orders_dsn" - >/dev/null
# The cluster's keys: a throwaway CA, node certificates and a gossip key,
# made by the node binary build.sh staged (or `go build`).
CA_TMP=$(mktemp -d)
"$HERE/secrets.sh" --prefix "${STACK}_" --ca-dir "$CA_TMP/ca" >/dev/null 2>&1 || die "secrets.sh failed"

# ------------------------------------------------------------------- deploy
log "deploying stack $STACK (nginx on 127.0.0.1:$PORT)"
(
	cd "$HERE"
	export FLASHSTOCK_TAG=$TAG FLASHSTOCK_HTTP_PORT=$PORT FLASHSTOCK_PROM_PORT=$PROM_PORT
	export FLASHSTOCK_ZONE_1=e2e FLASHSTOCK_ZONE_2=e2e FLASHSTOCK_ZONE_3=e2e
	export FLASHSTOCK_SECRET_PREFIX="${STACK}_"
	export FLASHSTOCK_NODE_CPUS=1 FLASHSTOCK_NODE_MEM=1G FLASHSTOCK_NODE_CPU_RES=0.05 FLASHSTOCK_NODE_MEM_RES=64M
	export FLASHSTOCK_DB_CPU_RES=0.05 FLASHSTOCK_DB_MEM_RES=64M FLASHSTOCK_LOG_LEVEL=info
	export FLASHSTOCK_GATEWAYS=1 FLASHSTOCK_GW_CPUS=1 FLASHSTOCK_GW_MEM=512M FLASHSTOCK_GW_PER_HOST=3 # one host here
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
# core_status: /v1/cluster/status as node1 sees it (a gateway knows the
# leaders but holds no shard, so it cannot say which shard has items).
core_status() {
	local c
	c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_node1" | head -n1)
	docker exec "$c" /bin/busybox wget -qO- --header "Authorization: Bearer $ADMIN_TOKEN" http://127.0.0.1:8080/v1/cluster/status
}
all_led() {
	admin "$BASE/v1/cluster/status" | jq -e '.shards | length > 0 and all(.[]; .leader != "")' >/dev/null
}

# buy USER REQUEST_ID: a purchase through nginx, retried with the same
# request_id on 503 or a lost connection (at most 10 tries, 1 s apart).
# Prints the HTTP code and body; returns 0 on 200/201.
buy() {
	local tok code body i
	tok=$(jwt "$1")
	for i in $(seq 1 10); do
		body=$(curl -s -m 10 -w '\n%{http_code}' -X POST "$BASE/v1/items/$ITEM/purchase" \
			-H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
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

# -------------------------------------------------------------------- test
# Swarm's DNS must resolve service names on the overlay network. It does not
# when dockerd's network agent failed to start, e.g. because port 7946 was
# taken when the swarm was initialised (dockerd logs "error in agentInit").
resolves() {
	local c
	c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_nginx" | head -n1)
	[ -n "$c" ] && docker exec "$c" getent hosts mysql0
}
wait_for 90 "service names resolve on the overlay network (else: is dockerd's agent up? 'error in agentInit' in its log)" resolves
wait_for "$WAIT" "ready through nginx" ready
wait_for "$WAIT" "3 members alive" members_alive 3
wait_for "$WAIT" "every shard has a leader" all_led

ITEM=e2e-phone-$(rand 3)
log "creating item $ITEM (stock 20, 1 per shopper)"
code=$(admin -o /dev/stderr -w '%{http_code}' -X POST "$BASE/v1/items" -H 'Content-Type: application/json' \
	-d "{\"id\":\"$ITEM\",\"name\":\"E2E phone\",\"stock\":20,\"per_user_limit\":1}")
echo >&2
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

if [ "$KILL_NODE" = leader ]; then
	KILL_NODE=$(core_status | jq -r '[.shards[] | select(.items > 0)][0].leader // empty')
	[ -n "$KILL_NODE" ] || die "no shard holds the item according to /v1/cluster/status"
	log "$KILL_NODE leads the shard of $ITEM"
fi
CID=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$KILL_NODE" | head -n1)
[ -n "$CID" ] || die "no running container for ${STACK}_$KILL_NODE"
log "SIGKILL $KILL_NODE (container ${CID:0:12})"
docker kill -s KILL "$CID" >/dev/null

for u in 6 7 8 9 10; do
	out=$(buy "shopper-$u" "req-$u") || die "purchase by shopper-$u after killing $KILL_NODE: $out"
	SOLD=$((SOLD + 1))
done
log "bought $SOLD units in total; 5 of them with $KILL_NODE down or restarting"

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
jq -r '.shards[] | "  shard \(.id) leader=\(.leader) voters=\((.voters // []) | join(",")) leader_addr=\(.leader_addr) commit=\(.commit_index) applied=\(.applied_index)"' <<<"$status" >&2
jq -e '.shards | all(.[]; .leader != "")' >/dev/null <<<"$status" || die "a shard has no leader"

log "waiting for Swarm to restart $KILL_NODE"
node_ready() {
	local c
	c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$KILL_NODE" | head -n1)
	[ -n "$c" ] && [ "$c" != "$CID" ] && docker exec "$c" /bin/busybox wget -qO- http://127.0.0.1:8080/readyz?all=1
}
wait_for "$WAIT" "a new $KILL_NODE task is ready" node_ready
wait_for "$WAIT" "3 members alive again" members_alive 3

# Does the restarted node take part in Raft again? Its own view: the shards
# it replicates must have applied what the others committed.
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$KILL_NODE" | head -n1)
caught_up() {
	docker exec "$c" /bin/busybox wget -qO- --header "Authorization: Bearer $ADMIN_TOKEN" \
		http://127.0.0.1:8080/v1/cluster/status |
		jq -e --arg n "$KILL_NODE" '.node.ready and ([.shards[] | select((.voters // []) | index($n))] | length > 0 and all(.[]; .leader != ""))'
}
wait_for "$WAIT" "$KILL_NODE is a Raft voter again" caught_up
docker exec "$c" /bin/busybox wget -qO- --header "Authorization: Bearer $ADMIN_TOKEN" \
	http://127.0.0.1:8080/v1/cluster/status |
	jq -r '"  \(.node.name) sees:", (.members[] | "  member \(.id) \(.state) raft=\(.raft)"), (.shards[] | "  shard \(.id) leader=\(.leader) voters=\((.voters // []) | join(",")) leader_addr=\(.leader_addr) applied=\(.applied_index)")' >&2

out=$(buy shopper-11 req-11) || die "purchase after $KILL_NODE returned: $out"
SOLD=$((SOLD + 1))
# ----------------------------------------- crowds: gateway scale, upgrade
# crowd_start DIR ITEMS SHOPPERS WINDOW: a loadgen crowd through nginx in the
# background (JWTs; every purchase with its request_id, retried with it on
# 5xx, lost connections and timeouts, as the API asks), verified after.
# crowd_check DIR WHAT: waits for it; every purchase must end confirmed and
# loadgen's verification (the items' books, orders read back) must pass.
crowd_bin=$(mktemp -d)/loadgen
(cd "$HERE/../.." && timeout 600 go build -o "$crowd_bin" ./cmd/loadgen) || die "go build ./cmd/loadgen"
crowd_start() {
	local dir=$1
	printf '%s' "$AUTH_SECRET" >"$dir/auth"
	printf '%s' "$ADMIN_TOKEN" >"$dir/admin"
	"$crowd_bin" --scenario crowd --targets "$BASE" --auth-secret-file "$dir/auth" --admin-token-file "$dir/admin" \
		--create --items "$2" --item-prefix "e2e-crowd-$(rand 3)-" --stock 1000000 --per-user-limit 1 \
		--requests "$3" --arrival-window "$4" --duration $((${4%s} + 40))s --max-attempts 30 --backoff-max 2s \
		--timeout 10s --verify --progress 0 --out "$dir/report.json" >"$dir/loadgen.out" 2>&1 &
	CROWD=$!
}
crowd_check() {
	local dir=$1 rc=0 notok
	wait "$CROWD" || rc=$?
	tail -5 "$dir/loadgen.out" >&2
	[ -s "$dir/report.json" ] || die "$2: loadgen wrote no report (exit $rc)"
	notok=$(jq '[.purchases.by_outcome | to_entries[] | select(.key != "confirmed" and .key != "replayed") | .value] | add // 0' "$dir/report.json")
	log "$2 during a loadgen crowd: $(jq '.purchases.by_outcome.confirmed // 0' "$dir/report.json") purchases confirmed," \
		"$notok not, $(jq .retries "$dir/report.json") retries, verification exit $rc"
	[ "$notok" = 0 ] || die "$2: $notok purchases with a request_id did not end confirmed: $(jq -c .purchases.by_outcome "$dir/report.json")"
	[ "$rc" = 0 ] || die "$2: loadgen's verification failed (exit $rc)"
	rm -rf "$dir"
}

# The gateway service goes from 1 to 3 tasks and back to 1 mid-crowd.
crowd_dir=$(mktemp -d)
crowd_start "$crowd_dir" 1 2400 40s
gateways_alive() { # N: gateway members alive
	[ "$(admin "$BASE/v1/cluster/status" | jq '[.members[] | select(.state == "alive" and .role == "gateway")] | length')" = "$1" ]
}
sleep 6
log "scaling ${STACK}_gateway to 3 during the sale"
timeout 120 docker service scale --detach "${STACK}_gateway=3" >/dev/null
wait_for "$WAIT" "3 gateways alive" gateways_alive 3
sleep 8 # nginx re-resolves every 5 s: let it spread the shoppers
log "scaling ${STACK}_gateway back to 1"
timeout 120 docker service scale --detach "${STACK}_gateway=1" >/dev/null
wait_for "$WAIT" "1 gateway alive" gateways_alive 1
crowd_check "$crowd_dir" "gateway scale 1 -> 3 -> 1"

# rolling-restart.sh --image moves node1, node2, node3 (one at a time, each
# back and every shard led before the next) and then the gateways to a new
# image tag mid-crowd.
docker tag "flashstock/node:$TAG" "flashstock/node:$TAG-next"
NEXT_IMAGE="flashstock/node:$TAG-next"
crowd_dir=$(mktemp -d)
crowd_start "$crowd_dir" 4 6000 200s
sleep 5
log "rolling upgrade to $NEXT_IMAGE during the sale"
up_start=$SECONDS
FLASHSTOCK_ADMIN_TOKEN_FILE="$crowd_dir/admin" WAIT="$WAIT" \
	"$HERE/rolling-restart.sh" --stack "$STACK" --image "$NEXT_IMAGE" --url "$BASE" >&2 ||
	die "rolling-restart.sh failed"
log "rolling upgrade done in $((SECONDS - up_start))s; waiting for the crowd to finish"
crowd_check "$crowd_dir" "rolling upgrade"
for n in node1 node2 node3 gateway; do
	img=$(docker service inspect "${STACK}_$n" --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}')
	[[ "$img" == "$NEXT_IMAGE"* ]] || die "${STACK}_$n runs $img after the upgrade, want $NEXT_IMAGE"
done

# ------------------------------------------------------------- an alert
# Stop node3: Prometheus sees it down, FlashstockNodeDown fires after 30 s,
# and Alertmanager delivers it to the alert log. Then node3 comes back and
# must be a voter again.
log "stopping node3 until FlashstockNodeDown reaches the alert log"
timeout 120 docker service scale --detach "${STACK}_node3=0" >/dev/null
alert_logged() {
	timeout 20 docker service logs --raw "${STACK}_alert-log" 2>/dev/null |
		grep -a '"status":"firing"' | grep -aq '"alertname":"FlashstockNodeDown"'
}
wait_for 180 "FlashstockNodeDown fired and reached the alert log" alert_logged
timeout 120 docker service scale --detach "${STACK}_node3=1" >/dev/null
wait_for "$WAIT" "3 members alive after node3's return" members_alive 3
KILL_NODE=node3
node3_voter() {
	c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_node3" | head -n1)
	[ -n "$c" ] && caught_up
}
wait_for "$WAIT" "node3 is a Raft voter again" node3_voter

log "PASS: $SOLD units sold, no oversell, orders persisted, a leader killed and back, gateways scaled 1 -> 3 -> 1 and a rolling upgrade with no failed purchase, an alert delivered"
