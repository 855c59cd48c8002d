#!/usr/bin/env bash
# rolling-restart.sh: restarts (or updates) the Flashstock node services one
# at a time, waiting after each for the cluster to be whole again.
#
#   deploy/swarm/rolling-restart.sh [--stack NAME] [--image flashstock/node:TAG] [--url http://host:port]
#
# For each of node1, node2, node3: `docker service update` (--force, or
# --image) with the service's stop-first policy: SIGTERM drains the node
# (in-flight purchases answered, confirmed orders flushed), then the new task
# starts on the same volume. Before moving on it waits, through nginx at
# --url, until 3 core members are alive and every shard has a leader
# (bounded by WAIT seconds, default 300). Then the gateway service, which
# rolls one task at a time starting the new before stopping the old. Core
# nodes go first: a gateway of a new version may send what an older core
# node does not read. The admin token is read from $FLASHSTOCK_ADMIN_TOKEN
# or the file $FLASHSTOCK_ADMIN_TOKEN_FILE.
set -euo pipefail
STACK=flashstock
IMAGE=
URL=${FLASHSTOCK_URL:-http://127.0.0.1:80}
WAIT=${WAIT:-300}
while [ $# -gt 0 ]; do
	case "$1" in
	--stack) STACK=$2; shift 2 ;;
	--image) IMAGE=$2; shift 2 ;;
	--url) URL=$2; shift 2 ;;
	*) echo "rolling-restart.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
TOKEN=${FLASHSTOCK_ADMIN_TOKEN:-}
if [ -z "$TOKEN" ] && [ -n "${FLASHSTOCK_ADMIN_TOKEN_FILE:-}" ]; then TOKEN=$(tr -d '\r\n' <"$FLASHSTOCK_ADMIN_TOKEN_FILE"); fi
[ -n "$TOKEN" ] || { echo "rolling-restart.sh: set FLASHSTOCK_ADMIN_TOKEN or FLASHSTOCK_ADMIN_TOKEN_FILE" >&2; exit 2; }
for c in docker curl jq timeout; do command -v "$c" >/dev/null || { echo "rolling-restart.sh: $c not found" >&2; exit 2; }; done

whole() {
	curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" "$URL/v1/cluster/status" |
		jq -e '([.members[] | select(.state == "alive" and (.raft // "") != "")] | length) >= 3 and (.shards | length > 0 and all(.[]; .leader != ""))' >/dev/null
}
wait_whole() {
	local start=$SECONDS
	until whole; do
		if [ $((SECONDS - start)) -ge "$WAIT" ]; then
			echo "rolling-restart.sh: cluster not whole after ${WAIT}s; stopping here (check /v1/cluster/status)" >&2
			exit 1
		fi
		sleep 3
	done
}

wait_whole
for n in node1 node2 node3; do
	svc="${STACK}_$n"
	echo "==> $svc"
	args=(--detach=false --quiet)
	if [ -n "$IMAGE" ]; then args+=(--image "$IMAGE"); else args+=(--force); fi
	timeout $((WAIT + 120)) docker service update "${args[@]}" "$svc" >/dev/null
	wait_whole
	echo "    $n is back; 3 core members alive, every shard led"
done
if docker service inspect "${STACK}_gateway" >/dev/null 2>&1; then
	echo "==> ${STACK}_gateway"
	args=(--detach=false --quiet)
	if [ -n "$IMAGE" ]; then args+=(--image "$IMAGE"); else args+=(--force); fi
	timeout $((WAIT + 120)) docker service update "${args[@]}" "${STACK}_gateway" >/dev/null
	wait_whole
fi
echo "==> done"
