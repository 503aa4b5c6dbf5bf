//! A public HTTP listener that stays up under abuse: what `axum::serve` leaves open, closed
//! once for every service that takes requests from outside the cluster.
//!
//! - **Connections**: at most [`ListenerSettings::max_connections`] at once; one more is
//!   accepted and closed at once (counted), so a flood cannot exhaust file descriptors.
//! - **Slow clients**: the request head must arrive within `header_timeout_ms`, the whole
//!   request (body included) within `request_timeout_ms` (then `408`); a TLS handshake
//!   within the header timeout.
//! - **Work**: at most `max_in_flight` requests are handled at once; more are answered `503`
//!   with `Retry-After` at once — never queued, so memory stays bounded.
//! - **Size**: bodies over `max_body_bytes` are refused with `413` before they are read.
//! - **TLS** (optional): a PEM certificate chain and PKCS#8 key, through OpenSSL.
//! - **Shutdown**: stops accepting, lets requests in progress finish for a bounded time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use crate::config::ConfigError;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How long requests in progress may finish after shutdown is asked for.
const DRAIN: Duration = Duration::from_secs(10);

/// The limits and TLS of a public listener (a `[….server]` section).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerSettings {
    /// Largest request body; a larger one is answered `413` unread.
    pub max_body_bytes: usize,
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
    /// Requests handled at once at most; more are answered `503` with `Retry-After`.
    pub max_in_flight: usize,
    /// The request head (line and headers) must arrive within this; also the TLS handshake.
    pub header_timeout_ms: u64,
    /// The whole request, body and handling, within this; then `408`.
    pub request_timeout_ms: u64,
    /// `Retry-After` seconds sent with a `503` for too many requests.
    pub retry_after_seconds: u32,
    /// PEM certificate chain: serve HTTPS (with `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_connections: 1024,
            max_in_flight: 64,
            header_timeout_ms: 5_000,
            request_timeout_ms: 15_000,
            retry_after_seconds: 5,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl ListenerSettings {
    /// Refuses values the listener cannot work with; `section` names the keys.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { message });
        for (key, value, range) in [
            (
                "max_body_bytes",
                self.max_body_bytes as u64,
                1_024..=64 * 1024 * 1024,
            ),
            ("max_connections", self.max_connections as u64, 1..=100_000),
            ("max_in_flight", self.max_in_flight as u64, 1..=10_000),
            ("header_timeout_ms", self.header_timeout_ms, 100..=60_000),
            ("request_timeout_ms", self.request_timeout_ms, 100..=300_000),
            (
                "retry_after_seconds",
                u64::from(self.retry_after_seconds),
                1..=3_600,
            ),
        ] {
            if !range.contains(&value) {
                return invalid(format!(
                    "{section}.{key} = {value} is outside {} – {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return invalid(format!(
                "{section}.tls_cert_file and {section}.tls_key_file go together: set both or neither"
            ));
        }
        Ok(())
    }
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate or key could not be read or used.
    #[error("TLS certificate `{cert}` / key `{key}`: {reason}")]
    Tls {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Labels of refused requests and connections.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `connections` (closed on accept), `in_flight` (`503`), `tls` (handshake failed or
    /// timed out).
    pub reason: String,
}

/// The listener's series.
#[derive(Clone, Default)]
struct ListenerMetrics {
    refused: Family<RefusedLabels, Counter>,
    connections: Gauge,
    in_flight: Gauge,
}

impl ListenerMetrics {
    fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "listener_refused",
            "Connections closed on accept and requests answered 503, by reason",
            this.refused.clone(),
        );
        metrics.register_with_unit(
            "listener_connections",
            "Open connections on the public listener",
            Unit::Other("connections".into()),
            this.connections.clone(),
        );
        metrics.register_with_unit(
            "listener_in_flight_requests",
            "Requests being handled on the public listener",
            Unit::Other("requests".into()),
            this.in_flight.clone(),
        );
        this
    }

    fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// A bound listener with its limits; [`Listener::serve`] runs it.
pub struct Listener {
    tcp: TcpListener,
    settings: ListenerSettings,
    tls: Option<tokio_native_tls::TlsAcceptor>,
    metrics: ListenerMetrics,
}

impl Listener {
    /// Binds `addr` and reads the TLS files, if any: a bad certificate stops the start.
    pub async fn bind(
        addr: SocketAddr,
        settings: &ListenerSettings,
        metrics: &Metrics,
    ) -> Result<Self, ListenerError> {
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenerError::Bind { addr, source })?;
        Ok(Self {
            tcp,
            settings: settings.clone(),
            tls,
            metrics: ListenerMetrics::register(metrics),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Whether connections are served over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `router` until `shutdown`, then drains requests in progress (bounded).
    pub async fn serve(self, router: Router, shutdown: Shutdown) {
        let settings = &self.settings;
        let in_flight = Arc::new(Semaphore::new(settings.max_in_flight));
        let refused = Refused {
            retry_after: settings.retry_after_seconds,
            in_flight,
            metrics: self.metrics.clone(),
        };
        let router = router
            .layer(middleware::from_fn_with_state(refused, limit_in_flight))
            .layer(DefaultBodyLimit::max(settings.max_body_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(settings.request_timeout_ms),
            ));
        let header_timeout = Duration::from_millis(settings.header_timeout_ms);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_in_flight.min(u32::MAX as usize) as u32);
        let builder = Arc::new(builder);
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let graceful = GracefulShutdown::new();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut stop => break,
                accepted = self.tcp.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                self.metrics.refused("connections");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(router.clone());
            let builder = Arc::clone(&builder);
            let metrics = self.metrics.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                metrics.connections.inc();
                match tls {
                    None => serve_io(&builder, stream, service, watcher).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => serve_io(&builder, stream, service, watcher).await,
                            _ => metrics.refused("tls"),
                        }
                    }
                }
                metrics.connections.dec();
                drop(permit);
            });
        }
        drop(self.tcp);
        if tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                drain_seconds = DRAIN.as_secs(),
                "requests still open after the drain time; closing them"
            );
        }
    }
}

