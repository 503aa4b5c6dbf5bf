//! What librdkafka calls back: rebalances and statistics on the consumer, delivery reports
//! on the producer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Statistics};

use crate::metrics::{Metrics, PartitionLabels};

/// A change of assignment seen during `poll`, handled by the loop right after, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RebalanceEvent {
    /// These partitions are gone (all of them under the eager protocol, some under
    /// cooperative-sticky).
    Revoked(Vec<i32>),
    /// These partitions arrived.
    Assigned(Vec<i32>),
}

/// The consumer's callbacks.
pub(super) struct ConsumerCallbacks {
    pub(super) events: Mutex<Vec<RebalanceEvent>>,
    pub(super) metrics: Arc<Metrics>,
}

impl ConsumerCallbacks {
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// The events since the last call.
    pub(super) fn take_events(&self) -> Vec<RebalanceEvent> {
        match self.events.lock() {
            Ok(mut events) => std::mem::take(&mut *events),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn note(&self, event: RebalanceEvent) {
        match self.events.lock() {
            Ok(mut events) => events.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }
}

impl ClientContext for ConsumerCallbacks {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in statistics.topics {
            for (partition, p) in stats.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    let labels = PartitionLabels {
                        topic: topic.clone(),
                        partition,
                    };
                    self.metrics
                        .consumer_lag
                        .get_or_create(&labels)
                        .set(p.consumer_lag);
                }
            }
        }
    }

    /// Errors librdkafka reports outside a poll. A partition EOF that arrives here (rather
    /// than through the consumer's poll) is not an error: it is dropped at debug level.
    fn error(&self, error: KafkaError, reason: &str) {
        match error {
            KafkaError::Global(RDKafkaErrorCode::PartitionEOF) => {
                tracing::debug!(reason, "end of partition reached");
            }
            other => tracing::error!(error = %other, reason, "librdkafka error"),
        }
    }
}

impl ConsumerContext for ConsumerCallbacks {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = list.elements().iter().map(|e| e.partition()).collect();
            self.note(RebalanceEvent::Revoked(partitions));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = list.elements().iter().map(|e| e.partition()).collect();
            self.note(RebalanceEvent::Assigned(partitions));
        }
    }
}

/// The producer's callbacks: counts records that could not be delivered, which the
/// at-least-once commit checks before it commits offsets (a transaction fails by itself).
#[derive(Default)]
pub(super) struct ProducerCallbacks {
    failed: AtomicU64,
}

impl ProducerCallbacks {
    /// Records not delivered since the producer started.
    pub(super) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }
}

impl ClientContext for ProducerCallbacks {}

impl ProducerContext for ProducerCallbacks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((error, message)) = result {
            self.failed.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                topic = message.topic(),
                partition = message.partition(),
                %error,
                "record not delivered"
            );
        }
    }
}
