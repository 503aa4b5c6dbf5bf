//! The control endpoint on `[reconciler] control_listen`: `POST /reconcile` asks every
//! partition of this instance for a run now (`bridgectl reconcile` calls it; 202: the runs
//! start at the partitions' next punctuation and report through findings and metrics);
//! `GET /summary` is today's summary so far (runs, orders compared, findings opened by
//! kind, sync delay p50/p90/p99, rounding tolerated) — the line logged when the day turns.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bridge_runtime::shutdown::Shutdown;

use crate::handler::RunNow;
use crate::run::SharedSummary;

/// Serves the control endpoint until `shutdown`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    run_now: RunNow,
    summary: SharedSummary,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/reconcile", post(reconcile))
        .with_state(run_now)
        .route(
            "/summary",
            get(move || async move {
                let summary = summary.lock().unwrap_or_else(|p| p.into_inner());
                Json(summary.to_json())
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
        {
            tracing::error!(error = %e, "reconciler control endpoint failed");
        }
    });
    Ok(addr)
}

async fn reconcile(State(run_now): State<RunNow>) -> (StatusCode, &'static str) {
    run_now.request();
    tracing::info!("reconciliation run requested");
    (
        StatusCode::ACCEPTED,
        "a run starts on every partition at its next punctuation\n",
    )
}
