#!/usr/bin/env bash
# Times `zonewarden verify` on a host of 100 running containers on 5
# networks (label zonewarden.bench=verify), with --sample so that about
# 2,000 probes run, then removes everything. Run as root after
# `CGO_ENABLED=0 go build -o bin/zonewarden ./cmd/zonewarden` and one
# `zonewarden demo` (for the FROM-scratch image zonewarden-demo/devbox).
#   sudo bench/verify-100.sh [bin/zonewarden]
set -euo pipefail
BIN=${1:-bin/zonewarden}
LABEL=zonewarden.bench=verify
cleanup() {
	docker rm -f $(docker ps -aq --filter label=$LABEL) >/dev/null 2>&1 || true
	docker network prune -f --filter label=$LABEL >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
for n in 0 1 2 3 4; do docker network create --label $LABEL zwbench-$$-v$n >/dev/null; done
IMAGE=zonewarden-demo/devbox:latest
case "$(docker image inspect --format '{{json .Config.Cmd}}' $IMAGE)" in
*sleep*) ARGS=(/sleep 2147483647) ;;  # busybox as /sleep
*) ARGS=(/payload idle) ;;      # a static zonewarden as /payload
esac
for i in $(seq 0 99); do
	docker run -d --label $LABEL --network zwbench-$$-v$((i % 5)) --name zwbench-$$-c$i $IMAGE "${ARGS[@]}" >/dev/null
done
echo "100 containers up; verifying"
start=$(date +%s.%N)
"$BIN" verify --label $LABEL --sample 2000 --format json >/tmp/verify-100.json || true
end=$(date +%s.%N)
python3 - "$start" "$end" <<'PY'
import json, sys
d = json.load(open('/tmp/verify-100.json'))
probes = sum(len(r['probes']) for r in d['results'])
print(f"{len(d['results'])} keys, {probes} probes, {d['summary']['mismatches']} mismatches in {float(sys.argv[2]) - float(sys.argv[1]):.2f} s")
PY
