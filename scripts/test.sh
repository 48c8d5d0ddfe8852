#!/usr/bin/env bash
# Install everything and run the whole test suite against a real Apache Kafka broker.
#   scripts/test.sh                 # all tests
#   scripts/test.sh tests/unit -k x # any pytest arguments
# Uses REMARKET_KAFKA_BOOTSTRAP when set; otherwise starts a private local broker and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_common.sh
ensure_venv
ensure_prometheus

if [ -z "${REMARKET_KAFKA_BOOTSTRAP:-}" ]; then
  run_dir=$(mktemp -d -t remarket-test-kafka.XXXXXX)
  cleanup() { "$PY" deploy/kafka/local_broker.py stop --dir "$run_dir" >/dev/null || true; rm -rf "$run_dir"; }
  trap cleanup EXIT
  echo "==> starting a local Kafka broker (KRaft) for the tests"
  REMARKET_KAFKA_BOOTSTRAP=$("$PY" deploy/kafka/local_broker.py start --dir "$run_dir")
  export REMARKET_KAFKA_BOOTSTRAP
  echo "==> broker at $REMARKET_KAFKA_BOOTSTRAP"
fi

set +e
"$PY" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  status=1
fi
exit "$status"
