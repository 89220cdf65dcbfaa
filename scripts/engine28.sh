#!/usr/bin/env bash
# The second Docker engine of the test suite: Debian sid's docker.io 28.5.2
# with containerd 2.1.9, unpacked into a cache folder and run beside (never
# at the same time as) the host's Docker (Debian 12: docker.io 20.10).
#
# scripts/test.sh sources it (after lib.sh). Run directly, as root, it
# manages that engine by hand:
#   scripts/engine28.sh fetch    download and unpack it (or reuse the cache)
#   scripts/engine28.sh start    fetch, then start containerd and dockerd
#                                (no other Docker daemon may be running)
#   scripts/engine28.sh stop     stop them (also after a killed test run)
#   scripts/engine28.sh status   whether they run, and where their logs are
#
# How it runs: apt-get download through a source list of its own (a temporary
# folder; the system's apt sources, lists and cache are not touched), then
# dpkg-deb -x into ZW_DOCKER28_DIR, reused while it holds the wanted
# versions. containerd runs with its own config, root, state and socket (CRI
# and NRI off); dockerd runs with its own data-root, exec-root and pidfile,
# that containerd, and the folder's docker-proxy and docker-init, and listens
# on the default /var/run/docker.sock, so that the tests find it as they find
# any local daemon. The host's runc (Debian 12's) runs the containers: sid's
# needs a newer glibc. Both engines own Docker's iptables chains, hence one
# at a time; zw_docker_firewall_reset clears one engine's chains before the
# other starts.
#
# Environment:
#   ZW_DOCKER28_DIR      cache folder (default /var/cache/zonewarden/docker28)
#   ZW_DOCKER28_SOURCE   the apt source line (default Debian sid; for a
#                        pinned snapshot use e.g. "deb [signed-by=...]
#                        http://snapshot.debian.org/archive/debian/20260101T000000Z sid main")
#   ZW_DOCKER28_VERSION, ZW_CONTAINERD28_VERSION
#                        the package versions wanted, as shell patterns
#                        (default 28.5.2+* and 2.1.9+*)
#   ZW_DOCKER28_LOG, ZW_CONTAINERD28_LOG
#                        daemon logs (default /var/log/zonewarden-dockerd28.log
#                        and /var/log/zonewarden-containerd28.log)
set -euo pipefail

if [ -z "${ZW_REPO_ROOT:-}" ]; then
	# shellcheck source=scripts/lib.sh
	source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
fi

ZW_DOCKER28_DIR="${ZW_DOCKER28_DIR:-/var/cache/zonewarden/docker28}"
ZW_DOCKER28_SOURCE="${ZW_DOCKER28_SOURCE:-deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main}"
ZW_DOCKER28_VERSION="${ZW_DOCKER28_VERSION:-28.5.2+*}"
ZW_CONTAINERD28_VERSION="${ZW_CONTAINERD28_VERSION:-2.1.9+*}"
ZW_DOCKER28_LOG="${ZW_DOCKER28_LOG:-/var/log/zonewarden-dockerd28.log}"
ZW_CONTAINERD28_LOG="${ZW_CONTAINERD28_LOG:-/var/log/zonewarden-containerd28.log}"
ZW_DOCKER28_DATA=/var/lib/docker28
ZW_DOCKER28_EXEC=/var/run/docker28
ZW_DOCKER28_PIDFILE=/var/run/docker28.pid
ZW_CONTAINERD28_ROOT=/var/lib/containerd28
ZW_CONTAINERD28_STATE=/run/containerd28
ZW_CONTAINERD28_SOCK=/run/containerd28/containerd.sock
ZW_CONTAINERD28_PIDFILE=/run/containerd28/containerd.pid
# The stamp records what the cache folder holds: "package version" lines.
ZW_DOCKER28_STAMP="$ZW_DOCKER28_DIR/.zonewarden-packages"

# zw_docker28_path: PATH with the unpacked binaries first.
zw_docker28_path() {
	printf '%s' "$ZW_DOCKER28_DIR/usr/sbin:$ZW_DOCKER28_DIR/usr/bin:$PATH"
}

