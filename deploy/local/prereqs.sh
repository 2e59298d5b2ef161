# System packages the local stack and the virtualenv need, installed when missing (sourced by dev.sh and
# stack.sh; not run on its own).
#
# What is checked, and the Debian/Ubuntu package installed when it is missing:
#   python3 3.11+ with its venv module   python3, python3-venv       (dev.sh)
#   java 17+ (runs the Kafka broker)     openjdk-21-jre-headless, else openjdk-17-jre-headless
#   mvn (fetches the Kafka jars once)    maven                        (only while the jars are not cached)
#   redis-server and redis-cli           redis-server
#   promtool (tests of the alert rules)  prometheus                   (dev.sh test)
#
# Packages come from apt-get, run directly as root and through sudo otherwise. Where that is impossible (no
# apt-get; not root and no sudo; apt-get fails) the set-up stops and says exactly what to install. Everything
# missing is installed in one apt-get run.

PREREQ_WANT=()      # Debian packages to install
PREREQ_MISSING=()   # what they are for, in words
PREREQ_CHECKS=()    # "command|what" to verify after the install

prereq_say() { echo "[setup] $*" >&2; }

prereq_fail() {
  echo "[setup] ERROR: $*" >&2
  exit 1
}

# Major Java version of `java` on PATH ("1.8.0_x" -> 8, "17.0.15" -> 17), empty when there is none.
java_major() {
  command -v java >/dev/null 2>&1 || return 0
  java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -n1 \
    | awk -F. '{ print ($1 == "1") ? $2 : $1 }'
}

# The first Java 17+ runtime package the apt lists know (Debian 12 has 17, Debian 13 only 21).
java_package() {
  local p
  for p in openjdk-21-jre-headless openjdk-17-jre-headless; do
    if apt-cache show "$p" >/dev/null 2>&1; then echo "$p"; return; fi
  done
  echo openjdk-17-jre-headless
}

# want PACKAGE WHAT CHECK...: note that PACKAGE provides the commands CHECK (verified after the install)
want() {
  local pkg="$1" what="$2"; shift 2
  PREREQ_WANT+=("$pkg")
  PREREQ_MISSING+=("$what")
  local c
  for c in "$@"; do PREREQ_CHECKS+=("$c|$what"); done
}

want_python_venv() {
  if ! command -v python3 >/dev/null 2>&1; then
    want python3 "Python 3.11+ (python3)" python3
    want python3-venv "the venv module of Python (python3-venv)"
  elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    # Debian splits venv's pip bootstrap out of python3: `python3 -m venv` fails without it
    want python3-venv "the venv module of Python (python3-venv)"
  fi
}

want_java() {
  local major
  major="$(java_major)"
  if [ -z "$major" ]; then
    want JAVA "Java 17+ (java), for the Kafka broker" java
  elif [ "$major" -lt 17 ]; then
    prereq_say "java on PATH is Java $major; the Kafka broker needs 17+"
    want JAVA "Java 17+ (java $major is too old), for the Kafka broker" java
  fi
}

want_maven() {
  command -v mvn >/dev/null 2>&1 || want maven "Maven (mvn), to fetch the Kafka jars once" mvn
}

want_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 \
    || want redis-server "Redis 7+ (redis-server, redis-cli)" redis-server redis-cli
}

want_promtool() {
  command -v promtool >/dev/null 2>&1 || want prometheus "promtool (Debian package prometheus), for the alert rule tests" promtool
}

# Install everything noted with `want`, or stop with the exact list of what to install by hand.
install_wanted() {
  [ "${#PREREQ_WANT[@]}" -gt 0 ] || return 0
  local missing sudo="" pkgs=() p
  missing="$(printf '%s; ' "${PREREQ_MISSING[@]}")"
  missing="${missing%; }"
  if ! command -v apt-get >/dev/null 2>&1; then
    prereq_fail "missing: $missing. There is no apt-get here to install it: install these with your system's" \
      "package manager (Java 17+ runtime, Maven, Redis 7+, Python 3.11+ with venv, as listed), then run this again."
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      for p in "${PREREQ_WANT[@]}"; do
        [ "$p" = JAVA ] && pkgs+=("$(java_package)") || pkgs+=("$p")
      done
      prereq_fail "missing: $missing. This user is not root and sudo is not available: as root, run" \
        "'apt-get update && apt-get install -y ${pkgs[*]}', then run this again."
    fi
  fi
  prereq_say "missing: $missing; installing with ${sudo:+sudo }apt-get"
  if [ -z "${PREREQ_APT_UPDATED:-}" ]; then  # once per set-up (dev.sh runs stack.sh, which may install more)
    $sudo apt-get update -qq >&2 || prereq_fail "'${sudo:+sudo }apt-get update' failed (output above); install by hand: $missing"
    export PREREQ_APT_UPDATED=1
  fi
  for p in "${PREREQ_WANT[@]}"; do
    [ "$p" = JAVA ] && pkgs+=("$(java_package)") || pkgs+=("$p")
  done
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2 \
    || prereq_fail "'${sudo:+sudo }apt-get install -y ${pkgs[*]}' failed (output above); install these by hand: $missing"
  hash -r
  local check cmd what
  for check in "${PREREQ_CHECKS[@]}"; do
    cmd="${check%%|*}"; what="${check#*|}"
    command -v "$cmd" >/dev/null 2>&1 || prereq_fail "installed ${pkgs[*]} but '$cmd' is still not on PATH; install $what by hand"
  done
  if [[ " ${PREREQ_WANT[*]} " == *" JAVA "* ]] && [ "$(java_major)" -lt 17 ]; then
    prereq_fail "installed ${pkgs[*]} but 'java' on PATH is still Java $(java_major): put a Java 17+ first on PATH" \
      "(e.g. update-alternatives --config java)"
  fi
  if [[ " ${PREREQ_WANT[*]} " == *" python3-venv "* ]] && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    prereq_fail "installed python3-venv but python3 ($(command -v python3)) still has no venv module: install the" \
      "venv package of that Python (e.g. python3.11-venv)"
  fi
  PREREQ_WANT=(); PREREQ_MISSING=(); PREREQ_CHECKS=()
  prereq_say "installed ${pkgs[*]}"
}
