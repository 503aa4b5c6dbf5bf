//! Adobe Commerce (synchronous) webhooks: `POST /webhooks/commerce`.
//!
//! Commerce calls these *inside* the shopper's request and has no retries (EVENTS.md), so
//! this endpoint never makes checkout wait on Kafka, Magento's REST API or the ERP: it
//! answers `{"op":"success"}` at once. When the payload names an order that exists
//! (`entity_id` or `increment_id`: an *after* hook such as
//! `plugin.magento.sales.api.order_repository.save`), the order is ingested in the
//! background like an I/O Events doorbell; a *before* hook
//! (`plugin.magento.sales.api.order_management.place`) has no order yet and is only
//! counted. The durable feed stays I/O Events + the poller, which also cover a doorbell
//! lost here.
//!
//! Payloads: plugin hooks send the method arguments (`{"order": {...}}`), observer hooks
//! `{"eventName": ..., "data": {"order": {...}}}`. A configured public key makes the
//! `x-adobe-commerce-webhook-signature` header (base64 RSA-SHA256 of the body) required;
//! a bad signature is `401` (register the hook with `required="false"` so a rotated key
//! cannot break checkout).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rsa::RsaPublicKey;
use serde_json::{Value, json};

use crate::pipeline::id_text;
use crate::signature::verify_with;
use crate::webhook::{Original, Receiver};

/// The path Commerce webhooks are posted to.
pub const PATH: &str = "/webhooks/commerce";
/// The signature header Commerce sends when signing is on.
pub const SIGNATURE: &str = "x-adobe-commerce-webhook-signature";

/// `POST /webhooks/commerce`.
pub async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.metrics.webhooks_received.inc();
    if let Some(key) = &receiver.commerce_key
        && !signed_by(key, &headers, &body)
    {
        receiver.metrics.rejected("signature");
        return error(
            StatusCode::UNAUTHORIZED,
            format!("missing or bad `{SIGNATURE}`"),
        );
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload) => payload,
        Err(e) => {
            receiver.metrics.rejected("malformed");
            return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"));
        }
    };
    let hook = payload
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or("plugin")
        .to_owned();
    let order = payload
        .get("order")
        .or_else(|| payload.get("data").and_then(|d| d.get("order")))
        .filter(|o| o.is_object());
    let named = order.is_some_and(|o| {
        ["entity_id", "increment_id"]
            .iter()
            .any(|k| o.get(k).map(id_text).is_some_and(|id| !id.is_empty()))
    });
    match order {
        Some(order) if named => {
            let order = order.clone();
            let receiver = Arc::clone(&receiver);
            tokio::spawn(async move {
                let original = Original {
                    bytes: &body,
                    key: order.get("increment_id").map(id_text),
                };
                match receiver.order_doorbell(&order, &original).await {
                    Ok(message) => tracing::info!(hook, message, "commerce webhook ingested"),
                    Err(error) => {
                        tracing::warn!(hook, %error, "commerce webhook not ingested; the poller will read the order")
                    }
                }
            });
        }
        Some(_) => tracing::debug!(hook, "commerce webhook before the order exists: counted"),
        None => tracing::debug!(hook, "commerce webhook without an order: counted"),
    }
    Json(json!({ "op": "success" })).into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "op": "exception", "message": message })),
    )
        .into_response()
}

fn signed_by(key: &RsaPublicKey, headers: &HeaderMap, body: &[u8]) -> bool {
    headers
        .get(SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|signature| verify_with(key, signature, body))
}
