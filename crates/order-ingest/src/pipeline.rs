//! From a Magento payload to records in Kafka: map, encode, publish — or park what cannot
//! be mapped, with its original bytes and the field named. Shared by the webhook receiver
//! and the poller, so both produce the same events with the same ids.

use std::sync::Arc;

use bridge_events::{CodecError, Event, EventCodec};
use bridge_runtime::metrics::{ErrorLabels, Metrics, TopicLabels};
use bridge_runtime::parking::ParkedRecord;
use bridge_runtime::source::{Batch, PublishError, Published, Record, SourcePublisher};
use bridge_runtime::trace;
use serde_json::Value;

use crate::config::IngestSettings;
use magento::rest::{Magento, RestError};
use magento::{FieldError, Mapped, Obj, map_creditmemo, map_order, map_shipment, map_source_item};

/// Why an input could not be taken now (answer 503 / poll again later).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Kafka did not take the records.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Magento's REST API failed.
    #[error(transparent)]
    Rest(#[from] RestError),
    /// The schema registry is unreachable (a refused schema is a build bug and parks).
    #[error("encoding: {0}")]
    Codec(#[from] CodecError),
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its records (those not published before).
    Records(Vec<Record>),
    /// It was parked for this reason.
    Parked {
        /// The error class.
        class: &'static str,
        /// The reason, naming the field.
        reason: String,
        /// The parked record.
        record: Record,
    },
}

/// The mapping and publishing half of order-ingest.
pub struct Pipeline {
    /// Publishes exactly once.
    pub publisher: Arc<SourcePublisher>,
    codec: Arc<EventCodec>,
    /// The store's REST API.
    pub magento: Magento,
    settings: IngestSettings,
    metrics: Arc<Metrics>,
}

impl Pipeline {
    /// A pipeline publishing through `publisher`.
    pub fn new(
        publisher: Arc<SourcePublisher>,
        codec: Arc<EventCodec>,
        magento: Magento,
        settings: IngestSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            publisher,
            codec,
            magento,
            settings,
            metrics,
        }
    }

    /// The records of one REST order, or its parking.
    pub async fn order(&self, order: &Value, origin: &str) -> Result<Outcome, IngestError> {
        match map_order(
            &Obj::root(order),
            &self.settings.source,
            bridge_events::now_millis(),
        ) {
            Ok(mapped) => self.encode_or_park(mapped, order, origin).await,
            Err(e) => Ok(self.parked(order, "unmappable", &field_reason(&e), origin)),
        }
    }

    /// The records of one REST credit memo (its order is fetched for the increment id
    /// and the stock lines), or its parking.
    pub async fn creditmemo(&self, memo: &Value, origin: &str) -> Result<Outcome, IngestError> {
        self.of_order(memo, origin, map_creditmemo).await
    }

    /// The stock movements of one REST shipment (its order is fetched for the increment
    /// id and the lines), or its parking.
    pub async fn shipment(&self, shipment: &Value, origin: &str) -> Result<Outcome, IngestError> {
        self.of_order(shipment, origin, map_shipment).await
    }

    /// The `SOURCE_ITEM_SET` record of one MSI source item observed at `observed_at`, or
    /// its parking.
    pub async fn source_item(
        &self,
        item: &Value,
        observed_at: i64,
        origin: &str,
    ) -> Result<Outcome, IngestError> {
        match map_source_item(
            &Obj::root(item),
            &self.settings.source,
            observed_at,
            bridge_events::now_millis(),
        ) {
            Ok(movement) => {
                let mapped = Mapped {
                    orders: Vec::new(),
                    movements: vec![movement],
                };
                self.encode_or_park(mapped, item, origin).await
            }
            Err(e) => Ok(self.parked(item, "unmappable", &field_reason(&e), origin)),
        }
    }

    /// Maps `entity` (a credit memo or shipment, which name their order only by
    /// `order_id`) with its order.
    async fn of_order(
        &self,
        entity: &Value,
        origin: &str,
        map: fn(&Obj<'_>, &Obj<'_>, &str, i64) -> Result<Mapped, FieldError>,
    ) -> Result<Outcome, IngestError> {
        let Some(order_id) = entity.get("order_id").map(id_text) else {
            return Ok(self.parked(entity, "unmappable", "missing field `order_id`", origin));
        };
        let Some(order) = self.magento.order(&order_id).await? else {
            let reason = format!("its order (entity_id {order_id}) does not exist in Magento");
            return Ok(self.parked(entity, "not_found", &reason, origin));
        };
        match map(
            &Obj::root(entity),
            &Obj::root(&order),
            &self.settings.source,
            bridge_events::now_millis(),
        ) {
            Ok(mapped) => self.encode_or_park(mapped, entity, origin).await,
            Err(e) => Ok(self.parked(entity, "unmappable", &field_reason(&e), origin)),
        }
    }

    /// Publishes records and parkings as one transaction, saving `cursors` with them.
    pub async fn publish(
        &self,
        outcomes: Vec<Outcome>,
        cursors: Vec<(String, String)>,
    ) -> Result<Published, IngestError> {
        let mut parked = Vec::new();
        let mut records = Vec::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Records(r) => records.extend(r),
                Outcome::Parked { class, record, .. } => {
                    parked.push(class);
                    records.push(record);
                }
            }
        }
        let published = self.publisher.publish(Batch { records, cursors }).await?;
        for class in parked {
            let labels = ErrorLabels {
                error_code: class.to_owned(),
            };
            self.metrics.parked.get_or_create(&labels).inc();
        }
        for (topic, count) in &published.topics {
            self.metrics
                .records_out
                .get_or_create(&TopicLabels {
                    topic: topic.clone(),
                })
                .inc_by(*count as u64);
        }
        self.metrics.dedupe_hits.inc_by(published.duplicates as u64);
        Ok(published)
    }

    /// The records of `mapped`, or the parking of `original` when an event can never be
    /// encoded (a value its schema cannot hold): retrying could not help, so it is kept with
    /// the reason at once. Only an unreachable registry is retried.
    async fn encode_or_park(
        &self,
        mapped: Mapped,
        original: &Value,
        origin: &str,
    ) -> Result<Outcome, IngestError> {
        match self.encode(mapped).await {
            Err(IngestError::Codec(e)) if !e.is_retryable() => {
                Ok(self.parked(original, "unencodable", &e.to_string(), origin))
            }
            other => other,
        }
    }

    async fn encode(&self, mapped: Mapped) -> Result<Outcome, IngestError> {
        let mut records = Vec::with_capacity(mapped.orders.len() + mapped.movements.len());
        for event in mapped.orders {
            let key = order_ref(&event);
            records.push(self.record(&self.settings.orders_topic, key, event).await?);
        }
        for movement in mapped.movements {
            let key = format!("{}|{}", movement.sku, movement.source_code);
            records.push(
                self.record(
                    &self.settings.movements_topic,
                    key,
                    Event::InventoryMovement(movement),
                )
                .await?,
            );
        }
        Ok(Outcome::Records(records))
    }

    async fn record(&self, topic: &str, key: String, event: Event) -> Result<Record, IngestError> {
        let payload = self.codec.encode_event(topic, &event).await?;
        let event_id = event.envelope().event_id.clone();
        // A `send` span under the delivery's (or poll's) span; its context travels with the
        // record, so the services downstream continue this order's trace.
        let send = trace::send_span(topic, &event_id);
        send.record("messaging.kafka.message.key", key.as_str());
        let context = trace::outgoing(&send, &opentelemetry::Context::current());
        let mut headers = vec![("event_type".into(), event.record_name().as_bytes().to_vec())];
        trace::inject(&context, |name, value| {
            headers.push((name.to_owned(), value.into_bytes()));
        });
        Ok(Record {
            topic: topic.to_owned(),
            key: Some(key.into_bytes()),
            payload,
            headers,
            event_id: Some(event_id),
        })
    }

    /// A parking of `original` (its JSON as received) for `reason`.
    pub fn parked(
        &self,
        original: &Value,
        class: &'static str,
        reason: &str,
        origin: &str,
    ) -> Outcome {
        self.parked_bytes(
            original.to_string().into_bytes(),
            key_of(original),
            class,
            reason,
            origin,
        )
    }

    /// A parking of raw bytes.
    pub fn parked_bytes(
        &self,
        payload: Vec<u8>,
        key: Option<String>,
        class: &'static str,
        reason: &str,
        origin: &str,
    ) -> Outcome {
        tracing::warn!(class, origin, error = %reason, "input parked");
        let parked = ParkedRecord {
            key: key.map(String::into_bytes),
            payload: Some(payload),
            original_headers: Vec::new(),
            error_class: class.to_owned(),
            message: reason.to_owned(),
            topic: origin.to_owned(),
            partition: -1,
            offset: -1,
            attempts: 1,
            parked_at: bridge_events::now_millis(),
            service: crate::NAME.to_owned(),
        };
        Outcome::Parked {
            class,
            reason: reason.to_owned(),
            record: Record::parked(&self.settings.parked_topic, &parked),
        }
    }
}

/// The reason of an unmappable payload; it names the field (`missing field `items[2].sku``).
fn field_reason(e: &FieldError) -> String {
    e.to_string()
}

fn order_ref(event: &Event) -> String {
    event.envelope().correlation_id.clone()
}

/// The increment id (or entity id) of a payload, as the parked record's key.
fn key_of(value: &Value) -> Option<String> {
    ["increment_id", "entity_id"]
        .iter()
        .find_map(|k| value.get(k).map(id_text))
        .filter(|k| !k.is_empty())
}

/// An id that may come as a number or a string.
pub fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}
