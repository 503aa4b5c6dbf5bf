//! **order-ingest**: Magento webhooks and REST polling to order events and inventory movements.
//!
//! Today: [`magento`] reads Magento order payloads in both shapes (REST and the observer
//! shape of Adobe I/O Events and webhooks) with their quirks, and maps them to order events
//! and inventory movements with deterministic ids, naming the field of anything it cannot
//! map. The service starts, serves `/healthz`, `/readyz` and `/metrics`, waits until Kafka
//! answers and stops cleanly on SIGTERM; the webhook receiver and the REST poller that feed
//! the mapping arrive next (issue #6).

pub mod magento;

use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "order-ingest";

/// The service configuration (`--config FILE`, then `BRIDGE__SECTION__KEY` variables).
pub type Config = bridge_runtime::config::ServiceConfig;

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    bridge_runtime::service::run(NAME, &config.kafka, &config.http, shutdown, |_health| {
        std::future::pending()
    })
    .await
}
