//! **magento-writer**: the ERP's verdict on each order back to Magento — an order comment
//! (and a status, if configured) per `ErpOrderResult` — rate-limited, behind a circuit
//! breaker, and idempotent (see [`handler`]). Stock truth (MSI source-item quantities from
//! the ERP) follows with the reconciler's resync requests.

pub mod config;
pub mod handler;

use std::sync::Arc;
use std::time::Duration;

use bridge_events::EventCodec;
use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use bridge_runtime::processor::{self, ProcessorConfig};
use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::handler::MagentoWriter;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "magento-writer";

fn start_error(reason: impl ToString) -> ServiceError {
    ServiceError::Start {
        what: "processing loop".into(),
        reason: reason.to_string(),
    }
}

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let service = config.service();
    let work_shutdown = shutdown.clone();
    bridge_runtime::service::run(
        NAME,
        &service.kafka,
        &service.http,
        shutdown,
        |health| async move {
            let writer = config.writer.clone();
            let guard = Guard::new(
                "Magento",
                RateLimiter::new(writer.rate_limit_per_second, writer.burst),
                CircuitBreaker::new(
                    writer.breaker_failures,
                    Duration::from_millis(writer.breaker_open_ms),
                ),
            );
            let magento = Arc::new(magento_rest::Magento::new(&writer.magento));
            let loop_config = ProcessorConfig::from_settings(
                NAME,
                &writer.group_id,
                &writer.results_topic,
                &config.processor,
            );
            let handler =
                MagentoWriter::new(magento, tokio::runtime::Handle::current(), guard, writer);
            let codec = Arc::new(EventCodec::new(&config.registry.url));
            let kafka = config.kafka.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                processor::run(
                    &kafka,
                    &loop_config,
                    codec,
                    handler,
                    runtime,
                    health,
                    work_shutdown,
                )
            })
            .await
            .map_err(start_error)?
            .map_err(start_error)
        },
    )
    .await
}
