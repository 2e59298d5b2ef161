#!/usr/bin/env bash
# The local stack: a real Apache Kafka broker (KRaft, single node) and a real redis-server on loopback.
#
#   deploy/local/stack.sh install   install what is missing (Java 17+, Maven while the jars are not cached,
#                                   redis-server: see prereqs.sh), fetch the Kafka jars from Maven Central (cached)
#   deploy/local/stack.sh start     start both (idempotent: reuses what is already running from this run dir)
#   deploy/local/stack.sh stop      stop only the processes this script started (pid files)
#   deploy/local/stack.sh status    print what runs
#   deploy/local/stack.sh env       print the environment variables that point driftstream at the stack
#
# Settings (environment): DRIFTSTREAM_CACHE (jar cache, default ~/.cache/driftstream),
# DRIFTSTREAM_RUN_DIR (data, logs, pid files; default <repo>/.run), DRIFTSTREAM_KAFKA_PORT (31092),
# DRIFTSTREAM_KAFKA_CONTROLLER_PORT (31093), DRIFTSTREAM_REDIS_PORT (31379), DRIFTSTREAM_STACK_TIMEOUT (90 s).
# The default ports lie below Linux's ephemeral range (32768-60999), where a loopback client connection can
# hold a port the broker is about to bind. A port set in the environment is used as it is (start fails with a
# clear error when it is taken); a default port that is taken is replaced by the next free one below 32768,
# recorded in <run dir>/ports, which `env` and `status` read until `stop`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=prereqs.sh
. "$HERE/prereqs.sh"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")"
CACHE="${DRIFTSTREAM_CACHE:-$HOME/.cache/driftstream}"
LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"
RUN_DIR="${DRIFTSTREAM_RUN_DIR:-$REPO/.run}"
PORTS_FILE="$RUN_DIR/ports"
saved_port() { [ -f "$PORTS_FILE" ] && sed -n "s/^$1=//p" "$PORTS_FILE" || true; }
KAFKA_PORT="${DRIFTSTREAM_KAFKA_PORT:-$(saved_port KAFKA_PORT)}"; KAFKA_PORT="${KAFKA_PORT:-31092}"
CTL_PORT="${DRIFTSTREAM_KAFKA_CONTROLLER_PORT:-$(saved_port CTL_PORT)}"; CTL_PORT="${CTL_PORT:-31093}"
REDIS_PORT="${DRIFTSTREAM_REDIS_PORT:-$(saved_port REDIS_PORT)}"; REDIS_PORT="${REDIS_PORT:-31379}"
TIMEOUT="${DRIFTSTREAM_STACK_TIMEOUT:-90}"
KAFKA_DIR="$RUN_DIR/kafka"
REDIS_DIR="$RUN_DIR/redis"

