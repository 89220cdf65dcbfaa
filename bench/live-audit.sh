#!/usr/bin/env bash
# Times a live audit of a host with many containers (default: 1,000
# containers on 100 networks) on the local Docker engine, and removes the
# host afterwards. Run as root:  sudo bench/live-audit.sh [-containers N -networks M]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/zonewarden ./cmd/zonewarden
exec go run ./bench/liveaudit -bin bin/zonewarden "$@"
