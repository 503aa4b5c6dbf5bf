//! **erp-writer**: order events into the ERP — exactly one ERP order per Magento order,
//! under retries, restarts and ERP trouble — and the ERP's verdict back onto Kafka.
//!
//! It runs on the runtime's exactly-once loop over the orders topic ([`handler`]): the
//! [`mapping`] turns an `OrderPlaced` into a sales order; the [`connector`] talks to the
//! ERP; the runtime's `guard` keeps to the ERP's rate limit and stops calling it while it is down.
//! `ErpOrderResult` verdicts go to the results topic in the same transaction as the input
//! offset; rejections are parked too, to be replayed after a fix.

pub mod config;
pub mod connector;
pub mod handler;
pub mod mapping;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::config::ConnectorKind;
use crate::connector::ErpConnector;
use crate::connector::erp_sim::ErpSimConnector;
use crate::connector::tryton::{TrytonConnector, TrytonSettings};
use crate::handler::ErpWriter;
use crate::mapping::Mapping;
use crate::metrics::WriterMetrics;
use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};

/// The service name in logs, metrics and the consumer group.
pub const NAME: &str = "erp-writer";

fn start_error(what: &str, reason: impl ToString) -> ServiceError {
    ServiceError::Start {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// Runs the service until `shutdown`. The mapping file is read and checked first: a bad
/// one stops the service before it touches Kafka or the ERP.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let mapping = Arc::new(
        Mapping::load(&config.writer.mapping_file).map_err(|e| start_error("mapping", e))?,
    );
    let erp = &config.writer.erp;
    let timeout = Duration::from_millis(erp.timeout_ms);
    match erp.connector {
        ConnectorKind::ErpSim => {
            let connector = ErpSimConnector::new(&erp.base_url, timeout)
                .map_err(|e| start_error("ERP connector", e))?;
            run_with(config, shutdown, mapping, Arc::new(connector)).await
        }
        ConnectorKind::Tryton => {
            let settings = TrytonSettings {
                base_url: erp.base_url.clone(),
                database: erp.database.clone(),
                user: erp.user.clone(),
                password: erp.password.clone(),
            };
            let connector = TrytonConnector::new(settings, timeout)
                .map_err(|e| start_error("ERP connector", e))?;
            run_with(config, shutdown, mapping, Arc::new(connector)).await
        }
    }
}

async fn run_with<C: ErpConnector>(
    config: Config,
    shutdown: Shutdown,
    mapping: Arc<Mapping>,
    connector: Arc<C>,
) -> Result<(), ServiceError> {
    let writer = config.writer.clone();
    bridge_runtime::service::run_handler(
        NAME,
        &config.service(),
        &config.writer.group_id,
        &config.writer.orders_topic,
        shutdown,
        move |metrics| {
            ErpWriter::new(
                connector,
                mapping,
                tokio::runtime::Handle::current(),
                Guard::new(
                    "the ERP",
                    RateLimiter::new(writer.erp.rate_limit_per_second, writer.erp.burst),
                    CircuitBreaker::new(
                        writer.erp.breaker_failures,
                        Duration::from_millis(writer.erp.breaker_open_ms),
                    ),
                ),
                &writer.results_topic,
                WriterMetrics::register(&metrics),
            )
        },
    )
    .await
}
