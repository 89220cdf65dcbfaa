# shellcheck shell=bash
# Shared by scripts/test.sh and scripts/demo.sh (source it, do not run it):
# root check, Debian/Ubuntu prerequisites, Go version check, and a Docker
# daemon that is started when none answers and stopped again on exit.
#
# After zw_ensure_dockerd, ZW_STARTED_DOCKERD=1 means this script started
# dockerd (pid ZW_DOCKERD_PID, log ZW_DOCKERD_LOG) and zw_stop_dockerd will
# stop it; 0 means a daemon was already running and is left alone.

ZW_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZW_DOCKERD_LOG="${ZW_DOCKERD_LOG:-/var/log/zonewarden-dockerd.log}"
ZW_DOCKERD_WAIT="${ZW_DOCKERD_WAIT:-30}" # seconds
ZW_STARTED_DOCKERD=0
ZW_DOCKERD_PID=""
ZW_PROG="$(basename "$0")"

zw_log() { printf '%s: %s\n' "$ZW_PROG" "$*" >&2; }
zw_die() { printf '%s: error: %s\n' "$ZW_PROG" "$*" >&2; exit 1; }

zw_require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		zw_die "must run as root (it installs packages, starts dockerd and changes the firewall): run  sudo $0${*:+ $*}"
	fi
}

# zw_has_pkg PACKAGE: whether PACKAGE is present, by the command it provides
# where another package could provide it too (docker-ce instead of docker.io).
zw_has_pkg() {
	case "$1" in
	docker.io) command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 ;;
	nftables) command -v nft >/dev/null 2>&1 ;;
	iptables) command -v iptables >/dev/null 2>&1 ;;
	ca-certificates) [ -s /etc/ssl/certs/ca-certificates.crt ] ;;
	*) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' ;;
	esac
}

# zw_install_packages PACKAGE...: installs those not present, with one
# apt-get update, non-interactively.
zw_install_packages() {
	local missing=() p
	for p in "$@"; do
		zw_has_pkg "$p" || missing+=("$p")
	done
	[ "${#missing[@]}" -eq 0 ] && return 0
	command -v apt-get >/dev/null 2>&1 ||
		zw_die "missing ${missing[*]} and there is no apt-get: install them by hand (Debian/Ubuntu package names)"
	zw_log "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq </dev/null || zw_die "apt-get update failed"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
		zw_die "apt-get install ${missing[*]} failed"
}

# zw_require_go: go on PATH (also /usr/local/go/bin, which sudo drops) and at
# least the version in go.mod's go line. An older go (1.21+) switches to the
# required toolchain itself, fetched from the Go module proxy (GOTOOLCHAIN=auto);
# nothing else is downloaded.
zw_require_go() {
	local want have local_version
	want="$(awk '$1 == "go" { print $2; exit }' "$ZW_REPO_ROOT/go.mod")"
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		PATH="/usr/local/go/bin:$PATH"
		export PATH
	fi
	command -v go >/dev/null 2>&1 || zw_die "Go $want or newer is needed and 'go' is not installed.
  Install it from https://go.dev/dl/ (download go$want.linux-amd64.tar.gz, then
  rm -rf /usr/local/go && tar -C /usr/local -xzf go$want.linux-amd64.tar.gz)
  and run this again; it also looks in /usr/local/go/bin."
	local_version="$(cd / && GOTOOLCHAIN=local go env GOVERSION 2>/dev/null)"
	local_version="${local_version#go}"
	if ! zw_version_at_least "${local_version%% *}" "$want"; then
		zw_log "go ${local_version:-(unknown version)} is older than go.mod's go $want; go will fetch go$want from the Go module proxy (GOTOOLCHAIN=auto)"
	fi
	have="$(cd "$ZW_REPO_ROOT" && go env GOVERSION 2>/dev/null)"
	have="${have#go}"
	have="${have%% *}"
	zw_version_at_least "$have" "$want" || zw_die "Go $want or newer is needed, and $(command -v go) is $(go version 2>&1 | awk '{print $3}').
  Install Go $want from https://go.dev/dl/, or let go 1.21+ fetch it from the Go
  module proxy (do not set GOTOOLCHAIN=local; GOPROXY must reach proxy.golang.org)."
	zw_log "using go $have ($(command -v go))"
}

