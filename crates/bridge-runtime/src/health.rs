//! The operations endpoints Kubernetes and Prometheus use: `/healthz` (the process
//! answers), `/readyz` (the service can do its work: 503 until then) and `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Readiness and metrics shared between a service and its operations endpoints.
///
/// The service is ready while no part of it is waiting: each part (the Kafka connection,
/// each processing loop) says what it waits for, and `/readyz` names it.
pub struct Health {
    metrics: Arc<Metrics>,
    waiting: Mutex<BTreeMap<String, String>>,
}

impl Health {
    /// Ready, as nothing waits yet.
    pub fn new(service: &'static str) -> Arc<Self> {
        let health = Arc::new(Self {
            metrics: Arc::new(Metrics::new(service)),
            waiting: Mutex::new(BTreeMap::new()),
        });
        health.metrics.ready.set(1);
        health
    }

    /// Marks `part` not ready, for `reason` (shown by `/readyz`), until [`Health::ready`].
    pub fn waiting_for(&self, part: &str, reason: impl Into<String>) {
        let mut waiting = self.lock();
        waiting.insert(part.to_owned(), reason.into());
        self.metrics.ready.set(0);
    }

    /// Marks `part` ready again; the service is ready once no part waits.
    pub fn ready(&self, part: &str) {
        let mut waiting = self.lock();
        waiting.remove(part);
        self.metrics.ready.set(i64::from(waiting.is_empty()));
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    /// What the parts not ready wait for, one `part: reason` per line.
    pub fn waiting(&self) -> String {
        self.lock()
            .iter()
            .map(|(part, reason)| format!("{part}: {reason}\n"))
            .collect()
    }

    /// The service's metrics, to record into.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
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

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.waiting() {
        waiting if waiting.is_empty() => (StatusCode::OK, "ready\n".to_owned()),
        waiting => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{waiting}"),
        ),
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> String {
    health.metrics.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_ready_only_while_no_part_waits_and_says_what_waits() {
        let health = Health::new("test");
        assert!(health.is_ready());
        health.waiting_for("kafka", "connecting");
        health.waiting_for("orders", "restoring partition 1");
        assert!(!health.is_ready());
        assert_eq!(health.metrics.ready.get(), 0);
        assert_eq!(
            health.waiting(),
            "kafka: connecting\norders: restoring partition 1\n"
        );
        health.ready("kafka");
        assert!(!health.is_ready());
        health.waiting_for("orders", "input topic missing");
        assert_eq!(health.waiting(), "orders: input topic missing\n");
        health.ready("orders");
        assert!(health.is_ready());
        assert_eq!(health.metrics.ready.get(), 1);
    }
}