say() { echo "[stack] $*" >&2; }
die() { echo "[stack] ERROR: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port is taken when a listening socket can not bind it (with SO_REUSEADDR, as the broker and Redis bind):
# a listener, or a connection's local end (a loopback client); accepting connections alone misses the latter.
port_taken() {
  if command -v python3 >/dev/null 2>&1; then
    ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
  else
    port_open "$1"
  fi
}

who_holds() { command -v ss >/dev/null 2>&1 && ss -tanp 2>/dev/null | grep -E "[:.]$1 " | head -n 3 >&2 || true; }

# pick_port VAR ENVNAME: keep $VAR when it is free; when it is taken, fail if the user set it, else move to the
# next free port (steps of 10, below 32768) and record it in $PORTS_FILE
pick_port() {
  local var="$1" envname="$2" port="${!1}" tries=0
  port_taken "$port" || return 0
  if [ -n "${!envname:-}" ]; then
    who_holds "$port"
    die "port $port is taken by another process; set $envname to a free port"
  fi
  while port_taken "$port"; do
    tries=$((tries + 1)); port=$((port + 10))
    { [ $tries -lt 100 ] && [ "$port" -lt 32768 ]; } || die "no free port found near ${!var} for $envname; set it"
  done
  say "port ${!var} is taken; using $port instead (recorded in $PORTS_FILE)"
  printf -v "$var" '%s' "$port"
  mkdir -p "$RUN_DIR"
  { grep -v "^$var=" "$PORTS_FILE" 2>/dev/null || true; echo "$var=$port"; } > "$PORTS_FILE.tmp"
  mv "$PORTS_FILE.tmp" "$PORTS_FILE"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

need_java() {
  command -v java >/dev/null 2>&1 || die "Java is missing: run '$0 install' (or install a Java 17+ runtime)"
}

install_prereqs() {
  want_java
  [ -f "$LIBS/.complete" ] || want_maven
  want_redis
  install_wanted
}

install_kafka() {
  if [ -f "$LIBS/.complete" ]; then
    say "Kafka $KAFKA_VERSION jars cached in $LIBS"
    return
  fi
  need_java
  command -v mvn >/dev/null 2>&1 || die "Maven is missing (needed once to fetch the Kafka jars): run '$0 install'"
  say "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $LIBS"
  rm -rf "$LIBS" && mkdir -p "$LIBS"
  mvn -q -B -f "$HERE/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "mvn could not fetch the Kafka jars (see output above)"
  ls "$LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "kafka_2.13 jar missing after mvn run"
  touch "$LIBS/.complete"
}

show_redis() {
  # (installed by install_prereqs; Debian starts a system redis on 6379 then: we never use it, ours is $REDIS_PORT)
  say "redis-server present: $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
}

write_kafka_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat > "$KAFKA_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTL_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CTL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=8
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
EOF
  cat > "$KAFKA_DIR/log4j2.properties" <<EOF
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $KAFKA_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
EOF
}

start_kafka() {
  if pid_alive "$KAFKA_DIR/kafka.pid"; then
    # running, or still starting (a broker with many partitions takes a while): never start a second one
    say "Kafka already running (pid $(cat "$KAFKA_DIR/kafka.pid")) on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  need_java
  [ -f "$LIBS/.complete" ] || die "Kafka jars not installed; run: $0 install"
  pick_port KAFKA_PORT DRIFTSTREAM_KAFKA_PORT
  pick_port CTL_PORT DRIFTSTREAM_KAFKA_CONTROLLER_PORT
  write_kafka_config
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cid
    cid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [ -n "$cid" ] || die "kafka.tools.StorageTool random-uuid failed"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
      kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_DIR/server.properties" --ignore-formatted \
      > "$KAFKA_DIR/format.log" 2>&1 || { cat "$KAFKA_DIR/format.log" >&2; die "formatting the KRaft storage failed"; }
  fi
  say "starting Kafka $KAFKA_VERSION (KRaft) on 127.0.0.1:$KAFKA_PORT"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    > "$KAFKA_DIR/stdout.log" 2>&1 &
  echo $! > "$KAFKA_DIR/kafka.pid"
}

start_redis() {
  if pid_alive "$REDIS_DIR/redis.pid"; then
    say "Redis already running (pid $(cat "$REDIS_DIR/redis.pid")) on 127.0.0.1:$REDIS_PORT"
    return
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server not installed; run: $0 install"
  pick_port REDIS_PORT DRIFTSTREAM_REDIS_PORT
  mkdir -p "$REDIS_DIR"
  say "starting redis-server on 127.0.0.1:$REDIS_PORT (AOF, appendfsync everysec)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --appendonly yes --appendfsync everysec --save "" \
    --daemonize yes --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    || die "redis-server failed to start; see $REDIS_DIR/redis.log"
}

wait_ready() {
  local py="${PYTHON:-}" deadline=$((SECONDS + TIMEOUT))
  # the readiness probe is an admin request through confluent-kafka: use the project's venv if there is one
  if [ -z "$py" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then py="$REPO/.venv/bin/python"; else py=python3; fi
  fi
  "$py" -c "import confluent_kafka" 2>/dev/null \
    || die "$py cannot import confluent_kafka (needed to probe Kafka); run deploy/local/dev.sh setup or set PYTHON"
  until port_open "$REDIS_PORT" && [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; do
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$REDIS_DIR/redis.log" >&2 || true; die "Redis did not answer PING on 127.0.0.1:$REDIS_PORT within ${TIMEOUT}s"; }
    sleep 0.2
  done
  say "Redis answers PING"
  until "$py" - "$KAFKA_PORT" <<'EOF' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "log_level": 0})
a.list_topics(timeout=2)
EOF
  do
    if ! pid_alive "$KAFKA_DIR/kafka.pid"; then
      tail -n 30 "$KAFKA_DIR/stdout.log" "$KAFKA_DIR/server.log" >&2 2>/dev/null || true
      if grep -q "BindException" "$KAFKA_DIR/server.log" 2>/dev/null; then
        who_holds "$KAFKA_PORT"; who_holds "$CTL_PORT"
        die "the Kafka broker could not bind 127.0.0.1:$KAFKA_PORT or :$CTL_PORT (taken after the check; holders above, if any)"
      fi
      die "the Kafka broker exited during start-up (log tail above)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$KAFKA_DIR/server.log" >&2 2>/dev/null || true
      die "Kafka did not answer an admin request on 127.0.0.1:$KAFKA_PORT within ${TIMEOUT}s (log tail above)"
    fi
    sleep 0.5
  done
  say "Kafka answers admin requests"
  # A new broker creates __consumer_offsets and loads its group coordinator when the first group asks for it,
  # ~3 s that would fall on the first consumer's join (the demo's, a test's): ask for it now. An offset
  # look-up of a group finds its coordinator, waiting while the broker answers "coordinator not available"
  # or "load in progress".
  if "$py" - "$KAFKA_PORT" <<'EOF' 2>/dev/null
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}", "group.id": "driftstream-stack-ready", "log_level": 0})
c.committed([TopicPartition("driftstream-stack-ready", 0)], timeout=30)
c.close()
EOF
  then
    say "Kafka's group coordinator is ready"
  else
    say "WARNING: Kafka's group coordinator did not answer within 30 s (the first group join will wait for it)"
  fi
}

