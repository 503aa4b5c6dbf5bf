//! Structured logs and traces. Logs: JSON lines on stdout by default (`BRIDGE_LOG_FORMAT=text`
//! for a terminal), filtered by `RUST_LOG` (default `info`). Traces: exported over OTLP/HTTP
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard OpenTelemetry variables apply),
//! so the spans of every record reach the company's tracing backend.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.provider.take().map(|p| p.shutdown()) {
            eprintln!("trace export did not shut down cleanly: {e}");
        }
    }
}

/// Installs the global subscriber once (later calls only return a guard, as tests start
/// services in one process). Trace export starts when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
pub fn init(service: &'static str) -> TelemetryGuard {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    init_with(service, endpoint.as_deref())
}

/// [`init`] with the OTLP base endpoint given (traces go to `<endpoint>/v1/traces`).
pub fn init_with(service: &'static str, otlp_endpoint: Option<&str>) -> TelemetryGuard {
    let provider = otlp_endpoint.and_then(|endpoint| {
        let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        match SpanExporter::builder()
            .with_http()
            .with_endpoint(traces)
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(service).build())
                    .build(),
            ),
            Err(e) => {
                eprintln!("OTLP trace export disabled: {e}");
                None
            }
        }
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let logs = match std::env::var("BRIDGE_LOG_FORMAT").as_deref() {
        Ok("text") => tracing_subscriber::fmt::layer().boxed(),
        _ => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    if installed.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            traces = provider.is_some(),
            "telemetry initialised"
        );
    }
    TelemetryGuard { provider }
}
