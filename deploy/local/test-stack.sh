#!/usr/bin/env bash
# Runs a command against one broker + registry + tracing backend (Jaeger) started for it alone (own ports, own data
# folder under /tmp), then stops them. `make test` uses it so every test binary shares one
# stack per test run; tests still isolate themselves with unique topics, groups and subjects.
#   test-stack.sh COMMAND [ARGS...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export BRIDGE_DATA_DIR; BRIDGE_DATA_DIR="$(mktemp -d /tmp/bridge-test-stack-XXXXXX)"
export BRIDGE_KAFKA_PORT; BRIDGE_KAFKA_PORT="$(free_port)"
export BRIDGE_KAFKA_CONTROLLER_PORT; BRIDGE_KAFKA_CONTROLLER_PORT="$(free_port)"
export BRIDGE_REGISTRY_PORT; BRIDGE_REGISTRY_PORT="$(free_port)"
for port in OTLP_GRPC OTLP_HTTP QUERY QUERY_GRPC HEALTH; do
  export "BRIDGE_JAEGER_${port}_PORT=$(free_port)"
done

stop() {
  bash "$here/jaeger.sh" stop || true
  bash "$here/registry.sh" stop || true
  bash "$here/kafka.sh" stop || true
  rm -rf "$BRIDGE_DATA_DIR"
}
trap stop EXIT

bash "$here/kafka.sh" start
bash "$here/registry.sh" start
bash "$here/jaeger.sh" start
export BRIDGE_TEST_BOOTSTRAP="127.0.0.1:$BRIDGE_KAFKA_PORT"
export BRIDGE_TEST_REGISTRY="http://127.0.0.1:$BRIDGE_REGISTRY_PORT"
export BRIDGE_TEST_JAEGER="http://127.0.0.1:$BRIDGE_JAEGER_QUERY_PORT"
export BRIDGE_TEST_OTLP_HTTP="http://127.0.0.1:$BRIDGE_JAEGER_OTLP_HTTP_PORT"
export BRIDGE_TEST_OTLP_GRPC="http://127.0.0.1:$BRIDGE_JAEGER_OTLP_GRPC_PORT"
echo "[test-stack] kafka $BRIDGE_TEST_BOOTSTRAP, registry $BRIDGE_TEST_REGISTRY, jaeger $BRIDGE_TEST_JAEGER, data $BRIDGE_DATA_DIR"
"$@"
