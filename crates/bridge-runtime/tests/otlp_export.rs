//! Spans leave over OTLP/gRPC and arrive in a real Jaeger: a record's `process` span
//! continues its producer's context from the `traceparent` header, its `send` span is its
//! child and is what the output carries, and span events arrive with them. (OTLP/HTTP is
//! what the services use in the end-to-end trace test, `tests/tests/traces.rs`.)

use std::time::Duration;

use bridge_runtime::telemetry::{Exporter, Protocol, init_with};
use bridge_runtime::trace::{self, TRACEPARENT};
use bridge_testkit::{jaeger, wait_until};
use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing_opentelemetry::OpenTelemetrySpanExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}

fn parent_of(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?["spanID"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_jaeger_over_grpc_continuing_the_producers_context() -> TestResult {
    let jaeger = jaeger()?;
    let guard = init_with(
        "otlp-grpc-test",
        Some(Exporter {
            endpoint: jaeger.otlp_grpc.clone(),
            full_url: false,
            protocol: Protocol::Grpc,
        }),
    );
    assert!(bridge_runtime::telemetry::spans_exported());
    let trace_id = format!("{:032x}", rand_id());
    let producer_span = format!("{:016x}", rand_id() as u64 | 1);
    let traceparent = format!("00-{trace_id}-{producer_span}-01");
    let (process_id, send_id) = {
        let parent = trace::extract(|name| (name == TRACEPARENT).then_some(traceparent.as_bytes()));
        let span = tracing::info_span!(
            "process",
            otel.name = "process test-topic",
            otel.kind = "consumer",
            messaging.system = "kafka",
        );
        span.set_parent(parent.clone())?;
        let _entered = span.enter();
        trace::event("deduplicated", Vec::new());
        let send = trace::send_span("test-output", "e-1");
        let carried = trace::outgoing(&send, &parent);
        assert_eq!(
            trace::trace_id(&carried).as_deref(),
            Some(trace_id.as_str())
        );
        let process_id = span.context().span().span_context().span_id().to_string();
        let send_id = carried.span().span_context().span_id().to_string();
        (process_id, send_id)
    };
    // Dropping the guard flushes the batch (on a blocking thread: the exporter blocks).
    tokio::task::spawn_blocking(move || drop(guard)).await?;

    let count = |t: &Value| t["spans"].as_array().map_or(0, Vec::len);
    wait_until("the trace in jaeger", Duration::from_secs(30), || async {
        jaeger
            .trace(&trace_id)
            .await
            .ok()
            .flatten()
            .is_some_and(|t| count(&t) >= 2)
    })
    .await?;
    let found = jaeger.trace(&trace_id).await?.ok_or("the trace is gone")?;
    let spans = found["spans"].as_array().cloned().unwrap_or_default();
    let by_id = |id: &str| spans.iter().find(|s| s["spanID"] == id).cloned();
    let process = by_id(&process_id).ok_or("no process span")?;
    let send = by_id(&send_id).ok_or("no send span")?;
    assert_eq!(process["operationName"], "process test-topic");
    assert_eq!(parent_of(&process), Some(producer_span.as_str()));
    assert_eq!(
        tag(&process, "span.kind").and_then(Value::as_str),
        Some("consumer")
    );
    assert_eq!(
        tag(&process, "messaging.system").and_then(Value::as_str),
        Some("kafka")
    );
    assert_eq!(parent_of(&send), Some(process_id.as_str()));
    assert_eq!(send["operationName"], "send test-output");
    assert_eq!(
        tag(&send, "span.kind").and_then(Value::as_str),
        Some("producer")
    );
    let events: Vec<&Value> = process["logs"]
        .as_array()
        .map(|logs| {
            logs.iter()
                .flat_map(|l| l["fields"].as_array())
                .flatten()
                .collect()
        })
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|f| f["key"] == "event" && f["value"] == "deduplicated"),
        "{events:?}"
    );
    Ok(())
}

fn rand_id() -> u128 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos());
    (nanos ^ (u128::from(std::process::id()) << 64)) | 1
}
