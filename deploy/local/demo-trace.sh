#!/usr/bin/env bash
# Prints the link to the trace of the demo's first order in the local Jaeger: waits until
# an order's ERP verdict is written back to magento-sim, then finds that order's trace by
# its key on order-ingest's `send` span and says which services it crosses.
#   demo-trace.sh [TIMEOUT_S]
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
SIM_URL="http://127.0.0.1:${BRIDGE_SIM_PORT:-8090}"
deadline=$((SECONDS + ${1:-90}))

order=""
until [[ -n "$order" ]]; do
  order="$(curl -fsS "$SIM_URL/sim/writebacks" 2>/dev/null | python3 -c '
import json, sys
for w in json.load(sys.stdin):
    if w.get("kind") == "order_comment" and w.get("target"):
        print(w["target"]); break' 2>/dev/null || true)"
  (( SECONDS < deadline )) || die "no order came back from the ERP within ${1:-90} s (make status; the services' logs are in .data/services)"
  [[ -n "$order" ]] || sleep 1
done

trace=""
until [[ -n "$trace" ]]; do
  trace="$(curl -fsS -G "$JAEGER_URL/api/traces" --data-urlencode service=order-ingest \
    --data-urlencode "tags={\"messaging.kafka.message.key\":\"$order\"}" --data-urlencode lookback=1h 2>/dev/null \
    | python3 -c '
import json, sys
data = json.load(sys.stdin)["data"]
if data:
    t = max(data, key=lambda t: len(t["spans"]))
    services = sorted({p["serviceName"] for p in t["processes"].values()})
    print(t["traceID"], len(t["spans"]), ",".join(services))' 2>/dev/null || true)"
  (( SECONDS < deadline )) || die "order $order has no trace in $JAEGER_URL (is jaeger running? bash deploy/local/jaeger.sh status)"
  [[ -n "$trace" ]] || sleep 1
done
read -r id spans services <<<"$trace"
echo "trace:   order $order, $spans spans across $services"
echo "         $JAEGER_URL/api/traces/$id   (Jaeger's query API; the UI at $JAEGER_URL/trace/$id needs Jaeger's UI assets, which its Go module does not carry)"
