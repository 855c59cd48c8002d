#!/usr/bin/env bash
# build.sh builds the images of the Flashstock Swarm stack without any image
# registry:
#
#   flashstock/node:$TAG        FROM scratch: the static node binary (+ busybox-static)
#   flashstock/nginx:$TAG       Debian bookworm rootfs + nginx-light
#   flashstock/prometheus:$TAG  Debian bookworm rootfs + prometheus
#   flashstock/alertmanager:$TAG Debian bookworm rootfs + prometheus-alertmanager
#   flashstock/mariadb:$TAG     Debian bookworm rootfs + mariadb-server
#
# The Debian images are root filesystems made by debootstrap, extended with
# apt-get in a chroot, and loaded with `docker import`. Grafana is not in
# Debian main: bring your own image (see README.md, stack.grafana.yml).
#
# Usage: deploy/swarm/build.sh [--only node,nginx,prometheus,alertmanager,mariadb] [--tag TAG]
#                              [--version V] [--mirror URL] [--cache DIR] [--refresh]
#
#   --only LIST    build only these images (comma-separated; repeatable)
#   --tag TAG      image tag (default: $FLASHSTOCK_TAG or "dev")
#   --version V    version baked into the binary (default: git describe)
#   --mirror URL   Debian mirror (default: $DEBIAN_MIRROR or http://deb.debian.org/debian)
#   --security-mirror URL  Debian security mirror for the package installs
#                  (default: $DEBIAN_SECURITY_MIRROR or http://deb.debian.org/debian-security;
#                  "none" leaves it out)
#   --cache DIR    where rootfs tarballs and .debs are kept between runs
#                  (default: $FLASHSTOCK_CACHE or ~/.cache/flashstock-swarm)
#   --refresh      rebuild the cached root filesystems
#
# Every long step runs under `timeout`; the limits are the *_TIMEOUT
# variables below and can be raised from the environment.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

GO_BUILD_TIMEOUT=${GO_BUILD_TIMEOUT:-600}
DEBOOTSTRAP_TIMEOUT=${DEBOOTSTRAP_TIMEOUT:-1200}
APT_TIMEOUT=${APT_TIMEOUT:-1200}
DOCKER_TIMEOUT=${DOCKER_TIMEOUT:-600}

TAG=${FLASHSTOCK_TAG:-dev}
VERSION=${FLASHSTOCK_VERSION:-}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
CACHE=${FLASHSTOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flashstock-swarm}
REFRESH=0
ONLY=()

die() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "==> $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--only) [ $# -ge 2 ] || die "--only needs a list"; IFS=, read -r -a more <<<"$2"; ONLY+=("${more[@]}"); shift 2 ;;
	--only=*) IFS=, read -r -a more <<<"${1#*=}"; ONLY+=("${more[@]}"); shift ;;
	--tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG=$2; shift 2 ;;
	--version) [ $# -ge 2 ] || die "--version needs a value"; VERSION=$2; shift 2 ;;
	--mirror) [ $# -ge 2 ] || die "--mirror needs a URL"; MIRROR=$2; shift 2 ;;
	--security-mirror) [ $# -ge 2 ] || die "--security-mirror needs a URL"; SECURITY_MIRROR=$2; shift 2 ;;
	--cache) [ $# -ge 2 ] || die "--cache needs a directory"; CACHE=$2; shift 2 ;;
	--refresh) REFRESH=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
done
[ ${#ONLY[@]} -gt 0 ] || ONLY=(node nginx prometheus alertmanager mariadb)
for img in "${ONLY[@]}"; do
	case "$img" in node | nginx | prometheus | alertmanager | mariadb) ;; *) die "--only: unknown image $img (want node, nginx, prometheus, alertmanager, mariadb)" ;; esac
done
want() { local i; for i in "${ONLY[@]}"; do [ "$i" = "$1" ] && return 0; done; return 1; }

command -v docker >/dev/null || die "docker not found"
timeout 30 docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info)"
if [ -z "$VERSION" ]; then
	VERSION=$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo dev)
fi
mkdir -p "$CACHE"

# ---------------------------------------------------------------- node image

# busybox_static puts Debian's statically linked busybox in $1.
busybox_static() {
	local deb
	deb=$(ls "$CACHE"/busybox-static_*.deb 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ] || [ "$REFRESH" = 1 ]; then
		command -v apt-get >/dev/null || die "need apt-get to fetch busybox-static (or put busybox-static_*.deb in $CACHE)"
		log "fetching busybox-static from Debian"
		rm -f "$CACHE"/busybox-static_*.deb
		(cd "$CACHE" && timeout "$APT_TIMEOUT" apt-get download busybox-static) ||
			die "apt-get download busybox-static failed (run apt-get update, or put the .deb in $CACHE)"
		deb=$(ls "$CACHE"/busybox-static_*.deb | head -n1)
	fi
	local x
	x=$(mktemp -d)
	dpkg-deb -x "$deb" "$x" || { rm -rf "$x"; die "cannot unpack $deb"; }
	install -m 0755 "$x/bin/busybox" "$1"
	rm -rf "$x"
	file "$1" 2>/dev/null | grep -q 'statically linked' || [ ! -x "$(command -v file)" ] ||
		die "$1 is not statically linked"
}

