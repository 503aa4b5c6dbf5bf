//! **magento-writer**: the ERP's verdict on each order back to Magento — an order comment
//! (and a status, if configured) per `ErpOrderResult` — rate-limited, behind a circuit
//! breaker, and idempotent (see [`handler`]) — and, with `[writer.resync] enabled`, stock
//! truth: the reconciler's stock repairs set MSI source-item quantities to the ERP's
//! ([`stock`]).

pub mod config;
pub mod handler;
pub mod stock;

use std::sync::Arc;
use std::time::Duration;

use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use bridge_runtime::service::{LoopSpec, ServiceError};
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::handler::MagentoWriter;
use crate::stock::StockResyncer;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "magento-writer";

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let writer = config.writer.clone();
    // One limit and one breaker for both loops that call Magento (clones share them).
    let guard = Guard::new(
        "Magento",
        RateLimiter::new(writer.rate_limit_per_second, writer.burst),
        CircuitBreaker::new(
            writer.breaker_failures,
            Duration::from_millis(writer.breaker_open_ms),
        ),
    );
    let magento = Arc::new(magento::rest::Magento::new(&writer.magento));
    let mut loops = Vec::new();
    {
        let (magento, writer, guard) = (Arc::clone(&magento), writer.clone(), guard.clone());
        loops.push(LoopSpec::new(
            &config.writer.group_id,
            &config.writer.results_topic,
            move |_metrics| {
                MagentoWriter::new(
                    magento,
                    tokio::runtime::Handle::current(),
                    guard.clone(),
                    writer,
                )
            },
        ));
    }
    let resync = &writer.resync;
    if resync.enabled {
        let max_age = i64::try_from(resync.max_age_ms).unwrap_or(i64::MAX);
        loops.push(LoopSpec::new(
            &resync.group_id,
            &resync.topic,
            move |_metrics| {
                StockResyncer::new(
                    magento,
                    tokio::runtime::Handle::current(),
                    guard.clone(),
                    max_age,
                )
            },
        ));
    }
    bridge_runtime::service::run_handlers(NAME, &config.service(), loops, shutdown).await
}
