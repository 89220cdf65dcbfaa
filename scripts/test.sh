#!/usr/bin/env bash
# Runs every zonewarden check and test, as root, on a Debian/Ubuntu machine:
#   sudo scripts/test.sh [go test flags, e.g. -run TestAudit]
#
# It installs what is missing (docker.io, nftables, busybox-static, iptables,
# ca-certificates, and gcc for the race detector), checks the Go version,
# starts dockerd if no Docker daemon answers (and stops it again at the end;
# a daemon that was already running is left running), then runs, stopping at
# the first failure:
#   gofmt -l, go vet, staticcheck, go test -race ./..., then (without
#   arguments) the tests that need the host alone (ZONEWARDEN_ALONE=1):
#   200 concurrent starts under the agent, a dockerd restart, the demo.
# The integration tests are ordinary tests that need root and Docker (see
# internal/testenv); ZONEWARDEN_REQUIRE_DOCKER=1 makes them fail rather than
# skip when either is missing. Extra arguments go to go test.
#
# Environment: ZW_TEST_TIMEOUT (go test -timeout, per package, default 10m),
# ZW_DOCKERD_LOG (default /var/log/zonewarden-dockerd.log).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ZW_REPO_ROOT"

zw_require_root "$@"

START=$SECONDS
STEP="setup"
finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$ZW_STARTED_DOCKERD" = 1 ]; then
		zw_test_leftovers --remove
	else
		zw_test_leftovers
	fi
	zw_stop_dockerd
	if [ "$rc" -eq 0 ]; then
		printf '\n%s: PASS: gofmt, go vet, staticcheck and all tests (race detector, Docker integration) passed in %ds\n' "$ZW_PROG" $((SECONDS - START))
	else
		printf '\n%s: FAIL: %s failed (exit %d) after %ds\n' "$ZW_PROG" "$STEP" "$rc" $((SECONDS - START)) >&2
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step NAME: announces the next step, for the progress log and the summary.
step() {
	STEP="$1"
	printf '\n== %s\n' "$1" >&2
}

step "prerequisites"
zw_install_packages docker.io nftables busybox-static iptables ca-certificates gcc libc6-dev chromium
zw_require_go
zw_ensure_dockerd
# A daemon this script started is its own: clear what a killed run left.
if [ "$ZW_STARTED_DOCKERD" = 1 ]; then
	zw_test_leftovers --remove
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

# One run covers unit and integration tests: the integration tests are
# ordinary tests (root + Docker), and the race detector costs them little.
step "go test -race (unit and integration tests)"
# -timeout bounds each test binary; they run in parallel.
go test -race -count=1 -timeout "${ZW_TEST_TIMEOUT:-10m}" "$@" ./...

# Tests that need the host to themselves run alone, after the others, one
# package at a time (and not when extra arguments select tests): restarting
# dockerd stops every container for a few seconds, 200 concurrent container
# starts measure admission latency that the other tests' load would
# distort, and the demo's verify shows Docker's isolation, which other
# tests' network changes open for moments (testenv.RequireAlone).
if [ "$#" -eq 0 ]; then
	step "alone: 200 concurrent starts under the agent; dockerd restart; the demo"
	export ZW_DOCKERD_LOG
	alone_log="$(mktemp)"
	alone=(TestAgentAdmitsConcurrentStarts TestDockerdRestart TestDemoLive)
	ZONEWARDEN_ALONE=1 go test -race -count=1 -p 1 -timeout 10m -run "^($(IFS='|'; echo "${alone[*]}"))\$" -v ./internal/agent ./internal/cli >"$alone_log" 2>&1 || {
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
	grep -h 'every container reached\|admission latency' "$alone_log" >&2 || true
	rm -f "$alone_log"
	# The restart test started dockerd again: that is the daemon to stop.
	if [ "$ZW_STARTED_DOCKERD" = 1 ]; then
		ZW_DOCKERD_PID="$(pidof dockerd || true)"
	fi
fi
