#!/usr/bin/env bash
# locust-smoke.sh: the Locust shoppers (deploy/locust/locustfile.py) against
# one real node, as CI runs them.
#
#   1. go build the node into .tmp/locust-smoke/
#   2. start ONE node on a temp data dir, on loopback (random free ports),
#      with a shopper JWT secret given through a file (SECKILL_AUTH_SECRET_FILE,
#      mode 0600); wait for /readyz; read the admin token from the data dir
#   3. locust --headless -u 50 -r 25 -t 15s: the locustfile creates three
#      items (one with 20 units, which sells out), buys, reads orders, and
#      checks the books at the end
#   4. fail if Locust counts a failure, an invariant breaks, or fewer than
#      LOCUST_SMOKE_MIN_CONFIRMED (100) units were confirmed
#
# Env: LOCUST_SMOKE_USERS (50), LOCUST_SMOKE_RATE (25), LOCUST_SMOKE_TIME (15s),
# LOCUST_SMOKE_MIN_CONFIRMED (100), LOCUST_SMOKE_KEEP=1 (keep the temp dir:
# node log, Locust log, summary). Needs Go and Debian's python3-locust
# (apt-get install -y python3-locust). Every wait is bounded; the node is
# stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

users=${LOCUST_SMOKE_USERS:-50}
rate=${LOCUST_SMOKE_RATE:-25}
runtime=${LOCUST_SMOKE_TIME:-15s}
min_confirmed=${LOCUST_SMOKE_MIN_CONFIRMED:-100}

log() { printf '%s locust-smoke: %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

# Locust: the `locust` command, else a Python that imports it (on a machine
# with pyenv, `python3` may not be Debian's).
locust_cmd=()
if command -v locust >/dev/null 2>&1 && timeout 30 locust --version >/dev/null 2>&1; then
	locust_cmd=(locust)
else
	for py in python3 /usr/bin/python3; do
		if timeout 30 "$py" -c 'import locust' >/dev/null 2>&1; then
			locust_cmd=("$py" -m locust)
			break
		fi
	done
fi
[ ${#locust_cmd[@]} -gt 0 ] || die "Locust not found (apt-get install -y python3-locust)"
# The Python that runs Locust also does this script's HTTP and JSON (no curl or jq needed).
py=/usr/bin/python3
[ "${locust_cmd[0]}" = locust ] || py=${locust_cmd[0]}
[ -x "$py" ] || py=python3

mkdir -p .tmp
tmp=$(mktemp -d "$PWD/.tmp/locust-smoke.XXXXXX")
node_pid=""
cleanup() {
	local rc=$?
	set +e
	if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
		kill "$node_pid" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$node_pid" 2>/dev/null
		wait "$node_pid" 2>/dev/null
	fi
	if [ "$rc" != 0 ] && [ -f "$tmp/node.log" ]; then
		log "--- node log (last 20 lines)"
		tail -n 20 "$tmp/node.log" >&2
	fi
	if [ "${LOCUST_SMOKE_KEEP:-0}" = 1 ]; then
		log "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the node"
timeout 600 go build -o "$tmp/node" ./cmd/node || die "go build ./cmd/node failed"

# Four free loopback ports: HTTP, Raft, gossip, actors.
read -r p_http p_raft p_gossip p_actor < <("$py" - <<'EOF'
import socket
socks = []
for _ in range(4):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(*(s.getsockname()[1] for s in socks))
EOF
)
base=http://127.0.0.1:$p_http

# The shopper JWT secret, in a file only this user can read.
(
	umask 077
	"$py" -c 'import secrets; print(secrets.token_hex(32))' >"$tmp/auth-secret"
)
chmod 600 "$tmp/auth-secret"

log "starting a node on $base"
SECKILL_AUTH_SECRET_FILE=$tmp/auth-secret "$tmp/node" --name smoke --data-dir "$tmp/data" \
	--http-addr "127.0.0.1:$p_http" --raft-addr "127.0.0.1:$p_raft" --gossip-addr "127.0.0.1:$p_gossip" \
	--actor-addr "127.0.0.1:$p_actor" --gossip-profile local --log-level warn >"$tmp/node.log" 2>&1 &
node_pid=$!

# wait_http URL SECONDS: until URL answers 200.
wait_http() {
	"$py" - "$1" "$2" <<'EOF'
import sys, time, urllib.request
url, limit = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
}
wait_http "$base/readyz" 60 || die "the node was not ready within 60 s"
kill -0 "$node_pid" 2>/dev/null || die "the node exited"
for _ in $(seq 1 50); do [ -s "$tmp/data/admin-token" ] && break; sleep 0.1; done
[ -s "$tmp/data/admin-token" ] || die "no admin token in $tmp/data"
log "node ready"

log "locust: ${users} users, ${rate}/s, ${runtime}"
rc=0
FLASHSTOCK_AUTH_SECRET_FILE=$tmp/auth-secret FLASHSTOCK_ADMIN_TOKEN_FILE=$tmp/data/admin-token \
	FLASHSTOCK_CREATE_ITEMS=1 FLASHSTOCK_SUMMARY_FILE=$tmp/summary.json \
	timeout 180 "${locust_cmd[@]}" -f deploy/locust/locustfile.py --headless -u "$users" -r "$rate" -t "$runtime" \
	--host "$base" --only-summary --stop-timeout 0 >"$tmp/locust.log" 2>&1 || rc=$?
# The summary table and the locustfile's own lines (item books, verdict).
grep -v -e '^ *$' "$tmp/locust.log" | grep -v -e 'Starting Locust' -e 'Ramping to' -e 'All users spawned' >&2 || true
kill -0 "$node_pid" 2>/dev/null || die "the node died during the run"
[ -f "$tmp/summary.json" ] || die "locust exited with $rc and wrote no summary"

"$py" - "$tmp/summary.json" "$min_confirmed" "$rc" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
min_confirmed, rc = int(sys.argv[2]), int(sys.argv[3])
print(
    f"locust-smoke: {s['requests']} requests in {s['seconds']} s, {s['failures']} failures, "
    f"{s['confirmed_units']} units confirmed, {s['unknown_units']} unknown, "
    f"{s['shoppers_checked']} shoppers' order lists checked, {s['problem_count']} broken invariant(s)",
    file=sys.stderr,
)
for it in s["items"]:
    print(
        f"locust-smoke:   item {it['id']}: stock {it['stock']}, sold {it['sold']}, remaining {it['remaining']}, "
        f"confirmed {it['confirmed']}, {it['status']}",
        file=sys.stderr,
    )
bad = []
if rc != 0:
    bad.append(f"locust exited with {rc}")
if not s["ok"]:
    bad.append("the locustfile's verdict is not ok")
if s["failures"]:
    bad.append(f"{s['failures']} failed requests")
for p in s["problems"]:
    bad.append(p)
if s["confirmed_units"] < min_confirmed:
    bad.append(f"only {s['confirmed_units']} units confirmed (want at least {min_confirmed})")
if not s["items"] or not any(it["status"] == "sold_out" for it in s["items"]):
    bad.append("no item sold out (the hot item has 20 units)")
if not s["outcomes"].get("purchase: 409 sold_out"):
    bad.append("no shopper was told sold_out")
for b in bad:
    print(f"locust-smoke: FAIL: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
log "PASS"
