//! The webhook receiver: Adobe I/O Events (`POST /webhooks/adobe-io`, CloudEvents 1.0) and
//! a custom module's HMAC-signed doorbell (`POST /webhooks/custom`, the same body); Adobe
//! Commerce webhooks are in [`commerce`]. Each route verifies its signature
//! before the body is even parsed; a route without verification is served only when the
//! operator set `allow_unsigned`.
//!
//! A delivery is a doorbell: it names an order (credit memo, shipment) that changed; the
//! receiver fetches the REST entity and maps that, so a webhook and the poller produce the
//! same events with the same ids. The body is never the source of an order: one Magento
//! does not know is parked with the reason. Answers:
//! - `200` once the events are committed in Kafka (or were already), or the delivery was
//!   parked (the reason is in the parked record);
//! - `401` bad, missing or replayed signature, another recipient, or a `time` outside the
//!   replay window — nothing produced;
//! - `400` a body that is not JSON; `413` one over `server.max_body_bytes`;
//! - `503` (with `Retry-After`) Kafka, Magento or the key host unavailable, or too many
//!   requests in progress — Adobe retries for 24 h.
//!
//! `GET /webhooks/adobe-io?challenge=…` answers the registration challenge.

pub mod commerce;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::config::Route;
use crate::metrics::IngestMetrics;
use crate::pipeline::{IngestError, Outcome, Pipeline, id_text};
use magento::adobe_io_signature::Verifier;
use magento::hmac_signature::HmacVerifier;
use magento::rest::RestError;

/// The path I/O Events deliveries are posted to.
pub const PATH: &str = "/webhooks/adobe-io";
/// The path of the HMAC-signed custom doorbell.
pub const CUSTOM_PATH: &str = "/webhooks/custom";
const ORIGIN: &str = "magento:webhook";
/// `Retry-After` seconds when something we depend on is unavailable.
const RETRY_AFTER_SECONDS: u32 = 30;
/// How far ahead of this clock an I/O Events `time` may be (the sender's clock may run fast).
const MAX_CLOCK_AHEAD_SECONDS: i64 = 300;

/// How Adobe I/O Events deliveries are verified.
pub struct AdobeIo {
    /// Signatures, with keys from the allow-listed host.
    pub verifier: Verifier,
    /// The `recipient_client_id` every delivery must carry.
    pub client_id: String,
    /// The oldest `time` taken; older is a replay.
    pub max_age: Duration,
}

/// The receiver's parts.
pub struct Receiver {
    /// Maps and publishes.
    pub pipeline: Arc<Pipeline>,
    /// `None`: I/O Events deliveries are not verified (`allow_unsigned`).
    pub adobe_io: Option<AdobeIo>,
    /// The key Adobe Commerce webhooks must be signed with; `None`: not verified.
    pub commerce_key: Option<rsa::RsaPublicKey>,
    /// The custom route's verifier; `None`: not verified.
    pub hmac: Option<HmacVerifier>,
    /// Commerce webhook doorbells for the background workers.
    pub doorbells: commerce::Doorbells,
    /// Series.
    pub metrics: IngestMetrics,
}

/// The receiver's routes: those in `routes`.
pub fn router(receiver: Arc<Receiver>, routes: &[Route]) -> Router {
    let mut router = Router::new();
    for route in routes {
        router = match route {
            Route::AdobeIo => router.route(
                PATH,
                get(challenge)
                    .post(|State(r): State<Arc<Receiver>>, h, b| deliver(Route::AdobeIo, r, h, b)),
            ),
            Route::Commerce => router.route(commerce::PATH, post(commerce::hook)),
            Route::Custom => router.route(
                CUSTOM_PATH,
                post(|State(r): State<Arc<Receiver>>, h, b| deliver(Route::Custom, r, h, b)),
            ),
        };
    }
    router
        .route_layer(axum::middleware::from_fn(
            bridge_runtime::http_trace::server,
        ))
        .with_state(receiver)
}

