#!/usr/bin/env bash
# secrets.sh makes the cluster's keys with the node binary and stores them
# as Docker secrets (docs/security.md):
#
#   PREFIXtls_ca            the cluster CA certificate (every node's --tls-ca)
#   PREFIXnodeN_tls_cert    node N's certificate: CN/DNS nodeN, DNS tasks.nodeN
#                           (and PREFIXgateway_tls_cert, shared by every gateway task)
#   PREFIXnodeN_tls_key     its key
#   PREFIXgossip_key        the gossip encryption key (base64, one per line)
#
# Usage: deploy/swarm/secrets.sh [--prefix P] [--nodes "node1 node2 node3"]
#                                [--ca-dir DIR] [--node-bin PATH] [--out DIR]
#
#   --prefix P    secret name prefix (default: $FLASHSTOCK_SECRET_PREFIX or flashstock_)
#   --nodes LIST  node service names (default: node1 node2 node3 gateway)
#   --ca-dir DIR  where the CA lives; made there (ca.crt, ca.key 0600) when it
#                 does not exist yet. Keep it off the Docker hosts' disks you do
#                 not trust: it signs members. (default: ~/.flashstock/ca)
#   --node-bin P  the node binary (default: deploy/swarm/build/node/node as
#                 build.sh stages it, else `go build` into a temporary dir)
#   --out DIR     only write the files into DIR (0700); create no secret
#
# Node keys and the gossip key only exist in a temporary directory (0700,
# removed on exit) unless --out. Existing secrets are not replaced: Docker
# secrets are immutable; to roll a key, create new secrets under new names
# and update the services (docs/security.md, "Docker Swarm").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PREFIX=${FLASHSTOCK_SECRET_PREFIX:-flashstock_}
NODES="node1 node2 node3 gateway"
CA_DIR=${FLASHSTOCK_CA_DIR:-$HOME/.flashstock/ca}
NODE_BIN=
OUT=

die() { echo "secrets.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || die "--prefix needs a value"; PREFIX=$2; shift 2 ;;
	--nodes) [ $# -ge 2 ] || die "--nodes needs a list"; NODES=$2; shift 2 ;;
	--ca-dir) [ $# -ge 2 ] || die "--ca-dir needs a directory"; CA_DIR=$2; shift 2 ;;
	--node-bin) [ $# -ge 2 ] || die "--node-bin needs a path"; NODE_BIN=$2; shift 2 ;;
	--out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
done

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$NODE_BIN" ]; then
	if [ -x "$HERE/build/node/node" ]; then
		NODE_BIN=$HERE/build/node/node
	else
		command -v go >/dev/null || die "no node binary: run build.sh --only node, or give --node-bin"
		(cd "$ROOT" && timeout 600 go build -o "$work/node" ./cmd/node) || die "go build ./cmd/node failed"
		NODE_BIN=$work/node
	fi
fi

if [ ! -f "$CA_DIR/ca.crt" ]; then
	"$NODE_BIN" tls ca --out "$CA_DIR" >&2
fi
[ -f "$CA_DIR/ca.key" ] || die "$CA_DIR/ca.key is missing: cannot issue node certificates"

dir=${OUT:-$work/out}
mkdir -p "$dir"
cp "$CA_DIR/ca.crt" "$dir/tls_ca"
for n in $NODES; do
	"$NODE_BIN" tls cert --ca "$CA_DIR" --name "$n" --host "$n,tasks.$n" --out "$work/certs" --force >/dev/null
	cp "$work/certs/$n.crt" "$dir/${n}_tls_cert"
	cp "$work/certs/$n.key" "$dir/${n}_tls_key"
done
"$NODE_BIN" gossip-key --out "$dir/gossip_key"

if [ -n "$OUT" ]; then
	echo "secrets.sh: files in $OUT (CA in $CA_DIR); no Docker secret created" >&2
	exit 0
fi
command -v docker >/dev/null || die "docker not found (use --out DIR to only write the files)"
for f in "$dir"/*; do
	name=$PREFIX$(basename "$f")
	if docker secret inspect "$name" >/dev/null 2>&1; then
		echo "secrets.sh: $name exists; kept" >&2
		continue
	fi
	docker secret create "$name" "$f" >/dev/null
	echo "secrets.sh: created $name" >&2
done