async fn serve_io<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let _ = watcher.watch(connection.into_owned()).await;
}

#[derive(Clone)]
struct Refused {
    retry_after: u32,
    in_flight: Arc<Semaphore>,
    metrics: ListenerMetrics,
}

async fn limit_in_flight(
    axum::extract::State(refused): axum::extract::State<Refused>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = Arc::clone(&refused.in_flight).try_acquire_owned() else {
        refused.metrics.refused("in_flight");
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({ "error": "too many requests in progress; retry later" }),
            ),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(refused.retry_after));
        return response;
    };
    refused.metrics.in_flight.inc();
    let response = next.run(request).await;
    refused.metrics.in_flight.dec();
    response
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_native_tls::TlsAcceptor, ListenerError> {
    let fail = |reason: String| ListenerError::Tls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| fail(e.to_string()))?;
    let key_pem = std::fs::read(key).map_err(|e| fail(e.to_string()))?;
    let identity = native_tls::Identity::from_pkcs8(&cert_pem, &key_pem)
        .map_err(|e| fail(format!("not a PEM certificate and PKCS#8 key: {e}")))?;
    let acceptor = native_tls::TlsAcceptor::builder(identity)
        .min_protocol_version(Some(native_tls::Protocol::Tlsv12))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    Ok(tokio_native_tls::TlsAcceptor::from(acceptor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_name_the_key() {
        assert!(ListenerSettings::default().validate("s").is_ok());
        let too_big = ListenerSettings {
            max_body_bytes: 1 << 30,
            ..ListenerSettings::default()
        };
        let text = too_big
            .validate("ingest.webhook.server")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.contains("ingest.webhook.server.max_body_bytes"),
            "{text}"
        );
        let half_tls = ListenerSettings {
            tls_cert_file: Some("c.pem".into()),
            ..ListenerSettings::default()
        };
        assert!(half_tls.validate("s").is_err());
    }
}