# zw_docker28_cached: whether the cache folder holds the wanted versions,
# complete and runnable.
zw_docker28_cached() {
	[ -s "$ZW_DOCKER28_STAMP" ] || return 1
	local d c
	d="$(awk '$1 == "docker.io" { print $2 }' "$ZW_DOCKER28_STAMP")"
	c="$(awk '$1 == "containerd" { print $2 }' "$ZW_DOCKER28_STAMP")"
	# shellcheck disable=SC2053 # the versions wanted are patterns
	[[ -n "$d" && $d == $ZW_DOCKER28_VERSION && -n "$c" && $c == $ZW_CONTAINERD28_VERSION ]] || return 1
	local f
	for f in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/docker-init usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr; do
		[ -x "$ZW_DOCKER28_DIR/$f" ] || return 1
	done
	"$ZW_DOCKER28_DIR/usr/sbin/dockerd" --version >/dev/null 2>&1
}

# zw_docker28_fetch: makes ZW_DOCKER28_DIR hold docker.io and containerd of
# the wanted versions (and tini-static, which docker-init links to),
# downloading them from ZW_DOCKER28_SOURCE unless the cache has them.
zw_docker28_fetch() {
	if zw_docker28_cached; then
		zw_log "Docker 28 engine: using $ZW_DOCKER28_DIR ($(tr '\n' ' ' <"$ZW_DOCKER28_STAMP"| sed 's/ $//'))"
		return 0
	fi
	local p
	for p in apt-get apt-cache dpkg-deb; do
		command -v "$p" >/dev/null 2>&1 || zw_die "Docker 28 engine: $p is missing; the engine is fetched with apt (Debian/Ubuntu), or run only the host's engine: ZW_ENGINES=20 $ZW_PROG"
	done
	case "$ZW_DOCKER28_SOURCE" in
	*signed-by=/usr/share/keyrings/debian-archive-keyring.gpg*)
		[ -s /usr/share/keyrings/debian-archive-keyring.gpg ] ||
			zw_die "Docker 28 engine: Debian's archive keyring is missing: apt-get install -y debian-archive-keyring" ;;
	esac
	zw_docker28_download || exit 1
	zw_docker28_cached || zw_die "Docker 28 engine: $ZW_DOCKER28_DIR is incomplete or its dockerd does not run (glibc too old?): try $ZW_DOCKER28_DIR/usr/sbin/dockerd --version"
	zw_log "Docker 28 engine: unpacked $(tr '\n' ' ' <"$ZW_DOCKER28_STAMP" | sed 's/ $//') into $ZW_DOCKER28_DIR"
}

