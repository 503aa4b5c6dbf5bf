# Shared settings for the local stack scripts. Sourced, not run.
# Everything is overridable by environment so a second stack can run beside the first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR="${BRIDGE_TOOLS_DIR:-$ROOT/.tools}"
DATA_DIR="${BRIDGE_DATA_DIR:-$ROOT/.data}"

KAFKA_VERSION="4.1.1"
KAFKA_HOME="$TOOLS_DIR/kafka-$KAFKA_VERSION"
KAFKA_PORT="${BRIDGE_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${BRIDGE_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DATA="$DATA_DIR/kafka"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

REGISTRY_PORT="${BRIDGE_REGISTRY_PORT:-8081}"
REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"

log() { printf '[local] %s\n' "$*" >&2; }
die() { printf '[local] error: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= deadline )); then return 1; fi
    sleep 0.3
  done
  log "$what is ready"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid NAME PID_FILE: SIGTERM, wait up to 30 s for a clean stop, then SIGKILL.
stop_pid() {
  local name="$1" pid_file="$2"
  if ! pid_alive "$pid_file"; then rm -f "$pid_file"; return; fi
  local pid; pid=$(cat "$pid_file")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && { log "$name did not stop in 30 s, killing"; kill -KILL "$pid"; }
  rm -f "$pid_file"
}

JAEGER_VERSION="v1.75.0"
JAEGER_BIN="$TOOLS_DIR/jaeger-$JAEGER_VERSION/jaeger"
JAEGER_OTLP_GRPC_PORT="${BRIDGE_JAEGER_OTLP_GRPC_PORT:-4317}"
JAEGER_OTLP_HTTP_PORT="${BRIDGE_JAEGER_OTLP_HTTP_PORT:-4318}"
JAEGER_QUERY_PORT="${BRIDGE_JAEGER_QUERY_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${BRIDGE_JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_HEALTH_PORT="${BRIDGE_JAEGER_HEALTH_PORT:-13133}"
JAEGER_URL="http://127.0.0.1:$JAEGER_QUERY_PORT"
OTLP_HTTP_URL="http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT"
