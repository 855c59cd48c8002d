#!/usr/bin/env bash
# mariadb.sh starts and stops a throwaway MariaDB server for tests and
# benchmarks of the sharded order store (orders/mysql).
#
#   scripts/mariadb.sh start DIR PORT   initialise DIR (once), start the server on
#                                       127.0.0.1:PORT, create flashstock_0 and
#                                       flashstock_1, print the DSN env line
#   scripts/mariadb.sh stop DIR         stop the server started in DIR
#   scripts/mariadb.sh status DIR       exit 0 if the server in DIR answers
#
# Typical use:
#
#   eval "export $(scripts/mariadb.sh start /tmp/fs-mariadb 13306)"
#   go test -race ./orders/...
#   scripts/mariadb.sh stop /tmp/fs-mariadb
#
# Only the env line goes to stdout; progress and errors go to stderr. The
# server reads no option file (--no-defaults), listens on 127.0.0.1 only, keeps
# its socket, pid file, logs and data under DIR, and has a root user without a
# password for localhost and 127.0.0.1: never point it at a directory that
# holds data you care about, and never expose the port.
#
# The server keeps innodb_flush_log_at_trx_commit=1 and sync_binlog defaults:
# a commit is durable when it returns, as in production, so benchmark figures
# include the fsync. The buffer pool is small (128 MiB) to fit CI machines.
#
# Works on a fresh Debian 12 after `apt-get install -y mariadb-server
# mariadb-client`; falls back to the mysqld/mysql_install_db/mysql/mysqladmin
# names where the mariadb* ones are missing. Every wait is bounded.
set -euo pipefail

readonly start_timeout_s=60
readonly stop_timeout_s=30
readonly databases=(flashstock_0 flashstock_1)

log() { printf 'mariadb.sh: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: scripts/mariadb.sh start DIR PORT
       scripts/mariadb.sh stop DIR
       scripts/mariadb.sh status DIR
EOF
	exit 2
}

# find_bin NAME... prints the path of the first NAME found on PATH or in the
# sbin directories (mariadbd lives in /usr/sbin, often not on a user's PATH).
find_bin() {
	local name dir
	for name in "$@"; do
		if command -v "$name" >/dev/null 2>&1; then
			command -v "$name"
			return 0
		fi
		for dir in /usr/sbin /usr/local/sbin /sbin; do
			if [[ -x "$dir/$name" ]]; then
				printf '%s\n' "$dir/$name"
				return 0
			fi
		done
	done
	return 1
}

resolve_bins() {
	server=$(find_bin mariadbd mysqld) || die "no mariadbd or mysqld found; apt-get install -y mariadb-server"
	installdb=$(find_bin mariadb-install-db mysql_install_db) || die "no mariadb-install-db or mysql_install_db found; apt-get install -y mariadb-server"
	client=$(find_bin mariadb mysql) || die "no mariadb or mysql client found; apt-get install -y mariadb-client"
	admin=$(find_bin mariadb-admin mysqladmin) || die "no mariadb-admin or mysqladmin found; apt-get install -y mariadb-client"
}

# Root may only run the server as root when told so explicitly.
user_args=()
if [[ $(id -u) -eq 0 ]]; then
	user_args=(--user=root)
fi

