//! **order-ingest**: Magento webhooks and REST polling to order events and inventory movements.
//!
//! - [`webhook`]: the Adobe I/O Events receiver — signature check, then the delivery is a
//!   doorbell for the REST order; 2xx only once the events are committed in Kafka.
//! - [`poller`]: `updated_at` polling of orders and credit memos with a cursor saved in
//!   the same step as the events, overlapping windows and key-based paging.
//! - [`pipeline`]: mapping (the `magento` adapter), Avro encoding and exactly-once publishing through
//!   the runtime's [`bridge_runtime::source::SourcePublisher`], which drops facts already
//!   published — so a fact seen by both paths is one event. Unmappable input is parked
//!   with its original bytes and the field named.
//! - [`config`]: `[ingest]` settings; [`metrics`]: webhook and poll series. The REST client
//!   and the signature schemes are the `magento` adapter's.

pub mod config;
pub mod metrics;
pub mod pipeline;
pub mod poller;
pub mod source_items;
pub mod webhook;

use std::sync::Arc;

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
            Arc::new(config.registry.codec().map_err(|e| ServiceError::Start {
                what: "the schema registry client".into(),
                reason: e.to_string(),
            })?),
            magento::rest::Magento::new(&config.ingest.magento),
            config.ingest.clone(),
            Arc::clone(&metrics),
        ));
        let webhook = async {
            let settings = &config.ingest.webhook;
            if !settings.enabled {
                return std::future::pending().await;
            }
            let start_error = |what: &str, reason: String| ServiceError::Start {
                what: what.to_owned(),
                reason,
            };
            let (receiver, doorbells) = receiver(settings, Arc::clone(&pipeline), ingest_metrics.clone(), &metrics)
                .map_err(|reason| start_error("the webhook receiver", reason))?;
            let listener = bridge_runtime::listener::Listener::bind(settings.listen, &settings.server, &metrics)
                .await
                .map_err(|e| start_error("the webhook receiver", bridge_runtime::error_chain(&e)))?;
            let routes: Vec<&str> = settings.routes.iter().map(|r| r.name()).collect();
            tracing::info!(addr = %settings.listen, tls = listener.is_tls(), ?routes, "webhook receiver listening");
            tokio::spawn(webhook::commerce::work(Arc::clone(&receiver), doorbells, stop.clone()));
            listener
                .serve(webhook::router(receiver, &settings.routes), stop.clone())
                .await;
            Ok(())
        };
        let poll = async {
            if !config.ingest.poll.enabled {
                return std::future::pending().await;
            }
            // A round may rightly sleep the poll interval: the bound is the runtime's stall
            // bound on top of it.
            let bound = config.processor.stall_after()
                + std::time::Duration::from_millis(config.ingest.poll.interval_ms);
            poller::Poller::new(Arc::clone(&pipeline), config.ingest.poll.clone(), ingest_metrics.clone())
                .with_heartbeat(health.heartbeat("poller", bound))
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

/// The webhook receiver `settings` describe, and its doorbell queue; a key or secret that
/// cannot be read stops the start.
fn receiver(
    settings: &config::WebhookSettings,
    pipeline: Arc<pipeline::Pipeline>,
    ingest_metrics: metrics::IngestMetrics,
    metrics: &bridge_runtime::metrics::Metrics,
) -> Result<
    (
        Arc<webhook::Receiver>,
        tokio::sync::mpsc::Receiver<webhook::commerce::Doorbell>,
    ),
    String,
> {
    let unsigned: Vec<&str> = settings
        .routes
        .iter()
        .filter(|r| !settings.verifies(**r))
        .map(|r| r.name())
        .collect();
    let unsigned_allowed = prometheus_client::metrics::gauge::Gauge::<i64>::default();
    metrics.register(
        "ingest_webhook_unsigned_allowed",
        "1 while a webhook route accepts unsigned deliveries (allow_unsigned)",
        unsigned_allowed.clone(),
    );
    if !unsigned.is_empty() {
        unsigned_allowed.set(1);
        tracing::warn!(
            routes = ?unsigned,
            "ingest.webhook.allow_unsigned = true: these routes accept UNSIGNED deliveries; anyone who reaches the port can announce orders"
        );
    }
    let adobe_io = settings
        .client_id
        .clone()
        .filter(|c| !c.trim().is_empty())
        .map(|client_id| webhook::AdobeIo {
            verifier: magento::adobe_io_signature::Verifier::new(&settings.key_base_url),
            client_id,
            max_age: std::time::Duration::from_secs(settings.max_event_age_seconds),
        });
    let commerce_key = match &settings.commerce_public_key_file {
        Some(path) => Some(
            magento::adobe_io_signature::read_public_key(path)
                .map_err(|reason| format!("ingest.webhook.commerce_public_key_file: {reason}"))?,
        ),
        None => None,
    };
    let hmac = settings
        .hmac_secret()
        .map_err(|e| e.to_string())?
        .map(|secret| {
            magento::hmac_signature::HmacVerifier::new(
                secret,
                std::time::Duration::from_secs(settings.hmac_max_skew_seconds),
            )
        });
    let (doorbells, queue) = webhook::commerce::queue(settings.doorbell_queue);
    let receiver = Arc::new(webhook::Receiver {
        pipeline,
        adobe_io,
        commerce_key,
        hmac,
        doorbells,
        metrics: ingest_metrics,
    });
    Ok((receiver, queue))
}
