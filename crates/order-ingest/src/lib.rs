//! **order-ingest**: Magento webhooks and REST polling to order events and inventory movements.
//!
//! - [`webhook`]: the Adobe I/O Events receiver — signature check, then the delivery is a
//!   doorbell for the REST order; 2xx only once the events are committed in Kafka.
//! - [`poller`]: `updated_at` polling of orders and credit memos with a cursor saved in
//!   the same step as the events, overlapping windows and key-based paging.
//! - [`pipeline`]: mapping ([`magento`]), Avro encoding and exactly-once publishing through
//!   the runtime's [`bridge_runtime::source::SourcePublisher`], which drops facts already
//!   published — so a fact seen by both paths is one event. Unmappable input is parked
//!   with its original bytes and the field named.
//! - [`rest`]: the Magento REST client; [`signature`]: Adobe's RSA signatures;
//!   [`config`]: `[ingest]` settings; [`metrics`]: webhook and poll series.

pub mod commerce_webhook;
pub mod config;
pub mod magento;
pub mod metrics;
pub mod pipeline;
pub mod poller;
pub mod rest;
pub mod signature;
pub mod source_items;
pub mod webhook;

use std::sync::Arc;

use bridge_events::EventCodec;
use bridge_runtime::service::ServiceError;
use bridge_runtime::shutdown::Shutdown;
use bridge_runtime::source::{SourceConfig, SourcePublisher};

pub use config::Config;

/// The service name in logs, metrics and the transactional id.
pub const NAME: &str = "order-ingest";

/// Runs the service until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), ServiceError> {
    let service = config.service();
    let stop = shutdown.clone();
    let mut source = SourceConfig::new(
        NAME,
        format!("{NAME}-{}", config.processor.instance()),
        config.state_dir(),
    );
    source.publish_timeout = config.publish_timeout();
    source.dedupe_ttl = std::time::Duration::from_secs(config.processor.dedupe_ttl_hours * 3600);
    let publisher = Arc::new(SourcePublisher::start(&config.kafka, source).map_err(|e| {
        ServiceError::Start {
            what: "the source publisher".into(),
            reason: e.to_string(),
        }
    })?);
    let for_work = Arc::clone(&publisher);
    let result = bridge_runtime::service::run(NAME, &service.kafka, &service.http, shutdown, |health| async move {
        let metrics = health.metrics();
        let ingest_metrics = metrics::IngestMetrics::register(&metrics);
        let pipeline = Arc::new(pipeline::Pipeline::new(
            for_work,
            Arc::new(EventCodec::new(&config.registry.url)),
            rest::Magento::new(&config.ingest.magento),
            config.ingest.clone(),
            Arc::clone(&metrics),
        ));
        let webhook = async {
            let settings = &config.ingest.webhook;
            if !settings.enabled {
                return std::future::pending().await;
            }
            if !settings.verify_signatures {
                tracing::warn!("ingest.webhook.verify_signatures = false: unsigned deliveries are accepted");
            }
            let commerce_key = match &settings.commerce_public_key_file {
                Some(path) => Some(signature::read_public_key(path).map_err(|reason| {
                    ServiceError::Start {
                        what: "the Commerce webhook receiver (ingest.webhook.commerce_public_key_file)".into(),
                        reason,
                    }
                })?),
                None => None,
            };
            let receiver = Arc::new(webhook::Receiver {
                pipeline: Arc::clone(&pipeline),
                verifier: settings
                    .verify_signatures
                    .then(|| signature::Verifier::new(&settings.key_base_url)),
                client_id: settings.client_id.clone(),
                commerce_key,
                metrics: ingest_metrics.clone(),
            });
            let listener = tokio::net::TcpListener::bind(settings.listen)
                .await
                .map_err(|e| ServiceError::Start {
                    what: format!("the webhook receiver on {}", settings.listen),
                    reason: e.to_string(),
                })?;
            tracing::info!(addr = %settings.listen, path = webhook::PATH, "webhook receiver listening");
            axum::serve(listener, webhook::router(receiver))
                .with_graceful_shutdown(stop.clone().wait())
                .await
                .map_err(|e| ServiceError::Start {
                    what: "the webhook receiver".into(),
                    reason: e.to_string(),
                })
        };
        let poll = async {
            if !config.ingest.poll.enabled {
                return std::future::pending().await;
            }
            poller::Poller::new(Arc::clone(&pipeline), config.ingest.poll.clone(), ingest_metrics.clone())
                .run(stop.clone())
                .await;
            Ok(())
        };
        tokio::select! {
            result = webhook => result,
            result = poll => result,
        }
    })
    .await;
    // Webhook connections still open may hold the pipeline: release the local state now.
    publisher.close().await;
    result
}
