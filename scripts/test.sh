#!/usr/bin/env bash
# Runs every zonewarden check and test, as root, on a Debian/Ubuntu machine:
#   sudo scripts/test.sh [go test flags, e.g. -run TestAudit]
#
# It installs what is missing (docker.io, nftables, busybox-static, iptables,
# ca-certificates, and gcc for the race detector), checks the Go version,
# runs gofmt -l, go vet and staticcheck, then, on each Docker engine in turn
# (ZW_ENGINES), go test -race ./... and (without arguments) the tests that
# need the host alone (ZONEWARDEN_ALONE=1): 200 concurrent starts under the
# agent, a dockerd restart, the demo. It stops at the first failure.
#
# The engines, one at a time (both own Docker's iptables chains and
# /var/run/docker.sock):
#   20  the host's dockerd (Debian 12: docker.io 20.10), started if no Docker
#       daemon answers and stopped again after its tests;
#   28  Debian sid's docker.io 28.5.2 with containerd 2.1.9, fetched into a
#       cache folder and run with a data-root of its own (scripts/engine28.sh).
# Between engines, and after each, the Docker iptables chains are removed.
# A daemon that was already running is the script's to use, not to stop: the
# tests run on it (as the engine it is: 28 if scripts/engine28.sh started it,
# else 20) and it is left running; the other engine then needs the host to
# itself and is skipped with a note (an error if ZW_ENGINES asked for it).
# The integration tests are ordinary tests that need root and Docker (see
# internal/testenv); ZONEWARDEN_REQUIRE_DOCKER=1 makes them fail rather than
# skip when either is missing. Extra arguments go to go test.
#
# Environment: ZW_ENGINES (default "20 28", in that order; "28" runs only
# the second engine), ZW_TEST_TIMEOUT (go test -timeout, per package,
# default 10m), ZW_DOCKERD_LOG (the host dockerd's log, default
# /var/log/zonewarden-dockerd.log), and those of scripts/engine28.sh.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/engine28.sh
source "$ZW_REPO_ROOT/scripts/engine28.sh"
cd "$ZW_REPO_ROOT"

zw_require_root "$@"

read -ra ENGINES <<<"${ZW_ENGINES:-20 28}"
[ "${#ENGINES[@]}" -gt 0 ] || zw_die "ZW_ENGINES is empty; set it to \"20\", \"28\" or \"20 28\""
for e in "${ENGINES[@]}"; do
	case "$e" in
	20 | 28) ;;
	*) zw_die "ZW_ENGINES: unknown engine '$e' (known: 20, the host's dockerd; 28, Docker 28.5.2 from Debian sid)" ;;
	esac
done
[ "$(printf '%s\n' "${ENGINES[@]}" | sort | uniq -d)" = "" ] || zw_die "ZW_ENGINES names an engine twice: ${ENGINES[*]}"

START=$SECONDS
STEP="setup"
ENGINE=""        # the engine whose daemon is up: 20, 28 or none
ENGINE_NAME=""   # "Docker 20.10.24+dfsg1"
ENGINE_OWNED=0   # whether this script started that daemon
ENGINE_START=0   # when its tests began
FOREIGN=""       # the engine of a daemon that was running before the script
PASSED=()        # "Docker VERSION (engine E, N s)" of each engine that passed
SKIPPED=()       # "engine E (why)"
ORIG_PATH="$PATH"

# engine_down: removes the test leftovers of the daemon if it is the
# script's (reports them otherwise) and stops it, then clears Docker's
# iptables chains so that the next engine starts from a clean table.
engine_down() {
	[ -n "$ENGINE" ] || return 0
	if [ "$ENGINE_OWNED" = 1 ]; then
		zw_test_leftovers --remove
		if [ "$ENGINE" = 28 ]; then
			zw_docker28_stop
		else
			# The alone tests restart dockerd (also when they fail):
			# the daemon to stop is the one running now.
			ZW_DOCKERD_PID="$(pidof dockerd || echo "$ZW_DOCKERD_PID")"
			zw_stop_dockerd
		fi
		zw_docker_firewall_reset
	else
		zw_test_leftovers
	fi
	PATH="$ORIG_PATH"
	ENGINE=""
	ENGINE_OWNED=0
}

