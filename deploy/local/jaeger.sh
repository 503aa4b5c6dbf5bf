#!/usr/bin/env bash
# Local tracing backend: Jaeger v2 (built on the OpenTelemetry Collector) from its Go
# module, OTLP over gRPC and HTTP in, traces in memory, the query API on JAEGER_URL.
#   jaeger.sh install   build the pinned version into $TOOLS_DIR (skipped when present)
#   jaeger.sh start     start on 127.0.0.1, wait until healthy
#   jaeger.sh stop      stop cleanly
#   jaeger.sh status    print whether it runs, its ports and log
# The Go module carries no UI assets (the UI is built from its own repository): the query
# API answers, the UI page is a placeholder.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

DIR="$DATA_DIR/jaeger"
PID_FILE="$DIR/jaeger.pid"

install() {
  if [[ -x "$JAEGER_BIN" ]]; then return; fi
  command -v go >/dev/null || die "go is needed to build jaeger from the Go module proxy"
  log "building jaeger $JAEGER_VERSION from the Go module proxy (a few minutes, once)"
  local work; work="$(mktemp -d)"
  printf 'module jaegertool\n\ngo 1.24\n' >"$work/go.mod"
  (cd "$work" &&
    GOFLAGS=-mod=mod go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >/dev/null 2>&1 &&
    mkdir -p "$(dirname "$JAEGER_BIN")" &&
    go build -o "$JAEGER_BIN.partial" github.com/jaegertracing/jaeger/cmd/jaeger) \
    || { rm -rf "$work"; die "building jaeger failed"; }
  rm -rf "$work"
  mv "$JAEGER_BIN.partial" "$JAEGER_BIN"
}

healthy() { curl -fsS "http://127.0.0.1:$JAEGER_HEALTH_PORT/status" >/dev/null && curl -fsS "$JAEGER_URL/api/services" >/dev/null; }

start() {
  install
  if pid_alive "$PID_FILE"; then log "jaeger already running on $JAEGER_URL"; return; fi
  for port in "$JAEGER_OTLP_GRPC_PORT" "$JAEGER_OTLP_HTTP_PORT" "$JAEGER_QUERY_PORT" "$JAEGER_QUERY_GRPC_PORT" "$JAEGER_HEALTH_PORT"; do
    port_open "$port" && die "port $port is taken by another process"
  done
  mkdir -p "$DIR"
  log "starting jaeger: OTLP gRPC :$JAEGER_OTLP_GRPC_PORT, OTLP HTTP :$JAEGER_OTLP_HTTP_PORT, query $JAEGER_URL (log: $DIR/jaeger.log)"
  JAEGER_OTLP_GRPC_PORT="$JAEGER_OTLP_GRPC_PORT" JAEGER_OTLP_HTTP_PORT="$JAEGER_OTLP_HTTP_PORT" \
    JAEGER_QUERY_PORT="$JAEGER_QUERY_PORT" JAEGER_QUERY_GRPC_PORT="$JAEGER_QUERY_GRPC_PORT" \
    JAEGER_HEALTH_PORT="$JAEGER_HEALTH_PORT" \
    nohup "$JAEGER_BIN" --config "$ROOT/deploy/local/jaeger/config.yaml" >"$DIR/jaeger.log" 2>&1 &
  echo $! >"$PID_FILE"
  wait_for "jaeger on $JAEGER_URL" 60 healthy \
    || { tail -n 20 "$DIR/jaeger.log" >&2; die "jaeger did not become healthy; log: $DIR/jaeger.log"; }
}

stop() { stop_pid "jaeger" "$PID_FILE"; }

status() {
  if pid_alive "$PID_FILE"; then echo "jaeger: running, OTLP $OTLP_HTTP_URL (HTTP) / 127.0.0.1:$JAEGER_OTLP_GRPC_PORT (gRPC), query $JAEGER_URL, log in $DIR/jaeger.log"
  else echo "jaeger: stopped"; fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: jaeger.sh install|start|stop|status" ;;
esac
