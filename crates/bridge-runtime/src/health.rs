//! The operations endpoints Kubernetes and Prometheus use: `/healthz` (the process
//! answers), `/readyz` (the service can do its work: 503 until then) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Readiness and metrics shared between a service and its operations endpoints.
pub struct Health {
    metrics: Arc<Metrics>,
}

impl Health {
    /// Not ready until [`Health::set_ready`] says so.
    pub fn new(service: &'static str) -> Arc<Self> {
        Arc::new(Self {
            metrics: Arc::new(Metrics::new(service)),
        })
    }

    /// Marks the service ready (or not, e.g. while it restores state).
    pub fn set_ready(&self, ready: bool) {
        self.metrics.ready.set(i64::from(ready));
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.metrics.ready.get() == 1
    }

    /// The service's metrics, to record into.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }
}

/// Binds `listen` and serves the endpoints until `shutdown`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health server failed");
        }
    });
    Ok(addr)
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    match health.is_ready() {
        true => (StatusCode::OK, "ready"),
        false => (StatusCode::SERVICE_UNAVAILABLE, "not ready"),
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> String {
    health.metrics.render()
}
