#!/usr/bin/env bash
# Install everything, bring up a real Kafka broker, the topics, a remarket worker and the traffic
# simulator, and watch customer state (and actions) change. Ctrl-C stops everything it started.
#   scripts/demo.sh                       # runs until Ctrl-C
#   REMARKET_DEMO_SECONDS=90 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_common.sh
ensure_venv

demo_dir=var/demo
mkdir -p "$demo_dir"
pids=()
started_broker=""
cleanup() {
  trap - EXIT INT TERM
  echo; echo "==> stopping the demo"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "$started_broker" ] && "$PY" deploy/kafka/local_broker.py stop --dir var/kafka >/dev/null || true
  echo "logs: $demo_dir/worker.log, $demo_dir/simulate.log"
}
trap cleanup EXIT INT TERM

if [ -z "${REMARKET_KAFKA_BOOTSTRAP:-}" ]; then
  echo "==> starting a local Kafka broker (KRaft, from Maven Central jars)"
  REMARKET_KAFKA_BOOTSTRAP=$("$PY" deploy/kafka/local_broker.py start --dir var/kafka)
  started_broker=yes
fi
export REMARKET_KAFKA_BOOTSTRAP
export REMARKET_POLICY_FILE=${REMARKET_POLICY_FILE:-deploy/policy.demo.toml}
export REMARKET_DATA_DIR=${REMARKET_DATA_DIR:-$demo_dir/state}
export REMARKET_WEB_PORT=${REMARKET_WEB_PORT:-6066}
export REMARKET_LOOKUP_TOKEN=${REMARKET_LOOKUP_TOKEN:-demo}
echo "==> broker at $REMARKET_KAFKA_BOOTSTRAP; policy $REMARKET_POLICY_FILE"

echo "==> creating topics"
.venv/bin/remarket topics apply

echo "==> starting the worker (web, /metrics on :$REMARKET_WEB_PORT; log $demo_dir/worker.log)"
.venv/bin/remarket worker >"$demo_dir/worker.log" 2>&1 &
pids+=($!)
"$PY" scripts/demo_watch.py --wait-ready --log "$demo_dir/worker.log"

echo "==> starting the simulator (history, then live traffic; log $demo_dir/simulate.log)"
.venv/bin/remarket simulate --customers "${REMARKET_DEMO_CUSTOMERS:-300}" --rate "${REMARKET_DEMO_RATE:-25}" \
  --duration "${REMARKET_DEMO_SECONDS:-3600}" >"$demo_dir/simulate.log" 2>&1 &
pids+=($!)

"$PY" scripts/demo_watch.py --seconds "${REMARKET_DEMO_SECONDS:-0}"
