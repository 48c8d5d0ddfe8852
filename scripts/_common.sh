# Shared by scripts/*.sh: find Python >= 3.11, make .venv, install remarket with test extras.
# Sourced, not run. Sets $PY to the venv's python.

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "remarket needs Python 3.11+ (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

ensure_venv() {
  local base
  base=$(find_python) || exit 1
  for tool in java mvn; do
    command -v "$tool" >/dev/null 2>&1 || { echo "remarket's local Kafka needs '$tool' (Java 17+ and Maven)" >&2; exit 1; }
  done
  if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $base"
    "$base" -m venv .venv
  fi
  PY=.venv/bin/python
  # a stamp keyed on pyproject.toml: reinstall only when dependencies change
  local stamp=.venv/.remarket-installed
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "==> installing remarket and its dependencies into .venv"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e '.[test]'
    touch "$stamp"
  fi
  echo "==> resolving the Apache Kafka broker jars (cached in ~/.cache/remarket)"
  "$PY" deploy/kafka/local_broker.py fetch >/dev/null
}

# promtool and prometheus for tests/ops and the real-Prometheus test (Debian package `prometheus`).
# Installed only when missing and we are root with apt-get; otherwise those tests skip (fail in CI).
ensure_prometheus() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing prometheus and promtool (apt-get install prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 ||
      echo "could not install prometheus: the Prometheus tests will skip (and fail in CI)" >&2
  else
    echo "prometheus/promtool missing (apt-get install prometheus): those tests will skip" >&2
  fi
}
