#!/usr/bin/env bash
# Builds zonewarden and runs its demo on this machine, as root:
#   sudo scripts/demo.sh [demo flags...]
#
# It installs what is missing (docker.io, nftables, busybox-static, iptables,
# ca-certificates), checks the Go version, starts dockerd if no Docker daemon
# answers, builds a static bin/zonewarden and runs `bin/zonewarden demo` with
# the given arguments. A dockerd it started is stopped at the end, unless
# --keep is among the arguments (then it stays up with the demo).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ZW_REPO_ROOT"

zw_require_root "$@"

KEEP=0
for arg in "$@"; do
	case "$arg" in
	--keep | --keep=true) KEEP=1 ;;
	esac
done

finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$ZW_STARTED_DOCKERD" = 1 ] && [ "$KEEP" = 1 ]; then
		zw_log "--keep: leaving the dockerd it started running (pid $ZW_DOCKERD_PID, log $ZW_DOCKERD_LOG); stop it with: kill $ZW_DOCKERD_PID"
	else
		zw_stop_dockerd
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

zw_install_packages docker.io nftables busybox-static iptables ca-certificates
zw_require_go
zw_ensure_dockerd

zw_log "building bin/zonewarden"
buildflags=()
command -v git >/dev/null 2>&1 || buildflags+=(-buildvcs=false) # VCS stamping needs git
CGO_ENABLED=0 go build "${buildflags[@]}" -o bin/zonewarden ./cmd/zonewarden

bin/zonewarden demo "$@"
