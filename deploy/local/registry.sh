#!/usr/bin/env bash
# The local-only Confluent-compatible schema registry (crates/schema-registry), state in
# the compacted `_schemas` topic of the local broker. In production point the services at
# the company's registry instead (see docs/decisions/schema-registry.md).
#   registry.sh start | stop | status
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DIR="$DATA_DIR/registry"
PID_FILE="$DIR/registry.pid"
BIN="${BRIDGE_BIN_DIR:-$ROOT/target/debug}/schema-registry"

registry_ready() { curl -fsS "$REGISTRY_URL/config" >/dev/null; }

start() {
  if pid_alive "$PID_FILE"; then log "registry already running on $REGISTRY_URL"; return; fi
  [[ -x "$BIN" ]] || die "$BIN is missing: run cargo build --bins first"
  port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by another process"
  mkdir -p "$DIR"
  log "starting schema registry on $REGISTRY_URL (log: $DIR/registry.log)"
  BRIDGE_LOG_FORMAT=text nohup "$BIN" --listen "127.0.0.1:$REGISTRY_PORT" --bootstrap-servers "$BOOTSTRAP" \
    >"$DIR/registry.log" 2>&1 &
  echo $! >"$PID_FILE"
  wait_for "schema registry on $REGISTRY_URL" 60 registry_ready \
    || { tail -n 20 "$DIR/registry.log" >&2; die "schema registry did not become ready; log: $DIR/registry.log"; }
}

stop() { stop_pid "schema registry" "$PID_FILE"; }

status() {
  if pid_alive "$PID_FILE"; then echo "registry: running on $REGISTRY_URL, log in $DIR/registry.log"
  else echo "registry: stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: registry.sh start|stop|status" ;;
esac