build_node() {
	command -v go >/dev/null || die "go not found (the node binary is built on the host)"
	local ctx="$HERE/build/node"
	rm -rf "$ctx"
	mkdir -p "$ctx/data"
	log "go build ./cmd/node (version $VERSION)"
	(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=${GOARCH:-amd64} timeout "$GO_BUILD_TIMEOUT" \
		go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$ctx/node" ./cmd/node) ||
		die "go build failed"
	busybox_static "$ctx/busybox"
	install -m 0644 "$HERE/images/node/entrypoint.sh" "$ctx/entrypoint.sh"
	[ -r /etc/ssl/certs/ca-certificates.crt ] || die "no /etc/ssl/certs/ca-certificates.crt on the host (apt-get install ca-certificates)"
	install -m 0644 /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
	printf 'root:x:0:0:root:/:/bin/false\nflashstock:x:10001:10001:flashstock:/data:/bin/false\n' >"$ctx/passwd"
	printf 'root:x:0:\nflashstock:x:10001:\n' >"$ctx/group"
	log "docker build flashstock/node:$TAG"
	timeout "$DOCKER_TIMEOUT" docker build -q --build-arg VERSION="$VERSION" \
		-t "flashstock/node:$TAG" -f "$HERE/Dockerfile" "$ctx" >/dev/null || die "docker build flashstock/node failed"
	local got
	got=$(timeout 60 docker run --rm "flashstock/node:$TAG" version) || die "flashstock/node:$TAG does not run"
	log "flashstock/node:$TAG built (version $got)"
}

# ------------------------------------------------------------ Debian images

need_debian_tools() {
	[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root (run with sudo), or use --only node"
	if ! command -v debootstrap >/dev/null; then
		die "debootstrap not found: apt-get install -y debootstrap"
	fi
}

# base_rootfs makes (once) a minbase bookworm root filesystem tarball and
# names it in BASE_TAR.
BASE_TAR=
base_rootfs() {
	local tar="$CACHE/$SUITE-minbase.tar"
	BASE_TAR=$tar
	if [ -s "$tar" ] && [ "$REFRESH" = 0 ]; then
		return
	fi
	local dir
	dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
	mkdir -p "$CACHE/debs"
	log "debootstrap $SUITE (minbase) from $MIRROR; this takes a few minutes the first time"
	timeout "$DEBOOTSTRAP_TIMEOUT" debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
		--include=ca-certificates "$SUITE" "$dir" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
		rm -rf "$dir"
		die "debootstrap failed; see $CACHE/debootstrap.log"
	}
	tar -C "$dir" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
	rm -rf "$dir"
}

CHROOT=
cleanup_chroot() {
	if [ -n "$CHROOT" ]; then
		umount "$CHROOT/proc" 2>/dev/null || true
		rm -rf "$CHROOT"
		CHROOT=
	fi
}
trap cleanup_chroot EXIT

# pkg_rootfs NAME PACKAGES...: the base rootfs plus Debian packages, cached as
# $CACHE/$SUITE-NAME.tar, named in PKG_TAR. Package scripts run in a chroot
# with services blocked (policy-rc.d), so nothing starts on the host.
PKG_TAR=
pkg_rootfs() {
	local name=$1
	shift
	local tar="$CACHE/$SUITE-$name.tar"
	PKG_TAR=$tar
	if [ -s "$tar" ] && [ "$REFRESH" = 0 ]; then
		return
	fi
	base_rootfs
	CHROOT=$(mktemp -d "$CACHE/rootfs.XXXXXX")
	tar -C "$CHROOT" --numeric-owner -xf "$BASE_TAR" || { cleanup_chroot; die "cannot unpack $BASE_TAR"; }
	cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
	printf '#!/bin/sh\nexit 101\n' >"$CHROOT/usr/sbin/policy-rc.d"
	chmod 0755 "$CHROOT/usr/sbin/policy-rc.d"
	printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$CHROOT/etc/apt/sources.list"
	if [ "$SECURITY_MIRROR" != none ]; then
		printf 'deb %s %s-security main\n' "$SECURITY_MIRROR" "$SUITE" >>"$CHROOT/etc/apt/sources.list"
	fi
	mount -t proc proc "$CHROOT/proc"
	log "apt-get install $* (in a $SUITE chroot)"
	if ! timeout "$APT_TIMEOUT" chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
		sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $* && apt-get clean" \
		>"$CACHE/apt-$name.log" 2>&1; then
		cleanup_chroot
		die "apt-get install $* failed; see $CACHE/apt-$name.log"
	fi
	if declare -F "post_install_$name" >/dev/null; then
		"post_install_$name" || { cleanup_chroot; die "post-install step for $name failed"; }
	fi
	umount "$CHROOT/proc"
	rm -rf "$CHROOT"/var/lib/apt/lists/* "$CHROOT/usr/sbin/policy-rc.d" "$CHROOT"/var/log/*.log
	: >"$CHROOT/etc/resolv.conf"
	tar -C "$CHROOT" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
	cleanup_chroot
}

# import_image NAME TARBALL CHANGES...: adds images/NAME/ to the rootfs
# tarball and imports it as flashstock/NAME:$TAG with the Dockerfile-style
# CHANGES (ENTRYPOINT, CMD, USER, EXPOSE, VOLUME, ENV, WORKDIR).
import_image() {
	local name=$1 tar=$2
	shift 2
	local tmp
	tmp=$(mktemp "$CACHE/import.XXXXXX.tar")
	cp "$tar" "$tmp"
	# Only files: the directories already exist in the rootfs and keep their
	# modes. An image with no files of its own has no directory (git keeps
	# no empty directory): nothing to add.
	if [ -d "$HERE/images/$name" ]; then
		(cd "$HERE/images/$name" && find . -type f | LC_ALL=C sort) |
			tar -C "$HERE/images/$name" --owner=0 --group=0 --mode='go-w' -rf "$tmp" -T - ||
			die "cannot add images/$name to the rootfs"
	fi
	local args=()
	for c in "$@"; do args+=(--change "$c"); done
	log "docker import flashstock/$name:$TAG"
	timeout "$DOCKER_TIMEOUT" docker import "${args[@]}" \
		--message "flashstock $name, Debian $SUITE rootfs" "$tmp" "flashstock/$name:$TAG" >/dev/null || {
		rm -f "$tmp"
		die "docker import flashstock/$name failed"
	}
	rm -f "$tmp"
	log "flashstock/$name:$TAG built"
}

# post_install_NAME runs after the packages are installed, with the rootfs
# in $CHROOT and /proc mounted.
post_install_prometheus() {
	chroot "$CHROOT" sh -c 'mkdir -p /var/lib/prometheus/metrics2 && chown -R prometheus:prometheus /var/lib/prometheus'
}
post_install_alertmanager() {
	chroot "$CHROOT" sh -c 'mkdir -p /var/lib/prometheus/alertmanager && chown -R prometheus:prometheus /var/lib/prometheus'
}
post_install_mariadb() {
	# The package's postinst creates a database we do not want: the
	# entrypoint initialises an empty volume with our user and database.
	rm -rf "$CHROOT"/var/lib/mysql/*
	chroot "$CHROOT" sh -c 'mkdir -p /run/mysqld && chown mysql:mysql /var/lib/mysql /run/mysqld'
}

build_nginx() {
	pkg_rootfs nginx nginx-light
	import_image nginx "$PKG_TAR" \
		'ENTRYPOINT ["/usr/local/bin/nginx-entrypoint"]' \
		'EXPOSE 80/tcp'
}

build_prometheus() {
	pkg_rootfs prometheus prometheus
	import_image prometheus "$PKG_TAR" \
		'USER prometheus' \
		'WORKDIR /var/lib/prometheus' \
		'VOLUME ["/var/lib/prometheus/metrics2"]' \
		'EXPOSE 9090/tcp' \
		'ENTRYPOINT ["/usr/bin/prometheus"]' \
		'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2", "--storage.tsdb.retention.time=7d", "--web.console.templates=/etc/prometheus/consoles", "--web.console.libraries=/etc/prometheus/console_libraries"]'
}

build_alertmanager() {
	pkg_rootfs alertmanager prometheus-alertmanager
	import_image alertmanager "$PKG_TAR" \
		'USER prometheus' \
		'WORKDIR /var/lib/prometheus' \
		'VOLUME ["/var/lib/prometheus/alertmanager"]' \
		'EXPOSE 9093/tcp' \
		'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]' \
		'CMD ["--config.file=/etc/prometheus/alertmanager.yml", "--storage.path=/var/lib/prometheus/alertmanager", "--cluster.listen-address="]'
}

build_mariadb() {
	pkg_rootfs mariadb mariadb-server
	import_image mariadb "$PKG_TAR" \
		'ENTRYPOINT ["/usr/local/bin/mariadb-entrypoint"]' \
		'VOLUME ["/var/lib/mysql"]' \
		'EXPOSE 3306/tcp'
}

want node && build_node
if want nginx || want prometheus || want alertmanager || want mariadb; then
	need_debian_tools
	want nginx && build_nginx
	want prometheus && build_prometheus
	want alertmanager && build_alertmanager
	want mariadb && build_mariadb
fi
log "done: $(printf 'flashstock/%s:'"$TAG"' ' "${ONLY[@]}")"
