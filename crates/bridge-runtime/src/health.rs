//! The operations endpoints Kubernetes and Prometheus use: `/healthz` (the process
//! answers), `/readyz` (the service can do its work: 503 until then) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// Readiness shared between a service and its health endpoints.
pub struct Health {
    service: &'static str,
    ready: AtomicBool,
}

impl Health {
    /// Not ready until [`Health::set_ready`] says so.
    pub fn new(service: &'static str) -> Arc<Self> {
        Arc::new(Self {
            service,
            ready: AtomicBool::new(false),
        })
    }

    /// Marks the service ready (or not, e.g. while it restores state).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
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
    format!(
        "# HELP bridge_service_ready Whether the service reports ready (1) or not (0).\n\
         # TYPE bridge_service_ready gauge\n\
         bridge_service_ready{{service=\"{}\"}} {}\n",
        health.service,
        u8::from(health.is_ready())
    )
}
