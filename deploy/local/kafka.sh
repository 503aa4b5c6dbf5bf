#!/usr/bin/env bash
# Local Apache Kafka broker (KRaft, single node) from the jars on Maven Central.
#   kafka.sh install   fetch the pinned jars into $TOOLS_DIR (skipped when present)
#   kafka.sh start     format storage once, start on 127.0.0.1, wait until ready
#   kafka.sh stop      stop cleanly (SIGTERM, then wait)
#   kafka.sh status    print whether it runs and where its logs are
#   kafka.sh home      install, then print the folder whose lib/ holds the jars (for the test harness)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PID_FILE="$KAFKA_DATA/kafka.pid"
LOG_DIR="$KAFKA_DATA/logs"

install() {
  if [[ -f "$KAFKA_HOME/lib/kafka_2.13-$KAFKA_VERSION.jar" ]]; then return; fi
  command -v mvn >/dev/null || die "maven is needed to fetch the kafka jars (apt-get install maven)"
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central"
  local tmp="$KAFKA_HOME.partial"
  rm -rf "$tmp"
  mvn -B -q -f "$ROOT/deploy/local/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp/lib"
  mv "$tmp" "$KAFKA_HOME"
}

write_config() {
  mkdir -p "$KAFKA_DATA" "$LOG_DIR"
  cat >"$KAFKA_DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA/log
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.cleaner.enable=true
PROPS
}

JAVA=(java -Xms256m -Xmx1g -XX:+UseG1GC -Dkafka.logs.dir="$LOG_DIR"
  -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka/log4j2.yaml" -cp "$KAFKA_HOME/lib/*")

start() {
  install
  if pid_alive "$PID_FILE"; then log "kafka already running on $BOOTSTRAP"; return; fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process"
  write_config
  if [[ ! -f "$KAFKA_DATA/log/meta.properties" ]]; then
    log "formatting kafka storage in $KAFKA_DATA/log"
    "${JAVA[@]}" kafka.tools.StorageTool format -t "$("${JAVA[@]}" kafka.tools.StorageTool random-uuid)" \
      -c "$KAFKA_DATA/server.properties" >"$LOG_DIR/format.log" 2>&1 \
      || { cat "$LOG_DIR/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka $KAFKA_VERSION on $BOOTSTRAP (logs: $LOG_DIR)"
  nohup "${JAVA[@]}" kafka.Kafka "$KAFKA_DATA/server.properties" >"$LOG_DIR/stdout.log" 2>&1 &
  echo $! >"$PID_FILE"
  if ! wait_for "kafka on $BOOTSTRAP" 90 broker_ready; then
    tail -n 40 "$LOG_DIR/server.log" "$LOG_DIR/stdout.log" >&2 || true
    die "kafka did not become ready; logs are in $LOG_DIR"
  fi
}

broker_ready() {
  pid_alive "$PID_FILE" && port_open "$KAFKA_PORT" \
    && grep -q "Kafka Server started" "$LOG_DIR/server.log"
}

stop() { stop_pid kafka "$PID_FILE"; }

status() {
  if pid_alive "$PID_FILE"; then echo "kafka: running on $BOOTSTRAP, logs in $LOG_DIR"
  else echo "kafka: stopped"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  home) install; echo "$KAFKA_HOME" ;;
  *) die "usage: kafka.sh install|start|stop|status|home" ;;
esac
