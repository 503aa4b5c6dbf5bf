//! The Adobe I/O Events webhook receiver (`POST /webhooks/adobe-io`, CloudEvents 1.0).
//!
//! A delivery is a doorbell: it names an order (credit memo, shipment) that changed; the receiver
//! fetches the REST entity and maps that, so a webhook and the poller produce the same
//! events with the same ids. If Magento does not know the order, the payload itself is
//! mapped when it carries the whole order. Answers:
//! - `200` once the events are committed in Kafka (or were already), or the delivery was
//!   parked because it can never be mapped (the field is named in the parked record);
//! - `401` bad or missing signature, or another recipient — nothing produced;
//! - `400` a body that is not JSON, with the reason;
//! - `503` Kafka, Magento or the key host unavailable — Adobe retries for 24 h.
//!
//! `GET /webhooks/adobe-io?challenge=…` answers the registration challenge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::metrics::IngestMetrics;
use crate::pipeline::{IngestError, Outcome, Pipeline, id_text};
use crate::rest::RestError;
use crate::signature::{SignatureError, Verifier};

/// The path deliveries are posted to.
pub const PATH: &str = "/webhooks/adobe-io";
const ORIGIN: &str = "magento:webhook";

/// The receiver's parts.
pub struct Receiver {
    /// Maps and publishes.
    pub pipeline: Arc<Pipeline>,
    /// `None`: signatures are not checked.
    pub verifier: Option<Verifier>,
    /// Expected `recipient_client_id`, if any.
    pub client_id: Option<String>,
    /// The key Adobe Commerce webhooks must be signed with, if any.
    pub commerce_key: Option<rsa::RsaPublicKey>,
    /// Series.
    pub metrics: IngestMetrics,
}

/// The receiver's routes.
pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(PATH, get(challenge).post(deliver))
        .route(
            crate::commerce_webhook::PATH,
            axum::routing::post(crate::commerce_webhook::hook),
        )
        .with_state(receiver)
}

async fn challenge(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("challenge") {
        Some(challenge) => Json(json!({ "challenge": challenge })).into_response(),
        None => answer(StatusCode::BAD_REQUEST, "no `challenge` parameter"),
    }
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    let key = if status.is_success() {
        "status"
    } else {
        "error"
    };
    (status, Json(json!({ key: message.into() }))).into_response()
}

async fn deliver(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.metrics.webhooks_received.inc();
    let retry = headers
        .get("x-adobe-retry-count")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_owned();
    let response = receiver.handle(&headers, &body).await;
    tracing::info!(
        status = response.status().as_u16(),
        retry,
        "webhook delivery answered"
    );
    response
}

