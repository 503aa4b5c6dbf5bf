//! Structured logs: JSON lines on stdout by default (`BRIDGE_LOG_FORMAT=text` for a
//! terminal), filtered by `RUST_LOG` (default `info`). OpenTelemetry export joins here.

/// Installs the global subscriber once; later calls are ignored (tests start services
/// in one process).
pub fn init(service: &'static str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rdkafka=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match std::env::var("BRIDGE_LOG_FORMAT").as_deref() {
        Ok("text") => builder.try_init(),
        _ => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    if installed.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry initialised"
        );
    }
}
