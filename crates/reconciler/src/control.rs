//! `POST /reconcile` on `[reconciler] control_listen`: asks every partition of this
//! instance for a run now (`bridgectl reconcile` calls it). Answers 202: the runs start
//! at the partitions' next punctuation and report through findings and metrics.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bridge_runtime::shutdown::Shutdown;

use crate::handler::RunNow;

/// Serves the control endpoint until `shutdown`; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    run_now: RunNow,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/reconcile", post(reconcile))
        .with_state(run_now);
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