summary() {
	local s=""
	[ "${#PASSED[@]}" -eq 0 ] || s="passed on $(printf '%s and ' "${PASSED[@]}" | sed 's/ and $//')"
	[ "${#SKIPPED[@]}" -eq 0 ] || s="${s:+$s; }skipped $(printf '%s and ' "${SKIPPED[@]}" | sed 's/ and $//')"
	printf '%s' "$s"
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
	engine_down || true
	if [ "$rc" -eq 0 ]; then
		printf '\n%s: PASS: gofmt, go vet, staticcheck and all tests (race detector, Docker integration) %s, in %ds\n' "$ZW_PROG" "$(summary)" $((SECONDS - START))
	else
		local before
		before="$(summary)"
		printf '\n%s: FAIL: %s failed (exit %d) after %ds%s\n' "$ZW_PROG" "$STEP" "$rc" $((SECONDS - START)) "${before:+ (before that: $before)}" >&2
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step NAME: announces the next step, for the progress log and the summary.
step() {
	STEP="$1"
	printf '\n== [%ds] %s\n' $((SECONDS - START)) "$1" >&2
}

# engine_blocked E: whether a daemon the script did not start holds the
# host, so that engine E cannot run: a note in SKIPPED, or an error if
# ZW_ENGINES asked for E.
engine_blocked() {
	local e=$1
	[ -n "$FOREIGN" ] && [ "$FOREIGN" != "$e" ] || return 1
	local why="a Docker daemon this script did not start is running (engine $FOREIGN); engine $e needs the host to itself"
	[ -z "${ZW_ENGINES:-}" ] ||
		zw_die "$why. Stop that daemon (systemctl stop docker docker.socket, or scripts/engine28.sh stop) and run again, or leave engine $e out of ZW_ENGINES."
	zw_log "skipping engine $e: $why; stop that daemon to test on both engines"
	SKIPPED+=("engine $e (another daemon was running)")
	return 0
}

# engine_up E: brings engine E's daemon up (or uses the one found running).
engine_up() {
	local e=$1
	if [ "$e" = 28 ]; then
		if [ "$FOREIGN" = 28 ]; then
			zw_log "Docker 28 engine is running (started by scripts/engine28.sh); testing on it and leaving it running"
			ZW_DOCKERD_LOG="$ZW_DOCKER28_LOG"
		else
			zw_docker28_start
			ENGINE_OWNED=1
		fi
		PATH="$(zw_docker28_path)"
	else
		zw_ensure_dockerd
		ENGINE_OWNED="$ZW_STARTED_DOCKERD"
	fi
	ENGINE="$e"
	ENGINE_NAME="Docker $(zw_docker_server_version)"
	# The Swarm test bed (internal/testenv/swarmbed) runs the same engine.
	export ZW_SWARMBED_ENGINE="$e" ZW_DOCKER28_DIR
	# A daemon this script started is its own: clear what a killed run left.
	if [ "$ENGINE_OWNED" = 1 ]; then
		zw_test_leftovers --remove
	fi
}

step "prerequisites"
zw_install_packages docker.io nftables busybox-static iptables ca-certificates gcc libc6-dev chromium
zw_require_go
if zw_docker_answers; then
	FOREIGN=20
	if zw_docker28_running; then
		FOREIGN=28
	fi
	zw_log "a Docker daemon is running ($(zw_docker_server_version), engine $FOREIGN); the tests use it and leave it running"
fi

# An engine asked for by ZW_ENGINES that cannot run fails now, not after
# the static checks.
if [ -n "${ZW_ENGINES:-}" ]; then
	for e in "${ENGINES[@]}"; do
		engine_blocked "$e" || true
	done
fi

export ZONEWARDEN_REQUIRE_DOCKER=1
export CGO_ENABLED=1 # the race detector needs cgo

step "gofmt"
unformatted="$(find . -name '*.go' -not -path './.git/*' -not -path '*/testdata/*' -not -path './vendor/*' -print0 | xargs -0 -r gofmt -l)"
if [ -n "$unformatted" ]; then
	printf '%s\n' "$unformatted" >&2
	zw_die "these files are not gofmt-formatted; run: gofmt -w $(echo "$unformatted" | tr '\n' ' ')"
fi

step "go vet"
go vet ./...

step "staticcheck"
go tool staticcheck ./...

for e in "${ENGINES[@]}"; do
	step "engine $e: start"
	if engine_blocked "$e"; then
		continue
	fi
	engine_up "$e"
	ENGINE_START=$SECONDS

	# One run covers unit and integration tests: the integration tests are
	# ordinary tests (root + Docker), and the race detector costs them little.
	step "$ENGINE_NAME (engine $e): go test -race (unit and integration tests)"
	# -timeout bounds each test binary; they run in parallel.
	go test -race -count=1 -timeout "${ZW_TEST_TIMEOUT:-10m}" "$@" ./...

	# Tests that need the host to themselves run alone, after the others, one
	# package at a time (and not when extra arguments select tests): restarting
	# dockerd stops every container for a few seconds (also to run it with
	# --userland-proxy=false for a while), turning the host's
	# bridge-nf-call-iptables off unfilters every bridge, 200 concurrent container
	# starts measure admission latency that the other tests' load would
	# distort, and the demo's verify shows Docker's isolation, which other
	# tests' network changes open for moments (testenv.RequireAlone).
	if [ "$#" -eq 0 ]; then
		step "$ENGINE_NAME (engine $e): alone: 200 concurrent starts under the agent; dockerd restart; the demo; userland-proxy off; bridge-nf-call-iptables off"
		# The restart test stops dockerd and starts its command line again
		# (the 28 engine's has every path in it), appending to this log.
		export ZW_DOCKERD_LOG
		alone_log="$(mktemp)"
		alone=(TestAgentAdmitsConcurrentStarts TestDockerdRestart TestDemoLive TestUserlandProxyOff TestApplyTurnsBridgeFilteringOn)
		# The start storm measures how fast the agent admits: without the
		# race detector, which slows the agent several times (it runs in
		# the test's process) and so would measure the detector.
		{
			ZONEWARDEN_ALONE=1 go test -count=1 -timeout 10m -run '^TestAgentAdmitsConcurrentStarts$' -v ./internal/agent &&
				ZONEWARDEN_ALONE=1 go test -race -count=1 -p 1 -timeout 10m -run '^(TestDockerdRestart|TestDemoLive|TestUserlandProxyOff|TestApplyTurnsBridgeFilteringOn)$' -v ./internal/agent ./internal/cli ./internal/truth
		} >"$alone_log" 2>&1 || {
			cat "$alone_log" >&2
			rm -f "$alone_log"
			false
		}
		for t in "${alone[@]}"; do
			grep -q -- "--- PASS: $t " "$alone_log" || {
				cat "$alone_log" >&2
				rm -f "$alone_log"
				zw_die "$t did not run"
			}
		done
		grep -h 'first try\|admission latency' "$alone_log" >&2 || true
		rm -f "$alone_log"
	fi

	PASSED+=("$ENGINE_NAME (engine $ENGINE, $((SECONDS - ENGINE_START)) s)")
	zw_log "$ENGINE_NAME (engine $ENGINE): all tests passed in $((SECONDS - ENGINE_START)) s"
	engine_down
done
[ "${#PASSED[@]}" -gt 0 ] || zw_die "no engine was tested ($(summary))"
