//! The control endpoint on `[reconciler] control_listen`: `POST /reconcile` asks every
//! partition of this instance for a run now (`bridgectl reconcile` calls it; 202: the runs
//! start at the partitions' next punctuation and report through findings and metrics);
//! `GET /summary` is today's summary so far (runs, orders compared, findings opened by
//! kind, sync delay p50/p90/p99, rounding tolerated) — the line logged when the day turns.
//! Both require `Authorization: Bearer <control_token>` when a token is configured.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bridge_runtime::secret::Secret;
use bridge_runtime::shutdown::Shutdown;

use crate::handler::RunNow;
use crate::run::SharedSummary;

/// Serves the control endpoint until `shutdown`; returns the bound address. With `token`,
/// every request must carry it as a bearer token (`401` otherwise).
pub async fn serve(
    listen: SocketAddr,
    run_now: RunNow,
    summary: SharedSummary,
    token: Option<Secret>,
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
        )
        .layer(axum::middleware::from_fn(move |request, next| {
            authorized(token.clone(), request, next)
        }));
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

/// Passes a request that carries the bearer token (compared in constant time).
async fn authorized(
    token: Option<Secret>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .as_bytes();
    let expected = token.expose().as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response()
    }
}

async fn reconcile(State(run_now): State<RunNow>) -> (StatusCode, &'static str) {
    run_now.request();
    tracing::info!("reconciliation run requested");
    (
        StatusCode::ACCEPTED,
        "a run starts on every partition at its next punctuation\n",
    )
}
