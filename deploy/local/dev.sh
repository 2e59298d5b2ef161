#!/usr/bin/env bash
# One entry point for the README's two commands:
#
#   bash deploy/local/dev.sh demo    set everything up, start the local stack, run the drifting-stream demo
#   bash deploy/local/dev.sh test    set everything up, start the local stack, run the whole test suite
#
# Set-up is idempotent: a virtualenv in .venv with driftstream installed (editable, test extras), the Kafka
# jars from Maven Central (cached outside the repository), redis-server from Debian. The stack is stopped
# afterwards, also when the demo or a test fails; only processes this script started are stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VENV="${DRIFTSTREAM_VENV:-$REPO/.venv}"
cd "$REPO"

say() { echo "[dev] $*" >&2; }

setup() {
  local t0=$SECONDS
  command -v python3 >/dev/null 2>&1 || { echo "python3 (3.11+) is required" >&2; exit 1; }
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "Python 3.11+ is required, found $(python3 --version)" >&2; exit 1; }
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV" || { echo "python3 -m venv failed (Debian: apt-get install -y python3-venv)" >&2; exit 1; }
  fi
  local stamp="$VENV/.driftstream-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing driftstream and its dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    "$VENV/bin/pip" install -q -e ".[test]" >&2
    touch "$stamp"
  fi
  PYTHON="$VENV/bin/python" bash "$HERE/stack.sh" install
  say "set-up done in $((SECONDS - t0)) s"
}

install_test_tools() {
  # promtool checks and unit-tests the Prometheus alert rules (Debian's prometheus package)
  if ! command -v promtool >/dev/null 2>&1; then
    say "installing promtool (Debian package prometheus)"
    local SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >&2
  fi
}

start_stack() {
  trap 'bash "$HERE/stack.sh" stop' EXIT
  PYTHON="$VENV/bin/python" bash "$HERE/stack.sh" start
  eval "$(bash "$HERE/stack.sh" env)"
  export DRIFTSTREAM_STACK_STARTED=1
}

cmd="${1:-}"; shift || true
case "$cmd" in
  setup) setup ;;
  demo)
    setup; start_stack
    "$VENV/bin/driftstream" demo "$@" ;;
  test)
    setup; install_test_tools; start_stack
    t0=$SECONDS
    rc=0
    "$VENV/bin/python" -m pytest tests "$@" || rc=$?
    say "tests took $((SECONDS - t0)) s (exit $rc)"
    exit $rc ;;
  *) echo "usage: $0 demo|test|setup [args...]" >&2; exit 2 ;;
esac
