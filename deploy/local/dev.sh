#!/usr/bin/env bash
# One entry point for the README's two commands:
#
#   bash deploy/local/dev.sh demo    set everything up, start the local stack, run the drifting-stream demo
#   bash deploy/local/dev.sh test    set everything up, start the local stack, run the whole test suite
#   bash deploy/local/dev.sh setup   only the set-up
#
# Set-up is idempotent: what is missing on the machine is installed first (python3-venv, Java 17+, Maven,
# redis-server; apt-get, through sudo when not root; see prereqs.sh), then a virtualenv in .venv with
# driftstream installed (editable, test extras) and its compiled detector kernels cached, the Kafka jars from
# Maven Central (cached outside the repository). The stack is stopped afterwards, also when the demo or a
# test fails; only processes this script started are stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=prereqs.sh
. "$HERE/prereqs.sh"
VENV="${DRIFTSTREAM_VENV:-$REPO/.venv}"
cd "$REPO"

say() { echo "[dev] $*" >&2; }

python_prereqs() {
  [ -x "$VENV/bin/python" ] || want_python_venv
  install_wanted
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || prereq_fail "Python 3.11+ is required, found $(python3 --version 2>&1) at $(command -v python3): install" \
      "python3.11 or later (Debian 12+, Ubuntu 24.04+ have it as python3) and put it first on PATH"
}

setup() {
  local t0=$SECONDS
  python_prereqs
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV" || prereq_fail "'python3 -m venv $VENV' failed (output above)"
  fi
  local stamp="$VENV/.driftstream-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing driftstream and its dependencies into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    "$VENV/bin/pip" install -q -e ".[test]" >&2
    touch "$stamp"
  fi
  # numba compiles the detectors' kernels on their first use, ~10 s, and caches them next to the sources: do
  # it here, so that the first demo or `driftstream run` starts in about a second instead (~0.5 s once cached)
  "$VENV/bin/python" -c 'import detectors, stream.learner; detectors.warm_up(); stream.learner.warm_up()' \
    || prereq_fail "compiling the detector kernels failed (output above)"
  PYTHON="$VENV/bin/python" bash "$HERE/stack.sh" install
  say "set-up done in $((SECONDS - t0)) s"
}

install_test_tools() {
  # promtool checks and unit-tests the Prometheus alert rules (Debian's prometheus package)
  want_promtool
  install_wanted
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
  prereqs)  # only the system packages (Python venv, Java, Maven, Redis): what the set-up test runs
    python_prereqs; bash "$HERE/stack.sh" prereqs ;;
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
  *) echo "usage: $0 demo|test|setup|prereqs [args...]" >&2; exit 2 ;;
esac