# zw_docker28_download: zw_docker28_fetch's download and unpacking, in a
# subshell that removes its temporary folder however it ends.
zw_docker28_download() (
	tmp="$(mktemp -d /tmp/zonewarden-docker28.XXXXXX)"
	# shellcheck disable=SC2064 # expand tmp now
	trap "rm -rf '$tmp'" EXIT
	mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/debs"
	printf '%s\n' "$ZW_DOCKER28_SOURCE" >"$tmp/sources.list"
	# Everything apt reads or writes is in tmp, except its configuration and
	# keyrings; no installed-package state is consulted (status /dev/null).
	apt=(
		-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
		-o Dir::State::status=/dev/null -o Dir::Etc::preferences=/dev/null
		-o Dir::Etc::preferencesparts=- -o APT::Get::List-Cleanup=0
		-o APT::Sandbox::User=root -o Acquire::Languages=none
	)
	case "$ZW_DOCKER28_SOURCE" in
	*snapshot.debian.org*) apt+=(-o Acquire::Check-Valid-Until=false) ;;
	esac
	zw_log "Docker 28 engine: fetching docker.io $ZW_DOCKER28_VERSION and containerd $ZW_CONTAINERD28_VERSION from: $ZW_DOCKER28_SOURCE"
	apt-get "${apt[@]}" update -qq </dev/null >"$tmp/update.log" 2>&1 || {
		cat "$tmp/update.log" >&2
		zw_die "Docker 28 engine: apt-get update of that source failed (output above); check the network, or set ZW_DOCKER28_SOURCE to a reachable mirror, or run only the host's engine: ZW_ENGINES=20 $ZW_PROG"
	}
	# pick PACKAGE PATTERN: the newest version of PACKAGE matching PATTERN.
	pick() {
		local v
		while read -r v; do
			# shellcheck disable=SC2053
			if [[ $v == $2 ]]; then
				printf '%s' "$v"
				return 0
			fi
		done < <(apt-cache "${apt[@]}" madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')
		return 1
	}
	dv="$(pick docker.io "$ZW_DOCKER28_VERSION")" ||
		zw_die "Docker 28 engine: the source no longer carries docker.io $ZW_DOCKER28_VERSION (it has: $(apt-cache "${apt[@]}" madison docker.io 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); printf "%s ", $2 }')).
  Point ZW_DOCKER28_SOURCE at a snapshot that has it, e.g.
    ZW_DOCKER28_SOURCE='deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://snapshot.debian.org/archive/debian/20260101T000000Z sid main'
  or, to move to the new version, set ZW_DOCKER28_VERSION (and update scripts/engine28.sh)."
	cv="$(pick containerd "$ZW_CONTAINERD28_VERSION")" ||
		zw_die "Docker 28 engine: the source no longer carries containerd $ZW_CONTAINERD28_VERSION (it has: $(apt-cache "${apt[@]}" madison containerd 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); printf "%s ", $2 }')); point ZW_DOCKER28_SOURCE at a snapshot that has it, or set ZW_CONTAINERD28_VERSION."
	tv="$(pick tini-static '*')" || zw_die "Docker 28 engine: the source has no tini-static (docker-init)"
	(cd "$tmp/debs" && apt-get "${apt[@]}" download -qq "docker.io=$dv" "containerd=$cv" "tini-static=$tv" </dev/null) >"$tmp/download.log" 2>&1 || {
		cat "$tmp/download.log" >&2
		zw_die "Docker 28 engine: apt-get download docker.io=$dv containerd=$cv tini-static=$tv failed (output above)"
	}
	new="$ZW_DOCKER28_DIR.new"
	rm -rf "$new"
	mkdir -p "$new"
	for deb in "$tmp"/debs/*.deb; do
		dpkg-deb -x "$deb" "$new" || zw_die "Docker 28 engine: dpkg-deb -x $deb failed"
	done
	printf 'docker.io %s\ncontainerd %s\ntini-static %s\n' "$dv" "$cv" "$tv" >"$new/.zonewarden-packages"
	rm -rf "$ZW_DOCKER28_DIR"
	mv "$new" "$ZW_DOCKER28_DIR"
)

# zw_docker28_running: whether this engine's dockerd or containerd runs.
zw_docker28_running() {
	zw_pidfile_running "$ZW_DOCKER28_PIDFILE" || zw_pidfile_running "$ZW_CONTAINERD28_PIDFILE"
}

# zw_docker28_containerd_config: containerd's config: its own root, state
# and sockets; no CRI (a Kubernetes runtime, not needed by dockerd) and no
# NRI (it would take the host's /var/run/nri/nri.sock).
zw_docker28_containerd_config() {
	cat <<EOF
version = 3
root = "$ZW_CONTAINERD28_ROOT"
state = "$ZW_CONTAINERD28_STATE"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$ZW_CONTAINERD28_SOCK"
[ttrpc]
  address = "$ZW_CONTAINERD28_SOCK.ttrpc"
[debug]
  address = "$ZW_CONTAINERD28_STATE/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$ZW_CONTAINERD28_ROOT/opt"
EOF
}

# zw_docker28_start: fetches the engine and starts containerd, then dockerd
# (logs in ZW_CONTAINERD28_LOG and ZW_DOCKER28_LOG), waiting up to
# ZW_DOCKERD_WAIT seconds for each. No other Docker daemon may be running.
# Sets ZW_STARTED_DOCKERD=1, ZW_DOCKERD_PID and ZW_DOCKERD_LOG like
# zw_ensure_dockerd.
zw_docker28_start() {
	zw_docker28_fetch
	if zw_docker_answers; then
		zw_die "Docker 28 engine: another Docker daemon answers ($(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')); both use Docker's iptables chains and /var/run/docker.sock, so only one may run.
  Stop it first (systemctl stop docker docker.socket, or scripts/engine28.sh stop if it is this engine left by a killed run)."
	fi
	if pidof dockerd >/dev/null 2>&1; then
		zw_die "Docker 28 engine: a dockerd process runs (pid $(pidof dockerd)) but does not answer; stop it first"
	fi
	if zw_pidfile_running "$ZW_CONTAINERD28_PIDFILE"; then
		zw_log "Docker 28 engine: its containerd from an earlier start still runs; stopping it first"
		zw_docker28_stop
	fi
	mkdir -p "$ZW_CONTAINERD28_ROOT" "$ZW_CONTAINERD28_STATE" "$ZW_DOCKER28_DATA" "$ZW_DOCKER28_EXEC" \
		"$(dirname "$ZW_DOCKER28_LOG")" "$(dirname "$ZW_CONTAINERD28_LOG")"
	zw_docker28_containerd_config >"$ZW_CONTAINERD28_STATE/config.toml"
	local path
	path="$(zw_docker28_path)"
	zw_log "Docker 28 engine: starting containerd (log: $ZW_CONTAINERD28_LOG)"
	# Sessions of their own: a Ctrl-C in the terminal is for the script.
	PATH="$path" setsid "$ZW_DOCKER28_DIR/usr/bin/containerd" --config "$ZW_CONTAINERD28_STATE/config.toml" \
		>"$ZW_CONTAINERD28_LOG" 2>&1 </dev/null &
	local cpid=$!
	echo "$cpid" >"$ZW_CONTAINERD28_PIDFILE"
	local deadline=$((SECONDS + ZW_DOCKERD_WAIT))
	until "$ZW_DOCKER28_DIR/usr/bin/ctr" --address "$ZW_CONTAINERD28_SOCK" version >/dev/null 2>&1; do
		if ! zw_pid_running "$cpid"; then
			tail -n 20 "$ZW_CONTAINERD28_LOG" >&2 || true
			zw_die "Docker 28 engine: containerd exited during start-up; its log is $ZW_CONTAINERD28_LOG (last lines above)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 20 "$ZW_CONTAINERD28_LOG" >&2 || true
			zw_docker28_stop
			zw_die "Docker 28 engine: containerd did not answer on $ZW_CONTAINERD28_SOCK within ${ZW_DOCKERD_WAIT}s; see $ZW_CONTAINERD28_LOG"
		fi
		sleep 0.2
	done
	ZW_DOCKERD_LOG="$ZW_DOCKER28_LOG"
	zw_log "Docker 28 engine: starting dockerd (log: $ZW_DOCKERD_LOG)"
	# The absolute path in argv[0] and every path as a flag: the dockerd
	# restart test starts this command line again, in its own environment.
	PATH="$path" setsid "$ZW_DOCKER28_DIR/usr/sbin/dockerd" \
		--containerd "$ZW_CONTAINERD28_SOCK" \
		--data-root "$ZW_DOCKER28_DATA" --exec-root "$ZW_DOCKER28_EXEC" --pidfile "$ZW_DOCKER28_PIDFILE" \
		--userland-proxy-path "$ZW_DOCKER28_DIR/usr/sbin/docker-proxy" \
		--init-path "$ZW_DOCKER28_DIR/usr/bin/docker-init" \
		>"$ZW_DOCKERD_LOG" 2>&1 </dev/null &
	ZW_DOCKERD_PID=$!
	ZW_STARTED_DOCKERD=1
	zw_wait_dockerd
	local v
	v="$(zw_docker_server_version)"
	# shellcheck disable=SC2053
	[[ $v == ${ZW_DOCKER28_VERSION%%+*}* ]] ||
		zw_die "Docker 28 engine: the daemon that answers is Docker $v, not ${ZW_DOCKER28_VERSION%%+*}; is another daemon listening on /var/run/docker.sock?"
}

# zw_docker28_stop: stops this engine's dockerd (SIGTERM: it stops its
# containers; SIGKILL after 30 s), then its containerd, found by their
# pidfiles (the dockerd restart test starts dockerd again: a new pid).
zw_docker28_stop() {
	local pid
	pid="$(cat "$ZW_DOCKER28_PIDFILE" 2>/dev/null || true)"
	if [ -n "$pid" ] && zw_pid_running "$pid"; then
		zw_log "Docker 28 engine: stopping dockerd (pid $pid)"
		zw_stop_pid "$pid" 30 dockerd
	fi
	# A dockerd of this engine without its pidfile (killed before writing it).
	if [ "${ZW_STARTED_DOCKERD:-0}" = 1 ] && [ -n "${ZW_DOCKERD_PID:-}" ] && zw_pid_running "$ZW_DOCKERD_PID"; then
		zw_stop_pid "$ZW_DOCKERD_PID" 30 dockerd
	fi
	ZW_STARTED_DOCKERD=0
	rm -f "$ZW_DOCKER28_PIDFILE"
	pid="$(cat "$ZW_CONTAINERD28_PIDFILE" 2>/dev/null || true)"
	if [ -n "$pid" ] && zw_pid_running "$pid"; then
		zw_log "Docker 28 engine: stopping containerd (pid $pid)"
		zw_stop_pid "$pid" 15 containerd
	fi
	rm -f "$ZW_CONTAINERD28_PIDFILE"
	# Shims outlive containerd while their containers run (dockerd was
	# killed before it stopped them); the next start of the engine stops
	# those containers (no live-restore).
	local shims
	shims="$(pgrep -f -- "-address $ZW_CONTAINERD28_SOCK( |$)" 2>/dev/null | tr '\n' ' ' || true)"
	if [ -n "$shims" ]; then
		zw_log "Docker 28 engine: note: container shims still run (pids $shims): their containers outlived dockerd; scripts/engine28.sh start, then stop, stops them"
	fi
}

# zw_docker28_status: prints whether the engine runs and where its files are.
zw_docker28_status() {
	local d c
	d="$(cat "$ZW_DOCKER28_PIDFILE" 2>/dev/null || true)"
	c="$(cat "$ZW_CONTAINERD28_PIDFILE" 2>/dev/null || true)"
	if zw_docker28_cached; then
		echo "cache:      $ZW_DOCKER28_DIR ($(tr '\n' ' ' <"$ZW_DOCKER28_STAMP"))"
	else
		echo "cache:      $ZW_DOCKER28_DIR (not fetched, or not the wanted versions)"
	fi
	if [ -n "$d" ] && zw_pid_running "$d"; then echo "dockerd:    running, pid $d, log $ZW_DOCKER28_LOG"; else echo "dockerd:    not running (log $ZW_DOCKER28_LOG)"; fi
	if [ -n "$c" ] && zw_pid_running "$c"; then echo "containerd: running, pid $c, log $ZW_CONTAINERD28_LOG"; else echo "containerd: not running (log $ZW_CONTAINERD28_LOG)"; fi
	echo "data:       $ZW_DOCKER28_DATA, $ZW_CONTAINERD28_ROOT (delete them to start afresh)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case "${1:-}" in
	fetch)
		zw_require_root "$@"
		zw_docker28_fetch
		;;
	start)
		zw_require_root "$@"
		zw_docker28_start
		zw_log "Docker 28 engine runs on /var/run/docker.sock; stop it with: $0 stop"
		;;
	stop)
		zw_require_root "$@"
		zw_docker28_stop
		zw_docker_firewall_reset
		;;
	status) zw_docker28_status ;;
	*)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
		exit 2
		;;
	esac
fi
