//! **reconciler**: continuous Magento ↔ ERP comparison. It keeps the expected state of each
//! order from the orders topic, and on a schedule (or on demand) reads both sides through
//! their APIs — Magento REST, the ERP through erp-writer's `ErpConnector` — and compares
//! orders (existence, cancellation, lines, totals, tax, discount, refunds, customer) and
//! stock. Every difference is a `ReconciliationFinding` (and its resolution, later);
//! repairable ones ask for a `ResyncRequested`, bounded per entity and per run.
//! See `README.md` for what is compared and how.

pub mod compare;
pub mod config;
pub mod control;
pub mod expected;
pub mod findings;
pub mod handler;
pub mod metrics;
pub mod run;

use std::sync::{Arc, OnceLock};

use bridge_runtime::service::{LoopSpec, ServiceError};
use bridge_runtime::shutdown::Shutdown;
use erp::connector::ErpConnector;
use erp::connector::configured::Configured;
use erp::mapping::Mapping;

pub use config::Config;

use crate::handler::{Reconciler, RunNow, RunSettings};
use crate::metrics::ReconcilerMetrics;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "reconciler";

fn start_error(what: &str, reason: impl ToString) -> ServiceError {
    ServiceError::Start {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    run_with_trigger(config, shutdown, RunNow::default()).await
}

/// [`run`], with `run_now` asking for a run at once.
pub async fn run_with_trigger(
    config: Config,
    shutdown: Shutdown,
    run_now: RunNow,
) -> Result<(), ServiceError> {
    let r = &config.reconciler;
    let summary = run::SharedSummary::default();
    if !r.control_listen.is_empty() {
        let listen = r
            .control_listen
            .parse()
            .map_err(|e| start_error("reconciler.control_listen", e))?;
        let token = r
            .control_token()
            .map_err(|e| start_error("reconciler.control_token", e))?;
        let addr = control::serve(
            listen,
            run_now.clone(),
            summary.clone(),
            token,
            shutdown.clone(),
        )
        .await
        .map_err(|e| start_error("reconciler.control_listen", e))?;
        tracing::info!(%addr, "POST /reconcile served");
    }
    let mapping = Arc::new(Mapping::load(&r.mapping_file).map_err(|e| start_error("mapping", e))?);
    let connector =
        Configured::from_settings(&r.erp).map_err(|e| start_error("ERP connector", e))?;
    run_on(
        config,
        shutdown,
        mapping,
        Arc::new(connector),
        (run_now, summary),
    )
    .await
}

async fn run_on<C: ErpConnector>(
    config: Config,
    shutdown: Shutdown,
    mapping: Arc<Mapping>,
    connector: Arc<C>,
    (run_now, summary): (RunNow, run::SharedSummary),
) -> Result<(), ServiceError> {
    let r = config.reconciler.clone();
    let effective = r.effective().map_err(|e| start_error("configuration", e))?;
    let settings = RunSettings {
        effective,
        page_size: r.page_size,
        max_attempts: r.max_resync_attempts,
        max_per_run: r.max_resyncs_per_run,
        stock: r.stock.clone(),
        erp_scan: r.erp_scan,
        findings_topic: r.findings_topic.clone(),
        resync_topic: r.resync_topic.clone(),
    };
    let magento = magento::rest::Magento::new(&r.magento);
    let runtime = tokio::runtime::Handle::current();
    let series = Arc::new(OnceLock::new());
    let spec = LoopSpec::new(&r.group_id, &r.orders_topic, move |registry| {
        let metrics = series
            .get_or_init(|| ReconcilerMetrics::register(&registry))
            .clone();
        Reconciler::new(
            connector, mapping, magento, runtime, settings, metrics, run_now, summary,
        )
    });
    bridge_runtime::service::run_handlers(NAME, &config.service(), vec![spec], shutdown).await
}
