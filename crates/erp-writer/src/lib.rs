//! **erp-writer**: Order events and stock deltas to the ERP, with retry, rate limit, idempotency and parking.
//!
//! Today the service starts, serves `/healthz`, `/readyz` and `/metrics`, waits until
//! Kafka answers, reports ready and stops cleanly on SIGTERM. Its processing arrives with
//! issue #7; see `../../shared/DESIGN.md` ("Services") for what it will consume and produce.

use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "erp-writer";

/// The service configuration (`--config FILE`, then `BRIDGE__SECTION__KEY` variables).
pub type Config = bridge_runtime::config::ServiceConfig;

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    bridge_runtime::service::run(NAME, &config.kafka, &config.http, shutdown, |_health| {
        std::future::pending()
    })
    .await
}
