//! Adobe Commerce (synchronous) webhooks: `POST /webhooks/commerce`.
//!
//! Commerce calls these *inside* the shopper's request and has no retries (EVENTS.md), so
//! this endpoint never makes checkout wait on Kafka, Magento's REST API or the ERP: it
//! answers `{"op":"success"}` at once. When the payload names an order that exists
//! (`entity_id` or `increment_id`: an *after* hook such as
//! `plugin.magento.sales.api.order_repository.save`), the order is ingested in the
//! background like an I/O Events doorbell — through a queue of bounded size worked by
//! [`WORKERS`] tasks; when the queue is full the doorbell is dropped and counted (the poller
//! reads the order), never a task per request; a *before* hook
//! (`plugin.magento.sales.api.order_management.place`) has no order yet and is only
//! counted. The durable feed stays I/O Events + the poller, which also cover a doorbell
//! lost here.
//!
//! Payloads: plugin hooks send the method arguments (`{"order": {...}}`), observer hooks
//! `{"eventName": ..., "data": {"order": {...}}}`. The route is served only with a public
//! key configured (or `allow_unsigned`): the `x-adobe-commerce-webhook-signature` header
//! (base64 RSA-SHA256 of the body) is then required, and a bad or missing one is `401`
//! (register the hook with `required="false"` so a rotated key cannot break checkout).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bridge_runtime::shutdown::Shutdown;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;

use super::{Original, Receiver};
use crate::pipeline::id_text;
use magento::commerce_signature::{SIGNATURE, signed_by};

/// The path Commerce webhooks are posted to.
pub const PATH: &str = "/webhooks/commerce";

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
        .chars()
        .take(128)
        .collect::<String>();
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
            let doorbell = Doorbell {
                span: tracing::Span::current(),
                order: order.clone(),
                body,
                hook: hook.clone(),
            };
            if receiver.doorbells.0.try_send(doorbell).is_err() {
                receiver.metrics.rejected("doorbell_queue_full");
                tracing::warn!(
                    hook,
                    "commerce webhook doorbell queue full: dropped; the poller will read the order"
                );
            }
        }
        Some(_) => tracing::debug!(hook, "commerce webhook before the order exists: counted"),
        None => tracing::debug!(hook, "commerce webhook without an order: counted"),
    }
    Json(json!({ "op": "success" })).into_response()
}

/// How many doorbells are worked at once.
pub const WORKERS: usize = 4;

/// One Commerce webhook naming an order, waiting to be ingested.
pub struct Doorbell {
    order: Value,
    body: Bytes,
    hook: String,
    /// The delivery's span: the work on the order continues its trace.
    span: tracing::Span,
}

/// The sending side of the doorbell queue.
pub struct Doorbells(mpsc::Sender<Doorbell>);

/// A doorbell queue of `capacity`: the receiver's side, and the side [`work`] takes.
pub fn queue(capacity: usize) -> (Doorbells, mpsc::Receiver<Doorbell>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Doorbells(tx), rx)
}

/// Works the doorbell queue, [`WORKERS`] at a time, until `shutdown`.
pub async fn work(
    receiver: Arc<Receiver>,
    mut queue: mpsc::Receiver<Doorbell>,
    shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(WORKERS));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let doorbell = tokio::select! {
            () = &mut stop => return,
            next = queue.recv() => match next {
                Some(doorbell) => doorbell,
                None => return,
            },
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let receiver = Arc::clone(&receiver);
        tokio::spawn(async move {
            let Doorbell {
                order,
                body,
                hook,
                span,
            } = doorbell;
            let work = tracing::info_span!(parent: &span, "ingest order", otel.kind = "internal");
            let original = Original {
                bytes: &body,
                key: order.get("increment_id").map(id_text),
            };
            match receiver
                .order_doorbell(&order, &original)
                .instrument(work)
                .await
            {
                Ok(message) => tracing::info!(hook, message, "commerce webhook ingested"),
                Err(error) => {
                    tracing::warn!(hook, %error, "commerce webhook not ingested; the poller will read the order")
                }
            }
            drop(slot);
        });
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(json!({ "op": "exception", "message": message })),
    )
        .into_response()
}