# server_pid DIR prints the pid of the server started in DIR if it is alive.
server_pid() {
	local pidfile="$1/mariadb.pid" pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# A stale pid file may name a pid the system has since reused.
	if [[ -r /proc/$pid/cmdline ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--pid-file=$1/mariadb.pid"; then
		return 1
	fi
	printf '%s\n' "$pid"
}

# answers DIR succeeds if the server in DIR accepts a root connection.
answers() {
	"$admin" --no-defaults --socket="$1/mariadb.sock" --user=root \
		--connect-timeout=2 ping >/dev/null 2>&1
}

sql() {
	local dir=$1
	shift
	"$client" --no-defaults --socket="$dir/mariadb.sock" --user=root \
		--connect-timeout=5 --batch --skip-column-names -e "$*"
}

env_line() {
	local port=$1 dsns=() db
	for db in "${databases[@]}"; do
		dsns+=("root@tcp(127.0.0.1:${port})/${db}")
	done
	local IFS=,
	printf 'FLASHSTOCK_TEST_MYSQL_DSNS=%s\n' "${dsns[*]}"
}

cmd_start() {
	[[ $# -eq 2 ]] || usage
	local dir=$1 port=$2 started=
	[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "bad port: $port"
	resolve_bins
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# A Unix socket path is limited to 107 bytes.
	((${#dir} + 14 < 108)) || die "directory path too long for a Unix socket: $dir"
	lock_dir "$dir"

	if server_pid "$dir" >/dev/null; then
		local running_port
		running_port=$(cat "$dir/port" 2>/dev/null || true)
		if [[ -n $running_port && $running_port != "$port" ]]; then
			die "a server is already running in $dir on port $running_port, not $port; stop it first"
		fi
		log "already running in $dir (pid $(server_pid "$dir"))"
	else
		if [[ ! -d $dir/data/mysql ]]; then
			log "initialising $dir/data"
			rm -rf "$dir/data"
			mkdir -p "$dir/data" "$dir/tmp"
			"$installdb" --no-defaults "${user_args[@]}" \
				--datadir="$dir/data" \
				--auth-root-authentication-method=normal \
				--skip-test-db --skip-name-resolve \
				>"$dir/install.log" 2>&1 ||
				die "$(basename "$installdb") failed; see $dir/install.log"
		fi
		mkdir -p "$dir/tmp"
		rm -f "$dir/mariadb.sock" "$dir/mariadb.pid"
		log "starting $(basename "$server") on 127.0.0.1:$port"
		# setsid detaches the server from this script's session so it outlives
		# the shell that started it; nohup keeps it alive if that shell hangs up.
		setsid nohup "$server" --no-defaults "${user_args[@]}" \
			--datadir="$dir/data" \
			--tmpdir="$dir/tmp" \
			--socket="$dir/mariadb.sock" \
			--pid-file="$dir/mariadb.pid" \
			--log-error="$dir/error.log" \
			--port="$port" \
			--bind-address=127.0.0.1 \
			--skip-name-resolve \
			--character-set-server=utf8mb4 \
			--collation-server=utf8mb4_general_ci \
			--max-connections=500 \
			--max-allowed-packet=64M \
			--innodb-buffer-pool-size=128M \
			--innodb-log-file-size=256M \
			--innodb-flush-log-at-trx-commit=1 \
			--innodb-lock-wait-timeout=20 \
			--performance-schema=OFF \
			</dev/null >>"$dir/mariadbd.out" 2>&1 9>&- &
		started=$!
		printf '%s\n' "$port" >"$dir/port"
	fi

	# Wait for the server, ours or one an earlier call is still starting.
	local deadline=$((SECONDS + start_timeout_s))
	until answers "$dir"; do
		if ((SECONDS >= deadline)); then
			tail -n 20 "$dir/error.log" >&2 2>/dev/null || true
			die "server in $dir did not answer within ${start_timeout_s}s; see $dir/error.log"
		fi
		if ! kill -0 "$started" 2>/dev/null && ! server_pid "$dir" >/dev/null; then
			tail -n 20 "$dir/error.log" >&2 2>/dev/null || true
			die "server in $dir exited during start-up; see $dir/error.log"
		fi
		sleep 0.2
	done

	# Idempotent set-up: TCP clients connect as root@127.0.0.1 (name
	# resolution is off, so they never match root@localhost).
	local stmts="CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" db
	for db in "${databases[@]}"; do
		stmts+="
CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4;"
	done
	sql "$dir" "$stmts" || die "setting up users and databases in $dir"
	env_line "$port"
}

# lock_dir serialises start and stop calls on DIR (held until the script
# exits), so two concurrent starts cannot launch two servers on one datadir.
lock_dir() {
	exec 9>"$1/.lock"
	flock -w $((start_timeout_s + stop_timeout_s)) 9 || die "another mariadb.sh call holds $1/.lock"
}

# absdir prints DIR as an absolute path (the server was started with one),
# or DIR unchanged if it does not exist.
absdir() {
	(cd "$1" 2>/dev/null && pwd) || printf '%s\n' "$1"
}

cmd_stop() {
	[[ $# -eq 1 ]] || usage
	local dir pid
	dir=$(absdir "$1")
	[[ -d $dir ]] && lock_dir "$dir"
	if ! pid=$(server_pid "$dir"); then
		log "no server running in $dir"
		return 0
	fi
	log "stopping server in $dir (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + stop_timeout_s))
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "server did not stop within ${stop_timeout_s}s; killing pid $pid"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	# Reap a killed server: wait until the pid is gone, bounded.
	deadline=$((SECONDS + 5))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
		sleep 0.1
	done
	rm -f "$dir/mariadb.pid" "$dir/mariadb.sock" "$dir/port"
	log "stopped"
}

cmd_status() {
	[[ $# -eq 1 ]] || usage
	resolve_bins
	local dir
	dir=$(absdir "$1")
	if server_pid "$dir" >/dev/null && answers "$dir"; then
		log "running in $dir (pid $(server_pid "$dir"), port $(cat "$dir/port" 2>/dev/null))"
		return 0
	fi
	log "not running in $dir"
	return 1
}

[[ $# -ge 1 ]] || usage
command=$1
shift
case $command in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
*) usage ;;
esac
