//! **inventory-aggregator**: inventory movements summed per (SKU, MSI source) in tumbling
//! event-time windows kept in the runtime's sled state, one `StockDeltaAggregated` per key
//! when its window closes — by event time, or by the wall clock when the partition is quiet.
//!
//! [`window`] holds the pure window logic, [`handler`] the state layout and timers.

pub mod config;
pub mod handler;
pub mod metrics;
pub mod window;

use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::handler::Aggregator;
use crate::metrics::AggregatorMetrics;

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "inventory-aggregator";

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let settings = config.aggregator.clone();
    let (group_id, input_topic) = (settings.group_id.clone(), settings.input_topic.clone());
    bridge_runtime::service::run_handler(
        NAME,
        &config.service(),
        &group_id,
        &input_topic,
        shutdown,
        move |metrics| {
            Aggregator::new(
                settings.windows(),
                settings.closed_retention(),
                &settings.output_topic,
                AggregatorMetrics::register(&metrics),
            )
        },
    )
    .await
}
