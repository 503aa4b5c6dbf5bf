#!/usr/bin/env bash
# The bridge services against the local stack, each with its health port:
# order-ingest 8091, inventory-aggregator 8092, erp-writer 8093, reconciler 8094,
# magento-writer 8095 (ERP verdicts back to the sim as order comments; the reconciler's
# `POST /reconcile` on 8096, `bridgectl reconcile`);
# magento-sim on 8090 places orders and delivers signed I/O events to order-ingest's
# webhook receiver on 8089 (order-ingest also polls the sim's REST API); erp-sim on 8070
# is the ERP erp-writer books the orders in (faults: deploy/config/erp-sim-demo.toml).
#   services.sh start | stop | status | fresh
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DIR="$DATA_DIR/services"
BIN_DIR="${BRIDGE_BIN_DIR:-$ROOT/target/debug}"
SERVICES=(order-ingest:8091 inventory-aggregator:8092 erp-writer:8093 reconciler:8094 magento-writer:8095)
SIM_PORT="${BRIDGE_SIM_PORT:-8090}"
WEBHOOK_PORT="${BRIDGE_WEBHOOK_PORT:-8089}"
SIM_URL="http://127.0.0.1:$SIM_PORT"
ERP_PORT="${BRIDGE_ERP_PORT:-8070}"
ERP_URL="http://127.0.0.1:$ERP_PORT"

# Extra settings of one service (as BRIDGE__ variables).
service_env() {
  case "$1" in
    order-ingest) echo "BRIDGE__INGEST__MAGENTO__BASE_URL=$SIM_URL" \
      "BRIDGE__INGEST__WEBHOOK__LISTEN=127.0.0.1:$WEBHOOK_PORT" \
      "BRIDGE__INGEST__WEBHOOK__KEY_BASE_URL=$SIM_URL/sim" \
      'BRIDGE__INGEST__WEBHOOK__KEY_HOSTS=["127.0.0.1"]' \
      "BRIDGE__INGEST__WEBHOOK__CLIENT_ID=magento-erp-bridge" \
      "BRIDGE__INGEST__POLL__INTERVAL_MS=5000" \
      "BRIDGE__PROCESSOR__STATE_DIR=$DIR/order-ingest-state" ;;
    # Demo windows of one minute (the default is five), so stock adjustments show up soon.
    inventory-aggregator) echo "BRIDGE__AGGREGATOR__WINDOW_MS=60000" \
      "BRIDGE__AGGREGATOR__GRACE_MS=10000" \
      "BRIDGE__PROCESSOR__STATE_DIR=$DIR/inventory-aggregator-state" ;;
    erp-writer) echo "BRIDGE__WRITER__ERP__BASE_URL=$ERP_URL" \
      "BRIDGE__WRITER__MAPPING_FILE=$ROOT/deploy/config/mapping.toml" \
      "BRIDGE__WRITER__RESYNC__ENABLED=true" \
      "BRIDGE__WRITER__RESYNC__MAGENTO__BASE_URL=$SIM_URL" \
      "BRIDGE__PROCESSOR__STATE_DIR=$DIR/erp-writer-state" ;;
    # Stabilization profile: a run every minute, orders compared once settled for two.
    # Stock is not compared in the demo: erp-sim starts with no stock, and the ERP owns
    # stock, so the reconciler would rightly set every Magento quantity to zero.
    reconciler) echo "BRIDGE__RECONCILER__PROFILE=stabilization" \
      "BRIDGE__RECONCILER__MAPPING_FILE=$ROOT/deploy/config/mapping.toml" \
      "BRIDGE__RECONCILER__ERP__BASE_URL=$ERP_URL" \
      "BRIDGE__RECONCILER__MAGENTO__BASE_URL=$SIM_URL" \
      "BRIDGE__RECONCILER__STOCK__ENABLED=false" \
      "BRIDGE__RECONCILER__CONTROL_LISTEN=127.0.0.1:8096" \
      "BRIDGE__RECONCILER__CONTROL_ALLOW_UNAUTHENTICATED=true" \
      "BRIDGE__PROCESSOR__STATE_DIR=$DIR/reconciler-state" ;;
    magento-writer) echo "BRIDGE__WRITER__MAGENTO__BASE_URL=$SIM_URL" \
      "BRIDGE__WRITER__REJECTED_STATUS=holded" \
      "BRIDGE__WRITER__RESYNC__ENABLED=true" \
      "BRIDGE__PROCESSOR__STATE_DIR=$DIR/magento-writer-state" ;;
  esac
}

