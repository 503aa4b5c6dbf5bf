//! The operations endpoints Kubernetes and Prometheus use: `/healthz` (liveness: 503 once
//! a processing loop has made no progress for longer than its bound, so the kubelet
//! restarts a stuck process), `/readyz` (the service can do its work: 503 until then) and
//! `/metrics`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    heartbeats: Mutex<Vec<(String, Arc<Heartbeat>)>>,
}

/// The progress of one processing loop, for `/healthz`: the loop beats once a round (a
/// round ends at most a poll timeout after it starts when there is nothing to do), so a
/// loop that goes on beating is alive, busy or idle. One that stops beating for longer than
/// its bound is stuck in a step (a handler that never returns, a deadlock) and `/healthz`
/// turns red. Restoring state is exempt: it can rightly take long, and `/readyz` already
/// says the loop is not ready.
pub struct Heartbeat {
    started: Instant,
    bound: Duration,
    last_ms: AtomicU64,
    exempt: AtomicBool,
}

impl Heartbeat {
    fn new(bound: Duration) -> Self {
        Self {
            started: Instant::now(),
            bound,
            last_ms: AtomicU64::new(0),
            exempt: AtomicBool::new(false),
        }
    }

    /// The loop made progress at `now` (a clock read it already has).
    pub fn beat(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis();
        self.last_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether the loop is in a phase the bound does not apply to (restoring state); the
    /// end of one counts as progress.
    pub fn exempt(&self, exempt: bool) {
        if !exempt {
            self.beat(Instant::now());
        }
        self.exempt.store(exempt, Ordering::Relaxed);
    }

    /// How long the loop has gone without progress at `now`, when that is over its bound.
    fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.exempt.load(Ordering::Relaxed) {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let quiet = now.saturating_duration_since(self.started + last);
        (quiet > self.bound).then_some(quiet)
    }
}

impl Health {
    /// Ready, as nothing waits yet.
    pub fn new(service: &'static str) -> Arc<Self> {
        let health = Arc::new(Self {
            metrics: Arc::new(Metrics::new(service)),
            waiting: Mutex::new(BTreeMap::new()),
            heartbeats: Mutex::new(Vec::new()),
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

    /// Registers the heartbeat of `part` (a processing loop), which must beat at least once
    /// every `bound` while not exempt, or `/healthz` answers 503.
    pub fn heartbeat(&self, part: &str, bound: Duration) -> Arc<Heartbeat> {
        let heartbeat = Arc::new(Heartbeat::new(bound));
        heartbeat.beat(Instant::now());
        let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        beats.retain(|(name, _)| name != part);
        beats.push((part.to_owned(), Arc::clone(&heartbeat)));
        heartbeat
    }

    /// The loops that have made no progress for longer than their bound, one
    /// `part: no progress for N s (bound M s)` per line; empty while all are alive.
    pub fn stalled(&self) -> String {
        self.stalled_at(Instant::now())
    }

    fn stalled_at(&self, now: Instant) -> String {
        let beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        beats
            .iter()
            .filter_map(|(part, beat)| {
                beat.stalled_for(now).map(|quiet| {
                    format!(
                        "{part}: no progress for {} s (bound {} s)\n",
                        quiet.as_secs(),
                        beat.bound.as_secs()
                    )
                })
            })
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
        .route("/healthz", get(healthz))
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

async fn healthz(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.stalled() {
        stalled if stalled.is_empty() => (StatusCode::OK, "ok\n".to_owned()),
        stalled => {
            tracing::error!(stalled = %stalled.trim_end(), "a processing loop is stuck; liveness fails");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("stalled\n{stalled}"),
            )
        }
    }
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

async fn metrics(State(health): State<Arc<Health>>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        health.metrics.render(),
    )
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

    #[test]
    fn liveness_fails_only_for_a_loop_silent_past_its_bound_and_not_exempt() {
        let health = Health::new("test");
        let bound = Duration::from_millis(50);
        let busy = health.heartbeat("orders", bound);
        let restoring = health.heartbeat("stock", bound);
        restoring.exempt(true);
        assert_eq!(health.stalled(), "");
        let later = Instant::now() + Duration::from_millis(80);
        assert!(busy.stalled_for(later).is_some());
        assert!(restoring.stalled_for(later).is_none());
        busy.beat(later);
        assert!(busy.stalled_for(later).is_none());
        // No beat for longer than the bound: the busy loop is reported, named, with it.
        let stalled = health.stalled_at(later + Duration::from_millis(120));
        assert!(stalled.starts_with("orders: no progress for"), "{stalled}");
        assert!(!stalled.contains("stock"), "{stalled}");
        restoring.exempt(false);
        assert!(!health.stalled().contains("stock"));
    }
}
