//! **magento-writer**: the ERP's verdict on each order back to Magento — an order comment
//! (and a status, if configured) per `ErpOrderResult` — rate-limited, behind a circuit
//! breaker, and idempotent (see [`handler`]). Stock truth (MSI source-item quantities from
//! the ERP) follows with the reconciler's resync requests.

pub mod config;
pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::handler::MagentoWriter;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "magento-writer";

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let writer = config.writer.clone();
    bridge_runtime::service::run_handler(
        NAME,
        &config.service(),
        &config.writer.group_id,
        &config.writer.results_topic,
        shutdown,
        |_metrics| {
            let guard = Guard::new(
                "Magento",
                RateLimiter::new(writer.rate_limit_per_second, writer.burst),
                CircuitBreaker::new(
                    writer.breaker_failures,
                    Duration::from_millis(writer.breaker_open_ms),
                ),
            );
            let magento = Arc::new(magento_rest::Magento::new(&writer.magento));
            MagentoWriter::new(magento, tokio::runtime::Handle::current(), guard, writer)
        },
    )
    .await
}