impl Receiver {
    async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        if let Some(verifier) = &self.verifier {
            match verifier.verify(headers, body).await {
                Ok(()) => {}
                Err(e @ SignatureError::KeyUnavailable { .. }) => {
                    self.metrics.rejected("key_unavailable");
                    return answer(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
                }
                Err(e) => {
                    self.metrics.rejected("signature");
                    return answer(StatusCode::UNAUTHORIZED, e.to_string());
                }
            }
        }
        let event: Value = match serde_json::from_slice(body) {
            Ok(event) => event,
            Err(e) => {
                self.metrics.rejected("malformed");
                return answer(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
            }
        };
        if let (Some(expected), Some(given)) = (
            &self.client_id,
            event.get("recipient_client_id").and_then(Value::as_str),
        ) && expected != given
        {
            self.metrics.rejected("recipient");
            return answer(
                StatusCode::UNAUTHORIZED,
                format!("recipient_client_id `{given}` is not this receiver's"),
            );
        }
        match self.ingest(&event, body).await {
            Ok(message) => answer(StatusCode::OK, message),
            Err(e) => {
                self.metrics.rejected("unavailable");
                tracing::warn!(error = %e, "webhook not taken; the sender will retry");
                answer(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }

    /// Maps and publishes one delivery; `Ok` says what happened.
    async fn ingest(&self, event: &Value, body: &[u8]) -> Result<String, IngestError> {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = event.get("data").and_then(|d| d.get("value"));
        let body = &Original {
            bytes: body,
            key: value.and_then(|v| v.get("increment_id")).map(id_text),
        };
        let outcome = match (kind, value) {
            ("", _) => self.park(body, "missing field `type`"),
            (_, None) => self.park(body, "missing field `data.value`"),
            (kind, Some(value)) if kind.contains("sales_order_creditmemo") => {
                self.child(value, body, Child::CreditMemo).await?
            }
            (kind, Some(value)) if kind.contains("sales_order_shipment") => {
                self.child(value, body, Child::Shipment).await?
            }
            (kind, Some(value)) if kind.contains("sales_order_") => self.order(value, body).await?,
            (kind, _) => return Ok(format!("ignored: `{kind}` is not an order event")),
        };
        let summary = match &outcome {
            Outcome::Parked { reason, .. } => format!("parked: {reason}"),
            Outcome::Records(_) => String::new(),
        };
        let published = self.pipeline.publish(vec![outcome], Vec::new()).await?;
        Ok(if summary.is_empty() {
            format!(
                "published {} events ({} already published)",
                published.produced, published.duplicates
            )
        } else {
            summary
        })
    }

    /// An order doorbell outside I/O Events (a Commerce webhook): mapped and published.
    pub(crate) async fn order_doorbell(
        &self,
        value: &Value,
        body: &Original<'_>,
    ) -> Result<String, IngestError> {
        let outcome = self.order(value, body).await?;
        let published = self.pipeline.publish(vec![outcome], Vec::new()).await?;
        Ok(format!(
            "published {} events ({} already published)",
            published.produced, published.duplicates
        ))
    }

    async fn order(&self, value: &Value, body: &Original<'_>) -> Result<Outcome, IngestError> {
        let entity_id = value
            .get("entity_id")
            .map(id_text)
            .filter(|id| !id.is_empty())
            .or_else(|| {
                value
                    .get("items")
                    .and_then(Value::as_array)
                    .and_then(|items| items.iter().find_map(|i| i.get("order_id").map(id_text)))
                    .filter(|id| !id.is_empty())
            });
        let increment_id = value
            .get("increment_id")
            .map(id_text)
            .filter(|i| !i.is_empty());
        let found = match (&entity_id, &increment_id) {
            (Some(id), _) => self.pipeline.magento.order(id).await,
            (None, Some(increment)) => self.pipeline.magento.order_by_increment_id(increment).await,
            (None, None) => {
                return Ok(self.park(
                    body,
                    "missing field `data.value.increment_id` (and no `entity_id`): the order cannot be identified",
                ));
            }
        };
        match found {
            Ok(Some(order)) => self.pipeline.order(&order, ORIGIN).await,
            // Magento does not know it: the payload itself, if it holds the whole order.
            Ok(None) => {
                let mut order = value.clone();
                if let (Some(id), Some(map)) = (entity_id, order.as_object_mut()) {
                    map.entry("entity_id").or_insert(Value::String(id));
                }
                self.pipeline.order(&order, ORIGIN).await
            }
            Err(e) => self.rest_failure(e, body),
        }
    }

    /// A credit memo or shipment doorbell: the REST entity by `entity_id`, mapped.
    async fn child(
        &self,
        value: &Value,
        body: &Original<'_>,
        child: Child,
    ) -> Result<Outcome, IngestError> {
        let Some(id) = value
            .get("entity_id")
            .map(id_text)
            .filter(|i| !i.is_empty())
        else {
            return Ok(self.park(body, "missing field `data.value.entity_id`"));
        };
        let magento = &self.pipeline.magento;
        let found = match child {
            Child::Shipment => magento.shipment(&id).await,
            Child::CreditMemo => magento.creditmemo(&id).await,
        };
        match (found, child) {
            (Ok(Some(entity)), Child::Shipment) => self.pipeline.shipment(&entity, ORIGIN).await,
            (Ok(Some(entity)), Child::CreditMemo) => {
                self.pipeline.creditmemo(&entity, ORIGIN).await
            }
            (Ok(None), _) => Ok(self.park_class(
                body,
                "not_found",
                &format!("{} {id} does not exist in Magento", child.name()),
            )),
            (Err(e), _) => self.rest_failure(e, body),
        }
    }

    /// Unavailable (or unauthorized: a setup problem that will be fixed) → retry later;
    /// refused for this input → park.
    fn rest_failure(&self, e: RestError, body: &Original<'_>) -> Result<Outcome, IngestError> {
        match e {
            RestError::Refused { .. } => Ok(self.park_class(body, "rest_refused", &e.to_string())),
            RestError::Unauthorized { .. } => {
                tracing::error!(error = %e, "check ingest.magento.token and its ACL resources");
                Err(e.into())
            }
            RestError::Unavailable(_) => Err(e.into()),
        }
    }

    fn park(&self, body: &Original<'_>, reason: &str) -> Outcome {
        self.park_class(body, "unmappable", reason)
    }

    fn park_class(&self, body: &Original<'_>, class: &'static str, reason: &str) -> Outcome {
        self.pipeline
            .parked_bytes(body.bytes.to_vec(), body.key.clone(), class, reason, ORIGIN)
    }
}

/// An entity that names its order only by `order_id`.
#[derive(Debug, Clone, Copy)]
enum Child {
    CreditMemo,
    Shipment,
}

impl Child {
    fn name(self) -> &'static str {
        match self {
            Self::CreditMemo => "credit memo",
            Self::Shipment => "shipment",
        }
    }
}

/// A delivery as received, for parking: its bytes, and the order it names as the key
/// (read from the already parsed event, not parsed again).
pub(crate) struct Original<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) key: Option<String>,
}