start_sim() {
  if pid_alive "$DIR/magento-sim.pid"; then return; fi
  [[ -x "$BIN_DIR/magento-sim" ]] || die "$BIN_DIR/magento-sim is missing: run cargo build --bins first"
  nohup "$BIN_DIR/magento-sim" --listen "127.0.0.1:$SIM_PORT" \
    --webhook-url "http://127.0.0.1:$WEBHOOK_PORT/webhooks/adobe-io" \
    --orders-per-second "${BRIDGE_SIM_RATE:-1}" --retry-first-seconds 5 --retry-cap-seconds 60 \
    >"$DIR/magento-sim.log" 2>&1 &
  echo $! >"$DIR/magento-sim.pid"
  wait_for "magento-sim ($SIM_URL)" 60 curl -fsS "$SIM_URL/sim/stats" \
    || { tail -n 20 "$DIR/magento-sim.log" >&2; die "magento-sim did not start; log: $DIR/magento-sim.log"; }
}

start_erp_sim() {
  if pid_alive "$DIR/erp-sim.pid"; then return; fi
  [[ -x "$BIN_DIR/erp-sim" ]] || die "$BIN_DIR/erp-sim is missing: run cargo build --bins first"
  nohup "$BIN_DIR/erp-sim" --listen "127.0.0.1:$ERP_PORT" \
    --faults "${BRIDGE_ERP_FAULTS:-$ROOT/deploy/config/erp-sim-demo.toml}" \
    --rules "${BRIDGE_ERP_RULES:-$ROOT/deploy/config/erp-sim-demo-rules.toml}" \
    >"$DIR/erp-sim.log" 2>&1 &
  echo $! >"$DIR/erp-sim.pid"
  wait_for "erp-sim ($ERP_URL)" 60 curl -fsS "$ERP_URL/admin/stats" \
    || { tail -n 20 "$DIR/erp-sim.log" >&2; die "erp-sim did not start; log: $DIR/erp-sim.log"; }
}

# Spans to the local Jaeger when it runs (`make up` starts it first).
trace_env() {
  if port_open "$JAEGER_OTLP_HTTP_PORT"; then
    echo "OTEL_EXPORTER_OTLP_ENDPOINT=$OTLP_HTTP_URL" "OTEL_BSP_SCHEDULE_DELAY=1000"
  fi
}

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null; }

start() {
  mkdir -p "$DIR"
  "$BIN_DIR/bridgectl" --bootstrap-servers "$BOOTSTRAP" create-topics >/dev/null \
    || die "could not create the event topics"
  start_erp_sim
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    if pid_alive "$DIR/$name.pid"; then continue; fi
    [[ -x "$BIN_DIR/$name" ]] || die "$BIN_DIR/$name is missing: run cargo build --bins first"
    # shellcheck disable=SC2046
    env BRIDGE__KAFKA__BOOTSTRAP_SERVERS="$BOOTSTRAP" BRIDGE__REGISTRY__URL="$REGISTRY_URL" \
      BRIDGE__HTTP__LISTEN="127.0.0.1:$port" $(service_env "$name") $(trace_env) \
      nohup "$BIN_DIR/$name" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
  done
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    wait_for "$name (http://127.0.0.1:$port/readyz)" 60 ready "$port" \
      || { tail -n 20 "$DIR/$name.log" >&2; die "$name did not become ready; log: $DIR/$name.log"; }
  done
  start_sim
}

stop() {
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*}
    stop_pid "$name" "$DIR/$name.pid" &
  done
  stop_pid magento-sim "$DIR/magento-sim.pid" &
  stop_pid erp-sim "$DIR/erp-sim.pid" &
  wait
}

status() {
  for entry in "${SERVICES[@]}"; do
    local name=${entry%%:*} port=${entry##*:}
    if pid_alive "$DIR/$name.pid"; then echo "$name: running, http://127.0.0.1:$port/metrics, log $DIR/$name.log"
    else echo "$name: stopped"; fi
  done
  if pid_alive "$DIR/magento-sim.pid"; then echo "magento-sim: running, $SIM_URL/sim/stats, log $DIR/magento-sim.log"
  else echo "magento-sim: stopped"; fi
  if pid_alive "$DIR/erp-sim.pid"; then echo "erp-sim: running, $ERP_URL/admin/stats, log $DIR/erp-sim.log"
  else echo "erp-sim: stopped"; fi
}

# The sims keep their stores in memory: a stack started again after `make down` meets an
# empty Magento and an empty ERP, so the bridge's topics and state of the last run would
# describe orders neither has (the reconciler rightly reports them missing). `fresh`
# clears the broker's data and the services' state — only when nothing is running.
fresh() {
  local running=""
  for pid_file in "$DIR"/*.pid "$KAFKA_DATA/kafka.pid" "$DATA_DIR/registry/registry.pid"; do
    if pid_alive "$pid_file"; then running="$pid_file"; fi
  done
  if [[ -n "$running" ]]; then return; fi
  if [[ -d "$KAFKA_DATA/log" || -n "$(ls -d "$DIR"/*-state 2>/dev/null)" ]]; then
    log "starting fresh: clearing the last run's broker data and service state (the sims forget theirs; BRIDGE_KEEP_DATA=1 keeps it)"
  fi
  rm -rf "$KAFKA_DATA/log" "$DIR"/*-state
}

case "${1:-}" in
  start) start ;;
  fresh) fresh ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: services.sh start|stop|status|fresh" ;;
esac
