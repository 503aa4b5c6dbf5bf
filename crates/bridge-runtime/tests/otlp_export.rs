//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans of processed records are exported over
//! OTLP/HTTP. A local HTTP endpoint stands in for the collector and counts the exports.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use bridge_testkit::wait_until;

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_the_otlp_endpoint() -> Result<(), Box<dyn std::error::Error>> {
    let exports = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&exports);
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                if !body.is_empty() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let endpoint = format!("http://{addr}");
    let guard = bridge_runtime::telemetry::init_with("otlp-test", Some(&endpoint));
    {
        let span = tracing::info_span!("record", event_id = "e-1", partition = 0, offset = 7);
        let _entered = span.enter();
        tracing::info!("processing");
    }
    // Dropping the guard flushes the batch (on a blocking thread: the exporter blocks).
    tokio::task::spawn_blocking(move || drop(guard)).await?;
    wait_until("an OTLP export", Duration::from_secs(20), || {
        let n = exports.load(Ordering::SeqCst);
        async move { n > 0 }
    })
    .await?;
    Ok(())
}
