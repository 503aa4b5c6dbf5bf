#!/usr/bin/env bash
# The bridge services against the local stack, each with its health port:
# order-ingest 8091, inventory-aggregator 8092, erp-writer 8093, reconciler 8094.
#   services.sh start | stop | status
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DIR="$DATA_DIR/services"
BIN_DIR="${BRIDGE_BIN_DIR:-$ROOT/target/debug}"
SERVICES=(order-ingest:8091 inventory-aggregator:8092 erp-writer:8093 reconciler:8094)

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null; }

start() {
  mkdir -p "$DIR"
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    if pid_alive "$DIR/$name.pid"; then continue; fi
    [[ -x "$BIN_DIR/$name" ]] || die "$BIN_DIR/$name is missing: run cargo build --bins first"
    BRIDGE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" BRIDGE__REGISTRY__URL="$REGISTRY_URL" \
      BRIDGE__HTTP__LISTEN="127.0.0.1:$port" nohup "$BIN_DIR/$name" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
  done
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    wait_for "$name (http://127.0.0.1:$port/readyz)" 60 ready "$port" \
      || { tail -n 20 "$DIR/$name.log" >&2; die "$name did not become ready; log: $DIR/$name.log"; }
  done
}

stop() {
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*}
    stop_pid "$name" "$DIR/$name.pid" &
  done
  wait
}

status() {
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    if pid_alive "$DIR/$name.pid"; then echo "$name: running, http://127.0.0.1:$port/metrics, log $DIR/$name.log"
    else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: services.sh start|stop|status" ;;
esac
