#!/usr/bin/env bash
# netns.sh builds and removes the private network the fault suite (faults/)
# runs a Flashstock cluster in: one network namespace per node, joined by a
# bridge, with one address in the root namespace for the test client and
# MariaDB.
#
#   scripts/netns.sh check              exit 0 if the tools the suite needs exist
#   scripts/netns.sh up [N]             create the network for N nodes (default 3)
#   scripts/netns.sh down               remove it (idempotent), killing what runs in it
#   scripts/netns.sh status             exit 0 if the network is up
#   scripts/netns.sh exec I CMD...      run CMD in node I's namespace
#
# Layout (prefix fs, subnet 10.77.0 by default):
#
#   root namespace      fs-root   10.77.0.1/24   test client, MariaDB (via the suite's forwarder)
#        |  veth
#   fs-hub namespace    br0 (bridge) -- fs-rhub, n0, n1, n2 (veth ends)
#        |  veth
#   fs-n0 namespace     eth0      10.77.0.11/24  node n0
#   fs-n1 namespace     eth0      10.77.0.12/24  node n1
#   fs-n2 namespace     eth0      10.77.0.13/24  node n2
#
# The bridge lives in a namespace of its own rather than in the root
# namespace: with br_netfilter loaded (Docker loads it), bridged frames go
# through the root namespace's iptables FORWARD chain, whose policy is often
# DROP. In fs-hub that chain is empty, so the suite never touches the host's
# firewall. Traffic only ever goes to the addresses created here; nothing is
# routed beyond the /24.
#
# FLASHSTOCK_NETNS_PREFIX (default fs) and FLASHSTOCK_NETNS_SUBNET (default
# 10.77.0, the first three octets of a /24) change the names and addresses.
# `up` refuses a subnet that the root namespace already routes. Needs root,
# iproute2 (ip, tc) and iptables or nftables. Every wait is bounded.
set -euo pipefail

readonly prefix=${FLASHSTOCK_NETNS_PREFIX:-fs}
readonly subnet=${FLASHSTOCK_NETNS_SUBNET:-10.77.0}
readonly hub="${prefix}-hub"
readonly root_if="${prefix}-root"
readonly hub_root_if="${prefix}-rhub"
readonly nodes_max=9
readonly kill_timeout_s=10

log() { printf 'netns.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: scripts/netns.sh check
       scripts/netns.sh up [N]
       scripts/netns.sh down
       scripts/netns.sh status
       scripts/netns.sh exec I CMD...
EOF
	exit 2
}

node_ns() { printf '%s-n%s\n' "$prefix" "$1"; }
node_ip() { printf '%s.%s\n' "$subnet" $((11 + $1)); }

cmd_check() {
	local missing=()
	command -v ip >/dev/null 2>&1 || missing+=("ip (apt-get install -y iproute2)")
	command -v tc >/dev/null 2>&1 || missing+=("tc (apt-get install -y iproute2)")
	if ! command -v nft >/dev/null 2>&1 && ! command -v iptables >/dev/null 2>&1; then
		missing+=("iptables or nft (apt-get install -y iptables, or nftables)")
	fi
	if ((${#missing[@]} > 0)); then
		log "missing tools: ${missing[*]}"
		return 1
	fi
	[[ $(id -u) -eq 0 ]] || die "must run as root (network namespaces, veth, iptables)"
}

# our_namespaces lists the namespaces this script created (by name).
our_namespaces() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-(hub|n[0-9])\$" || true
}

cmd_up() {
	local n=${1:-3} i ns
	[[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= nodes_max)) || die "bad node count: $n (1..$nodes_max)"
	[[ $subnet =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad FLASHSTOCK_NETNS_SUBNET: $subnet (want three octets, e.g. 10.77.0)"
	cmd_check
	if [[ -n $(our_namespaces) ]]; then
		log "namespaces of an earlier run exist; removing them first"
		cmd_down
	fi
	if ip -4 route show | grep -qE "^${subnet//./\\.}\.0/24 "; then
		die "the root namespace already routes ${subnet}.0/24; pick another FLASHSTOCK_NETNS_SUBNET"
	fi
	# On any failure below, remove what was created.
	trap 'log "set-up failed; removing it"; cmd_down' ERR

	ip netns add "$hub"
	ip -n "$hub" link set lo up
	ip -n "$hub" link add br0 type bridge
	ip -n "$hub" link set br0 up
	# Bridged frames must not go through iptables, even in the hub (belt and braces).
	ip netns exec "$hub" sh -c 'for f in /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/bridge/bridge-nf-call-ip6tables; do [ -w "$f" ] && echo 0 >"$f"; done; true'

	ip link add "$root_if" type veth peer name "$hub_root_if" netns "$hub"
	ip -n "$hub" link set "$hub_root_if" master br0 up
	ip addr add "${subnet}.1/24" dev "$root_if"
	ip link set "$root_if" up

	for ((i = 0; i < n; i++)); do
		ns=$(node_ns "$i")
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		ip link add "n$i" netns "$hub" type veth peer name eth0 netns "$ns"
		ip -n "$hub" link set "n$i" master br0 up
		ip -n "$ns" addr add "$(node_ip "$i")/24" dev eth0
		ip -n "$ns" link set eth0 up
	done
	trap - ERR
	log "up: ${subnet}.1 (root, $root_if), nodes $(for ((i = 0; i < n; i++)); do printf '%s=%s ' "$(node_ns "$i")" "$(node_ip "$i")"; done)"
}

cmd_down() {
	local ns pids deadline
	for ns in $(our_namespaces); do
		# Processes still running in the namespace were started in it by the
		# suite (or by `exec`): stop them by pid, bounded.
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		if [[ -n $pids ]]; then
			log "killing processes left in $ns: $(echo $pids)"
			# shellcheck disable=SC2086
			kill -CONT $pids 2>/dev/null || true
			# shellcheck disable=SC2086
			kill -KILL $pids 2>/dev/null || true
			deadline=$((SECONDS + kill_timeout_s))
			while [[ -n $(ip netns pids "$ns" 2>/dev/null || true) ]] && ((SECONDS < deadline)); do
				sleep 0.1
			done
		fi
		ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
	done
	# The root end goes with its peer; remove it if it is still there.
	if ip link show "$root_if" >/dev/null 2>&1; then
		ip link del "$root_if" 2>/dev/null || true
	fi
}

cmd_status() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$hub" || {
		log "down"
		return 1
	}
	ip link show "$root_if" >/dev/null 2>&1 || {
		log "hub exists but $root_if is missing"
		return 1
	}
	log "up: $(our_namespaces | tr '\n' ' ')"
}

cmd_exec() {
	[[ $# -ge 2 ]] || usage
	local i=$1
	shift
	[[ $i =~ ^[0-9]+$ ]] || die "bad node index: $i"
	exec ip netns exec "$(node_ns "$i")" "$@"
}

[[ $# -ge 1 ]] || usage
command=$1
shift
case $command in
check) cmd_check ;;
up) cmd_up "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
exec) cmd_exec "$@" ;;
*) usage ;;
esac