stop_pid() {
  local name="$1" pidfile="$2"
  if pid_alive "$pidfile"; then
    local pid; pid="$(cat "$pidfile")"
    say "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd="${1:-}"
case "$cmd" in
  install) install_prereqs; install_kafka; show_redis ;;
  prereqs) install_prereqs ;;
  start) start_redis; start_kafka; wait_ready ;;
  stop) stop_pid kafka "$KAFKA_DIR/kafka.pid"; stop_pid redis "$REDIS_DIR/redis.pid"; rm -f "$PORTS_FILE" ;;
  clean) stop_pid kafka "$KAFKA_DIR/kafka.pid"; stop_pid redis "$REDIS_DIR/redis.pid"; rm -rf "$KAFKA_DIR" "$REDIS_DIR" "$PORTS_FILE" ;;
  status)
    pid_alive "$KAFKA_DIR/kafka.pid" && echo "kafka: running pid $(cat "$KAFKA_DIR/kafka.pid") 127.0.0.1:$KAFKA_PORT" || echo "kafka: stopped"
    pid_alive "$REDIS_DIR/redis.pid" && echo "redis: running pid $(cat "$REDIS_DIR/redis.pid") 127.0.0.1:$REDIS_PORT" || echo "redis: stopped" ;;
  env)
    echo "export DRIFTSTREAM_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT"
    echo "export DRIFTSTREAM_REDIS__URL=redis://127.0.0.1:$REDIS_PORT/0" ;;
  *) echo "usage: $0 install|prereqs|start|stop|clean|status|env" >&2; exit 2 ;;
esac
