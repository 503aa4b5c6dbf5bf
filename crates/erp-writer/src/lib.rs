//! **erp-writer**: order events into the ERP — exactly one ERP order per Magento order,
//! under retries, restarts and ERP trouble — and the ERP's verdict back onto Kafka.
//!
//! It runs on the runtime's exactly-once loop over the orders topic ([`handler`]): the
//! mapping (the `erp` adapter) turns an `OrderPlaced` into a sales order; its connector talks to the
//! ERP; the runtime's `guard` keeps to the ERP's rate limit and stops calling it while it is down.
//! `ErpOrderResult` verdicts go to the results topic in the same transaction as the input
//! offset; rejections are parked too, to be replayed after a fix.

pub mod calls;
pub mod config;
pub mod customers;
pub mod handler;
pub mod metrics;
pub mod resync;
pub mod shipments;
pub mod stock;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bridge_runtime::service::{LoopSpec, ServiceError};
use bridge_runtime::shutdown::Shutdown;

pub use config::Config;

use crate::calls::ErpCaller;
use crate::customers::{CustomerBatching, CustomerSync, Ensured};
use crate::handler::ErpWriter;
use crate::metrics::WriterMetrics;
use crate::resync::Resyncer;
use crate::stock::{Batching, StockWriter};
use bridge_runtime::guard::{CircuitBreaker, Guard, RateLimiter};
use erp::connector::ErpConnector;
use erp::connector::configured::Configured;
use erp::mapping::Mapping;

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
    let connector = Configured::from_settings(&config.writer.erp)
        .map_err(|e| start_error("ERP connector", e))?;
    run_with(config, shutdown, mapping, Arc::new(connector)).await
}

/// What every loop that calls the ERP shares: the connector, the mapping, one rate limit
/// and circuit breaker (clones share them), one set of metric series, the runtime.
struct Shared<C> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    guard: Guard,
    series: Arc<OnceLock<WriterMetrics>>,
    runtime: tokio::runtime::Handle,
    ensured: Ensured,
}

impl<C> Clone for Shared<C> {
    fn clone(&self) -> Self {
        Self {
            connector: Arc::clone(&self.connector),
            mapping: Arc::clone(&self.mapping),
            guard: self.guard.clone(),
            series: Arc::clone(&self.series),
            runtime: self.runtime.clone(),
            ensured: self.ensured.clone(),
        }
    }
}

impl<C> Shared<C> {
    /// The writer's series, registered with the first loop's registry.
    fn metrics(&self, registry: &Arc<bridge_runtime::metrics::Metrics>) -> WriterMetrics {
        self.series
            .get_or_init(|| WriterMetrics::register(registry))
            .clone()
    }

    /// A caller under the shared guard, counting into `metrics`.
    fn caller(&self, metrics: &WriterMetrics) -> ErpCaller {
        ErpCaller::new(self.runtime.clone(), self.guard.clone(), metrics.clone())
    }
}

async fn run_with<C: ErpConnector>(
    config: Config,
    shutdown: Shutdown,
    mapping: Arc<Mapping>,
    connector: Arc<C>,
) -> Result<(), ServiceError> {
    let writer = config.writer.clone();
    let erp = &writer.erp;
    let shared = Shared {
        connector,
        mapping,
        guard: Guard::new(
            "the ERP",
            RateLimiter::new(erp.rate_limit_per_second, erp.burst),
            CircuitBreaker::new(
                erp.breaker_failures,
                Duration::from_millis(erp.breaker_open_ms),
            ),
        ),
        series: Arc::new(OnceLock::new()),
        runtime: tokio::runtime::Handle::current(),
        ensured: Ensured::default(),
    };
    let mut loops = Vec::new();
    for worker in 0..writer.order_workers {
        let shared = shared.clone();
        let results_topic = writer.results_topic.clone();
        let shipments = writer.shipments.clone();
        let spec = LoopSpec::new(&writer.group_id, &writer.orders_topic, move |registry| {
            let metrics = shared.metrics(&registry);
            ErpWriter::new(
                shared.connector,
                shared.mapping,
                shared.runtime,
                shared.guard,
                &results_topic,
                metrics,
            )
            .with_shipments(shipments)
            .with_ensured(shared.ensured)
        });
        // One worker: the loop of old (its state folder and member id unchanged).
        loops.push(match writer.order_workers {
            1 => spec,
            _ => spec.worker(worker),
        });
    }
    let customers = &writer.customers;
    if customers.enabled {
        let batching = CustomerBatching {
            wait: Duration::from_millis(customers.batch_wait_ms),
            limit: customers.batch_limit,
            remember: Duration::from_secs(customers.remember_hours * 3600),
        };
        let shared = shared.clone();
        loops.push(LoopSpec::new(
            &customers.group_id,
            &writer.orders_topic,
            move |registry| {
                let metrics = shared.metrics(&registry);
                let caller = shared.caller(&metrics);
                CustomerSync::new(
                    shared.connector,
                    shared.mapping,
                    caller,
                    batching,
                    metrics,
                    shared.ensured,
                )
            },
        ));
    }
    let resync = &writer.resync;
    if resync.enabled {
        let magento = magento::rest::Magento::new(&resync.magento);
        let shared = shared.clone();
        loops.push(LoopSpec::new(
            &resync.group_id,
            &resync.topic,
            move |registry| {
                let metrics = shared.metrics(&registry);
                let caller = shared.caller(&metrics);
                Resyncer::new(
                    shared.connector,
                    shared.mapping,
                    magento,
                    shared.runtime,
                    caller,
                    metrics,
                )
            },
        ));
    }
    let stock = &writer.stock;
    if stock.enabled {
        let batching = Batching {
            wait: Duration::from_millis(stock.batch_wait_ms),
            limit: stock.batch_limit,
            retry: config.processor.retry.policy(),
        };
        let results_topic = writer.results_topic.clone();
        loops.push(LoopSpec::new(
            &stock.group_id,
            &stock.topic,
            move |registry| {
                let metrics = shared.metrics(&registry);
                let caller = shared.caller(&metrics);
                StockWriter::new(
                    shared.connector,
                    shared.mapping,
                    caller,
                    batching,
                    &results_topic,
                    metrics,
                )
            },
        ));
    }
    bridge_runtime::service::run_handlers(NAME, &config.service(), loops, shutdown).await
}
