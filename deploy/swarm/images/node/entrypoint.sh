#!/bin/busybox sh
# Entrypoint of the flashstock/node image (run by the static busybox, the
# only other program in the image).
#
# Why it exists: memberlist advertises the IP of --gossip-addr and needs an
# IP, not a name; 0.0.0.0 would be advertised as 0.0.0.0. In Swarm a task's
# overlay IP is only known once the task has started. So when
# FLASHSTOCK_AUTO_ADDR=1 and the gossip or actor address is not given in the
# environment, this script finds the container's own IP (the line for its
# hostname in /etc/hosts, else the first IPv4 address of
# FLASHSTOCK_IFACE, default eth0) and exports
#   SECKILL_GOSSIP_ADDR=<ip>:${FLASHSTOCK_GOSSIP_PORT:-7946}
#   SECKILL_ACTOR_ADDR=<ip>:${FLASHSTOCK_ACTOR_PORT:-8090}
# Flags on the command line still win over these (README: flags win over
# the environment), so do not pass --gossip-addr/--actor-addr with it.
# Subcommands (version, status, reconcile) pass straight through.
set -eu
bb=/bin/busybox

case "${1:-}" in
version | status | reconcile) exec /node "$@" ;;
esac

if [ "${FLASHSTOCK_AUTO_ADDR:-0}" = 1 ]; then
	ip=${FLASHSTOCK_ADVERTISE_IP:-}
	if [ -z "$ip" ]; then
		h=$($bb hostname)
		ip=$($bb awk -v h="$h" '$1 !~ /:/ && $1 !~ /^127\./ { for (i = 2; i <= NF; i++) if ($i == h) { print $1; exit } }' /etc/hosts)
	fi
	if [ -z "$ip" ]; then
		ip=$($bb ip -4 -o addr show dev "${FLASHSTOCK_IFACE:-eth0}" 2>/dev/null | $bb awk '{ split($4, a, "/"); print a[1]; exit }')
	fi
	if [ -z "$ip" ]; then
		echo "entrypoint: FLASHSTOCK_AUTO_ADDR=1 but no IPv4 address found for $($bb hostname) in /etc/hosts or on ${FLASHSTOCK_IFACE:-eth0}; set FLASHSTOCK_ADVERTISE_IP" >&2
		exit 2
	fi
	: "${SECKILL_GOSSIP_ADDR:=$ip:${FLASHSTOCK_GOSSIP_PORT:-7946}}"
	: "${SECKILL_ACTOR_ADDR:=$ip:${FLASHSTOCK_ACTOR_PORT:-8090}}"
	export SECKILL_GOSSIP_ADDR SECKILL_ACTOR_ADDR
	echo "entrypoint: gossip $SECKILL_GOSSIP_ADDR, actors $SECKILL_ACTOR_ADDR" >&2
fi
exec /node "$@"
