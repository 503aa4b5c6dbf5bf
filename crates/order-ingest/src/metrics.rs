//! order-ingest's own series, next to the runtime's (`bridge_records_out_total` for events
//! produced, `bridge_parked_total` for parked inputs, `bridge_dedupe_hits_total` for facts
//! already published).

use std::sync::Arc;

use bridge_runtime::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;

/// Labels of rejected webhooks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `signature`, `recipient`, `malformed`, `unavailable`.
    pub reason: String,
}

/// Labels of poll series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `orders` or `creditmemos`.
    pub kind: String,
}

/// The series.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    /// Webhook deliveries received.
    pub webhooks_received: Counter,
    /// Webhook deliveries answered with an error, by reason.
    pub webhooks_rejected: Family<ReasonLabels, Counter>,
    /// Seconds between now and the poll cursor, per kind.
    pub poll_lag: Family<KindLabels, Gauge>,
    /// Polls that failed, per kind.
    pub poll_failures: Family<KindLabels, Counter>,
}

impl IngestMetrics {
    /// Registers the series with the service's metrics.
    pub fn register(metrics: &Arc<Metrics>) -> Self {
        let this = Self::default();
        metrics.register(
            "ingest_webhooks_received",
            "Webhook deliveries received",
            this.webhooks_received.clone(),
        );
        metrics.register(
            "ingest_webhooks_rejected",
            "Webhook deliveries answered with an error, by reason",
            this.webhooks_rejected.clone(),
        );
        metrics.register_with_unit(
            "ingest_poll_lag_seconds",
            "Now minus the poll cursor (Magento updated_at), per kind",
            Unit::Seconds,
            this.poll_lag.clone(),
        );
        metrics.register(
            "ingest_poll_failures",
            "Polls that failed, per kind",
            this.poll_failures.clone(),
        );
        this
    }

    /// Counts a rejection.
    pub fn rejected(&self, reason: &str) {
        self.webhooks_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}