async fn challenge(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("challenge") {
        Some(challenge) if challenge.len() <= 1024 => {
            Json(json!({ "challenge": challenge })).into_response()
        }
        Some(_) => answer(StatusCode::BAD_REQUEST, "`challenge` is too long"),
        None => answer(StatusCode::BAD_REQUEST, "no `challenge` parameter"),
    }
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    let key = if status.is_success() {
        "status"
    } else {
        "error"
    };
    let mut response = (status, Json(json!({ key: message.into() }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

/// One delivery on `route` (I/O Events or the custom doorbell: the same body, their own
/// signatures), answered and logged.
async fn deliver(
    route: Route,
    receiver: Arc<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.metrics.webhooks_received.inc();
    let response = receiver.handle(route, &headers, &body).await;
    tracing::info!(
        status = response.status().as_u16(),
        route = route.name(),
        retry = retry_count(&headers),
        "webhook delivery answered"
    );
    response
}

/// Adobe's retry counter, if it is a number.
fn retry_count(headers: &HeaderMap) -> u32 {
    headers
        .get("x-adobe-retry-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Receiver {
    async fn handle(&self, route: Route, headers: &HeaderMap, body: &[u8]) -> Response {
        if let Some(refused) = self.verify(route, headers, body).await {
            return refused;
        }
        let event: Value = match serde_json::from_slice(body) {
            Ok(event) => event,
            Err(e) => {
                self.metrics.rejected("malformed");
                return answer(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
            }
        };
        if route == Route::AdobeIo
            && let Some(io) = &self.adobe_io
        {
            if event.get("recipient_client_id").and_then(Value::as_str) != Some(&io.client_id) {
                self.metrics.rejected("recipient");
                return answer(
                    StatusCode::UNAUTHORIZED,
                    "recipient_client_id is missing or not this receiver's",
                );
            }
            if let Err(reason) = fresh(&event, io.max_age, bridge_events::now_millis()) {
                self.metrics.rejected("replayed");
                return answer(StatusCode::UNAUTHORIZED, reason);
            }
        }
        self.take(&event, body).await
    }

    /// The route's signature check before the body is even parsed; `Some` is the refusal.
    async fn verify(&self, route: Route, headers: &HeaderMap, body: &[u8]) -> Option<Response> {
        use magento::hmac_signature::HmacError;
        let refused = |reason: &str, status: StatusCode, message: String| {
            self.metrics.rejected(reason);
            Some(answer(status, message))
        };
        match (route, &self.adobe_io, &self.hmac) {
            (Route::AdobeIo, Some(io), _) => match io.verifier.verify(headers, body).await {
                Ok(()) => None,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "cannot verify a delivery: the key host is unavailable");
                    refused(
                        "key_unavailable",
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the signature cannot be verified now; retry later".into(),
                    )
                }
                Err(e) => refused("signature", StatusCode::UNAUTHORIZED, e.to_string()),
            },
            (Route::Custom, _, Some(hmac)) => {
                match hmac.verify(headers, body, bridge_events::now_millis() / 1000) {
                    Ok(()) => None,
                    Err(e @ HmacError::Busy) => {
                        refused("busy", StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    }
                    Err(e @ HmacError::Replayed) => {
                        refused("replayed", StatusCode::UNAUTHORIZED, e.to_string())
                    }
                    Err(e) => refused("signature", StatusCode::UNAUTHORIZED, e.to_string()),
                }
            }
            // No verification configured for the route: served only with `allow_unsigned`.
            _ => None,
        }
    }

    async fn take(&self, event: &Value, body: &[u8]) -> Response {
        match self.ingest(event, body).await {
            Ok(message) => answer(StatusCode::OK, message),
            Err(e) => {
                self.metrics.rejected("unavailable");
                tracing::warn!(error = %e, "webhook not taken; the sender will retry");
                answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily unavailable; retry later",
                )
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
            // The body is never the source of an order: what Magento does not return is
            // kept for an operator, not booked.
            Ok(None) => Ok(self.park_class(
                body,
                "not_found",
                "the order the delivery names does not exist in Magento",
            )),
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
                &format!(
                    "the {} the delivery names does not exist in Magento",
                    child.name()
                ),
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

/// `Ok` if the CloudEvents `time` of `event` is within the replay window at `now_millis`.
fn fresh(event: &Value, max_age: Duration, now_millis: i64) -> Result<(), &'static str> {
    let time = event
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or("no CloudEvents `time`: a replay cannot be told apart")?;
    let age_seconds = (now_millis - time.timestamp_millis()) / 1000;
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if age_seconds > max_age || age_seconds < -MAX_CLOCK_AHEAD_SECONDS {
        return Err("delivery `time` is outside the replay window");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_window_takes_fresh_and_refuses_old_future_and_missing_times() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        let day = Duration::from_secs(25 * 3600);
        let at = |t: &str| json!({ "time": t });
        assert_eq!(fresh(&at("2026-03-01T11:59:00.123Z"), day, now), Ok(()));
        assert_eq!(
            fresh(&at("2026-02-28T12:00:00Z"), day, now),
            Ok(()),
            "a 24 h retry"
        );
        assert!(fresh(&at("2026-02-27T12:00:00Z"), day, now).is_err());
        assert!(fresh(&at("2026-03-01T12:10:00Z"), day, now).is_err());
        assert!(fresh(&json!({}), day, now).is_err());
        assert!(fresh(&at("yesterday"), day, now).is_err());
    }
}
