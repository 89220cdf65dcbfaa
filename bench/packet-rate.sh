#!/usr/bin/env bash
# Per-packet cost of enforcement (issue 5): the rate of new TCP connections
# forwarded between two network namespaces through a router namespace, with
# no rules, with zonewarden's compiled ruleset (loaded with nflink) and with the seed's
# linear iptables chain, at 10, 10,000 and 100,000 allowed flows. Touches
# nothing of the host: it builds its own namespaces (198.18.0.0/15) and
# removes them, also on Ctrl-C. See bench/README.md.
#
#   bench/packet-rate.sh [-flows 10,10000,100000 -duration 5s -reps 3 ...]
#
# Builds as the calling user, runs as root (through sudo when needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
CGO_ENABLED=0 go build -o bin/packet-rate ./bench/packet-rate
if [ "$(id -u)" -ne 0 ]; then
	exec sudo bin/packet-rate "$@"
fi
exec bin/packet-rate "$@"
