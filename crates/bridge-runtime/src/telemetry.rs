//! Structured logs and traces.
//!
//! Logs: JSON lines on stdout by default (`BRIDGE_LOG_FORMAT=text` for a terminal), filtered
//! by `RUST_LOG` (default `info`).
//!
//! Traces: exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the standard OpenTelemetry variables:
//! `OTEL_EXPORTER_OTLP_PROTOCOL` `grpc` or `http/protobuf` (the default), `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG` (`parentbased_traceidratio` with a ratio: a trace is kept
//! or dropped whole, as its first service decided), `OTEL_RESOURCE_ATTRIBUTES`. Spans are
//! at `info`, so the default levels export them; `BRIDGE_TRACE_FILTER` (an `EnvFilter`,
//! default `info`) chooses which reach the exporter, apart from the logs.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The exporter's own HTTP and gRPC clients are never traced (each export would make spans
/// to export).
const TRACE_FILTER: &str = "info,rdkafka=off,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,reqwest=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

static SPANS_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans (an OTLP endpoint is set): spans nobody reads are
/// not made where they would cost per record.
pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`; `None` for
    /// a value this build does not speak.
    pub fn from_env() -> Option<Self> {
        let value = [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        match value.as_deref() {
            None | Some("http/protobuf") => Some(Self::HttpProtobuf),
            Some("grpc") => Some(Self::Grpc),
            Some(_) => None,
        }
    }
}

/// Where spans go: an OTLP endpoint and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    /// For HTTP the base URL (`/v1/traces` is added unless the URL came from
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, which is used as given); for gRPC the URL.
    pub endpoint: String,
    /// Whether `endpoint` is the full traces URL.
    pub full_url: bool,
    /// The protocol.
    pub protocol: Protocol,
}

impl Exporter {
    /// From the standard variables; `None` when no endpoint is set.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (endpoint, full_url) = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => (url, true),
            None => (var("OTEL_EXPORTER_OTLP_ENDPOINT")?, false),
        };
        let protocol = Protocol::from_env().unwrap_or_else(|| {
            eprintln!(
                "OTEL_EXPORTER_OTLP_PROTOCOL: only `grpc` and `http/protobuf` are spoken; using http/protobuf"
            );
            Protocol::HttpProtobuf
        });
        Some(Self {
            endpoint,
            full_url,
            protocol,
        })
    }

    /// The exporter, and for gRPC the runtime its client runs on (tonic needs one, built
    /// inside it; the services' own runtime may be gone when the last spans flush).
    fn start(&self) -> Result<(SpanExporter, Option<tokio::runtime::Runtime>), String> {
        if self.protocol != Protocol::Grpc {
            return self.build().map(|e| (e, None)).map_err(|e| e.to_string());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let built = {
            let _entered = rt.enter();
            self.build()
        };
        built.map(|e| (e, Some(rt))).map_err(|e| e.to_string())
    }

    fn build(&self) -> Result<SpanExporter, opentelemetry_otlp::ExporterBuildError> {
        match self.protocol {
            Protocol::HttpProtobuf => {
                let url = if self.full_url {
                    self.endpoint.clone()
                } else {
                    format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
                };
                SpanExporter::builder()
                    .with_http()
                    .with_endpoint(url)
                    .build()
            }
            Protocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(self.endpoint.clone())
                .build(),
        }
    }
}

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    /// The gRPC client's runtime (tonic needs one; the services' own may be gone by then).
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.provider.take().map(|p| p.shutdown()) {
            eprintln!("trace export did not shut down cleanly: {e}");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Installs the global subscriber once (later calls only return a guard, as tests start
/// services in one process). Trace export starts when an OTLP endpoint is set.
pub fn init(service: &'static str) -> TelemetryGuard {
    init_with(service, Exporter::from_env())
}

/// [`init`] with the exporter given.
pub fn init_with(service: &'static str, exporter: Option<Exporter>) -> TelemetryGuard {
    let mut runtime = None;
    let provider = exporter.and_then(|exporter| match exporter.start() {
        Ok((span_exporter, rt)) => {
            runtime = rt;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(span_exporter)
                    .with_resource(resource(service))
                    .build(),
            )
        }
        Err(e) => {
            eprintln!("OTLP trace export disabled: {e}");
            None
        }
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,rdkafka=warn,opentelemetry=warn,opentelemetry_sdk=warn")
    });
    let logs = match std::env::var("BRIDGE_LOG_FORMAT").as_deref() {
        Ok("text") => tracing_subscriber::fmt::layer().boxed(),
        _ => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    }
    .with_filter(filter);
    let traces = provider.as_ref().map(|p| {
        let filter = std::env::var("BRIDGE_TRACE_FILTER")
            .ok()
            .and_then(|f| EnvFilter::try_new(format!("{TRACE_FILTER},{f}")).ok())
            .unwrap_or_else(|| EnvFilter::new(TRACE_FILTER));
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter)
    });
    let exporting = traces.is_some();
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if installed.is_ok() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        if let Some(p) = &provider {
            opentelemetry::global::set_tracer_provider(p.clone());
        }
        SPANS_EXPORTED.store(exporting, Ordering::Relaxed);
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            traces = exporting,
            "telemetry initialised"
        );
    }
    TelemetryGuard { provider, runtime }
}

/// `service.name`, `service.version` and, where the deployment names it, the instance
/// (`BRIDGE__PROCESSOR__INSTANCE_ID`, the pod name in Kubernetes); `OTEL_RESOURCE_ATTRIBUTES`
/// adds the rest.
fn resource(service: &'static str) -> Resource {
    let mut builder = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if let Ok(instance) = std::env::var("BRIDGE__PROCESSOR__INSTANCE_ID")
        && !instance.is_empty()
    {
        builder = builder.with_attribute(KeyValue::new("service.instance.id", instance));
    }
    builder.build()
}