# zw_version_at_least HAVE WANT: whether version HAVE >= WANT (1.26.8 style).
zw_version_at_least() {
	[ -n "$1" ] && [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# zw_docker_answers: whether a Docker daemon answers, within 5 s.
zw_docker_answers() {
	if command -v docker >/dev/null 2>&1; then
		timeout 5 docker info >/dev/null 2>&1 && return 0
	fi
	if [ -z "${DOCKER_HOST:-}" ] && command -v curl >/dev/null 2>&1; then
		curl -fsS -m 5 --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1 && return 0
	fi
	return 1
}

# zw_docker_server_version: the answering daemon's version ("?" if none).
zw_docker_server_version() {
	timeout 5 docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?'
}

# zw_pid_running PID: whether process PID exists and is not a zombie (a
# dockerd started again by the restart test is no child of this script: once
# stopped it stays a zombie until init reaps it).
zw_pid_running() {
	[ -n "$1" ] && [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# zw_pidfile_running FILE: whether FILE names a running process.
zw_pidfile_running() {
	local pid
	pid="$(cat "$1" 2>/dev/null || true)"
	zw_pid_running "$pid"
}

# zw_stop_pid PID SECONDS NAME: SIGTERM to PID, SIGKILL if it still runs
# after SECONDS, and reaps it if it is a child.
zw_stop_pid() {
	local pid=$1 limit=$2 name=$3
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + limit))
	while zw_pid_running "$pid"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			zw_log "$name (pid $pid) did not stop within $limit s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	wait "$pid" 2>/dev/null || true
}

# zw_ensure_dockerd: makes sure a Docker daemon answers, starting dockerd in
# the background (log in ZW_DOCKERD_LOG) if none does, and waiting up to
# ZW_DOCKERD_WAIT seconds for it.
zw_ensure_dockerd() {
	if zw_docker_answers; then
		zw_log "Docker daemon is running; leaving it as it is"
		return 0
	fi
	[ -z "${DOCKER_HOST:-}" ] ||
		zw_die "DOCKER_HOST=$DOCKER_HOST does not answer; start that daemon, or unset DOCKER_HOST to use a local dockerd"
	command -v dockerd >/dev/null 2>&1 || zw_die "dockerd not found (apt-get install -y docker.io)"
	if pidof dockerd >/dev/null 2>&1; then
		zw_log "a dockerd process exists but does not answer yet; waiting for it"
	else
		zw_log "starting dockerd (log: $ZW_DOCKERD_LOG)"
		mkdir -p "$(dirname "$ZW_DOCKERD_LOG")"
		# Its own session: a Ctrl-C in this terminal is for the script; the
		# trap stops dockerd (or leaves it running, as asked).
		setsid dockerd >"$ZW_DOCKERD_LOG" 2>&1 </dev/null &
		ZW_DOCKERD_PID=$!
		ZW_STARTED_DOCKERD=1
	fi
	zw_wait_dockerd
}

# zw_wait_dockerd: waits up to ZW_DOCKERD_WAIT seconds for the Docker daemon
# to answer; fails early if ZW_DOCKERD_PID, the dockerd started, exits.
zw_wait_dockerd() {
	local deadline=$((SECONDS + ZW_DOCKERD_WAIT))
	until zw_docker_answers; do
		if [ -n "$ZW_DOCKERD_PID" ] && ! zw_pid_running "$ZW_DOCKERD_PID"; then
			ZW_STARTED_DOCKERD=0
			tail -n 20 "$ZW_DOCKERD_LOG" >&2 || true
			zw_die "dockerd exited during start-up; its log is $ZW_DOCKERD_LOG (last lines above)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			[ -f "$ZW_DOCKERD_LOG" ] && tail -n 20 "$ZW_DOCKERD_LOG" >&2
			zw_die "Docker daemon did not answer within ${ZW_DOCKERD_WAIT}s; see $ZW_DOCKERD_LOG"
		fi
		sleep 0.5
	done
	zw_log "Docker daemon answers ($(zw_docker_server_version))"
}

# zw_stop_dockerd: stops the dockerd that zw_ensure_dockerd started, if any
# (SIGTERM, up to 20 s, then SIGKILL). A daemon found running is left alone.
zw_stop_dockerd() {
	[ "$ZW_STARTED_DOCKERD" = 1 ] && [ -n "$ZW_DOCKERD_PID" ] || return 0
	ZW_STARTED_DOCKERD=0
	zw_pid_running "$ZW_DOCKERD_PID" || return 0
	zw_log "stopping the dockerd it started (pid $ZW_DOCKERD_PID)"
	zw_stop_pid "$ZW_DOCKERD_PID" 20 dockerd
}

# zw_docker_firewall_reset: removes what a stopped Docker daemon left in
# iptables and ip6tables (its DOCKER* chains and the rules that jump to them
# or name docker0), as a reboot would. Each Docker version lays out its
# chains differently (28 adds DOCKER-FORWARD, DOCKER-BRIDGE, DOCKER-CT and
# moves the bridge rules there) and only repairs its own layout, so the next
# engine must start from a clean table. Only call it with no daemon running.
zw_docker_firewall_reset() {
	local cmd table rules rule chain chains removed=0
	for cmd in iptables ip6tables; do
		command -v "$cmd" >/dev/null 2>&1 || continue
		for table in filter nat raw; do
			rules="$("$cmd" -w -t "$table" -S 2>/dev/null)" || continue
			while IFS= read -r rule; do
				[ -n "$rule" ] || continue
				# -S quotes what needs quoting, as a shell would.
				eval "\"\$cmd\" -w -t \"\$table\" -D ${rule#-A }" 2>/dev/null && removed=$((removed + 1))
			done < <(grep -E '^-A ' <<<"$rules" | grep -vE '^-A DOCKER' | grep -E -- '-j DOCKER|[ !]docker0( |$)' || true)
			# Flush them all first: they jump to each other.
			chains=()
			while IFS= read -r chain; do
				chains+=("$chain")
			done < <(awk '$1 == "-N" && $2 ~ /^DOCKER/ { print $2 }' <<<"$rules")
			for chain in "${chains[@]}"; do
				"$cmd" -w -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in "${chains[@]}"; do
				"$cmd" -w -t "$table" -X "$chain" 2>/dev/null && removed=$((removed + 1))
			done
		done
	done
	[ "$removed" -eq 0 ] || zw_log "removed the stopped Docker daemon's iptables chains and rules ($removed)"
}

# zw_test_nft_leftovers [--remove]: reports (or removes) the nftables tables
# that tests make for themselves (zwtest_*, inet and bridge) and a killed
# run left behind. A stale bridge table still claims the addresses of its
# containers: Docker hands them to new ones, whose frames it drops.
zw_test_nft_leftovers() {
	command -v nft >/dev/null 2>&1 || return 0
	local tables
	tables="$(nft list tables 2>/dev/null | awk '$1 == "table" && $3 ~ /^zwtest_/ { print $2 " " $3 }')" || return 0
	[ -n "$tables" ] || return 0
	if [ "${1:-}" != --remove ]; then
		zw_log "note: $(echo "$tables" | grep -c .) nftables table(s) of test runs exist (zwtest_*); remove each with: nft delete table FAMILY NAME"
		return 0
	fi
	zw_log "removing $(echo "$tables" | grep -c .) nftables table(s) of test runs (zwtest_*)"
	local family name
	while read -r family name; do
		nft delete table "$family" "$name" 2>/dev/null || true
	done <<<"$tables"
}

# zw_test_leftovers [--remove]: reports the containers and networks labelled
# zonewarden.test (left by a test binary that was killed, or by a Docker
# 20.10 stale endpoint) and, with --remove, removes them. Only remove them on
# a daemon this script owns: on a shared one they may be another run's.
# zw_swarmbed_leftovers [--remove]: Swarm test beds (internal/testenv/
# swarmbed) a killed test run left: their daemons, namespaces, cgroups and
# folders, all named zwsb<N>.
zw_swarmbed_leftovers() {
	local beds b
	beds="$( { ip netns list 2>/dev/null | awk '{print $1}'; ls /run /tmp 2>/dev/null; } | grep -oE '^zwsb[0-9]+' | sort -u || true)"
	[ -z "$beds" ] && return 0
	if [ "${1:-}" != --remove ]; then
		zw_log "note: Swarm test beds left behind: $(echo $beds); scripts/test.sh removes them"
		return 0
	fi
	for b in $beds; do
		zw_log "removing Swarm test bed $b"
		for p in /run/$b/*/dockerd.pid /run/$b/*/containerd.pid; do
			[ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
		done
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$b-"); do
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		done
		for cg in /sys/fs/cgroup/*/"$b"-*; do
			[ -d "$cg" ] || continue
			cat "$cg"/cgroup.procs "$cg"/*/cgroup.procs 2>/dev/null | xargs -r kill -KILL 2>/dev/null
		done
		sleep 0.5
		awk '{print $5}' /proc/self/mountinfo | grep -E "^/(run|tmp)/$b/" | sort -r | xargs -r -n1 umount -l 2>/dev/null
		for cg in /sys/fs/cgroup/*/"$b"-*; do
			[ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
		done
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$b-"); do ip netns del "$ns"; done
		rm -rf "/run/$b" "/tmp/$b"
	done
}

zw_test_leftovers() {
	zw_test_nft_leftovers "$@"
	zw_swarmbed_leftovers "$@"
	local cs ns
	cs="$(docker ps -aq --filter label=zonewarden.test 2>/dev/null)" || return 0
	ns="$(docker network ls -q --filter label=zonewarden.test 2>/dev/null)" || return 0
	[ -z "$cs$ns" ] && return 0
	local what
	what="$(echo "$cs" | grep -c .) container(s) and $(echo "$ns" | grep -c .) network(s) labelled zonewarden.test"
	if [ "${1:-}" != --remove ]; then
		zw_log "note: $what exist (another test run's, or left behind); remove them with:
  docker rm -f \$(docker ps -aq --filter label=zonewarden.test); docker network rm \$(docker network ls -q --filter label=zonewarden.test)"
		return 0
	fi
	zw_log "removing $what"
	# Docker may refuse for a moment (a removal in progress, an endpoint
	# still being released): up to three rounds, 2 s apart.
	local round err
	for round in 1 2 3; do
		[ "$round" = 1 ] || sleep 2
		err=""
		# shellcheck disable=SC2086 # word splitting of the id lists is wanted
		[ -z "$cs" ] || err+="$(docker rm -f $cs 2>&1 >/dev/null)" || true
		# shellcheck disable=SC2086
		[ -z "$ns" ] || err+="$(docker network rm $ns 2>&1 >/dev/null)" || true
		cs="$(docker ps -aq --filter label=zonewarden.test 2>/dev/null)" || return 0
		ns="$(docker network ls -q --filter label=zonewarden.test 2>/dev/null)" || return 0
		[ -n "$cs$ns" ] || return 0
	done
	zw_log "warning: $(echo "$cs" | grep -c .) container(s) and $(echo "$ns" | grep -c .) network(s) labelled zonewarden.test could not be removed (on Docker 20.10 stale endpoints keep networks: restarting dockerd clears them); Docker said:
$(printf '%s\n' "$err" | sed 's/^/  /' | tail -n 5)"
}
