#!/usr/bin/env bash
# Measures zonewarden agent on the local Docker engine (issue 7): admission
# latency with 1, 100 and 1,000 containers running, the full reconcile,
# the agent's memory, and convergence after kill -9. Builds its own host and
# removes it afterwards. Run as root:
#   sudo bench/agent.sh [-sizes 1,100,1000 -starts 50]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/zonewarden ./cmd/zonewarden
exec go run ./bench/agentbench -bin bin/zonewarden "$@"
