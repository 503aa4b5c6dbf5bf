//! ERP verdicts to Magento as order comments (and a status, if configured), and the ERP's
//! shipments as Magento shipments with their tracking, as a runtime [`Handler`] over the
//! results topic.
//!
//! Idempotent: each comment carries `[bridge <event id>]`, and before writing, the order's
//! status history is read; a comment already there (a crash between the write and the
//! offset commit) is not written again.

use std::sync::Arc;

use bridge_events::Event;
use bridge_events::erp::{ErpOrderResult, ErpOutcome, OrderShipped};
use bridge_runtime::guard::Guard;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use magento::rest::{Magento, RestError};
use serde_json::Value;
use tracing::Instrument;

use crate::config::WriterSettings;

/// The handler.
pub struct MagentoWriter {
    magento: Arc<Magento>,
    runtime: tokio::runtime::Handle,
    guard: Guard,
    settings: WriterSettings,
}

/// The marker that makes a comment findable again.
pub fn marker(event_id: &str) -> String {
    format!("[bridge {event_id}]")
}

/// The comment for a verdict (no customer data: it is the ERP's answer).
pub fn comment(result: &ErpOrderResult) -> String {
    let system = &result.erp_system;
    let text = match result.outcome {
        ErpOutcome::Accepted | ErpOutcome::Duplicate => {
            let document = result.erp_order_id.as_deref().unwrap_or("(no id)");
            match (&result.erp_totals, &result.currency) {
                (Some(totals), Some(currency)) => format!(
                    "Booked in {system} as {document}; the ERP's total is {} {currency}.",
                    totals.grand_total.round_dp(2)
                ),
                _ => format!("Booked in {system} as {document}."),
            }
        }
        ErpOutcome::Rejected => format!(
            "Refused by {system} ({}): {}. Fix it, then replay the order from erp-writer's parked topic.",
            result.reason_code.as_deref().unwrap_or("rejected"),
            result.reason.as_deref().unwrap_or("no reason given")
        ),
    };
    format!("{text} {}", marker(&result.envelope.event_id))
}

fn classify(guard: &mut Guard, e: RestError, what: &str) -> HandlerError {
    if e.is_retryable() {
        guard.failed(format!("{what}: {e}"), None)
    } else {
        guard.succeeded();
        HandlerError::Terminal {
            class: "magento_refused",
            reason: format!("{what}: {e}"),
        }
    }
}

impl MagentoWriter {
    /// A writer calling `magento` through `guard`, blocking on `runtime` for each call.
    pub fn new(
        magento: Arc<Magento>,
        runtime: tokio::runtime::Handle,
        guard: Guard,
        settings: WriterSettings,
    ) -> Self {
        Self {
            magento,
            runtime,
            guard,
            settings,
        }
    }

    /// One Magento call through the guard: its answer, or the error its failure means.
    fn call<T>(
        &mut self,
        what: &str,
        call: impl Future<Output = Result<T, RestError>>,
    ) -> Result<T, HandlerError> {
        self.guard.admit()?;
        let span =
            tracing::info_span!("magento call", otel.name = %format_args!("magento: {what}"));
        match self.runtime.block_on(call.instrument(span)) {
            Ok(answer) => {
                self.guard.succeeded();
                Ok(answer)
            }
            Err(e) => Err(classify(&mut self.guard, e, what)),
        }
    }

    /// The order `order_ref` as Magento has it (a missing one parks the record).
    fn find(&mut self, order_ref: &str) -> Result<Value, HandlerError> {
        let magento = Arc::clone(&self.magento);
        self.call(
            "finding the order",
            magento.order_by_increment_id(order_ref),
        )?
        .ok_or_else(|| HandlerError::Terminal {
            class: "order_not_found",
            reason: format!("Magento has no order {order_ref}"),
        })
    }

    fn write_back(&mut self, result: &ErpOrderResult) -> Result<(), HandlerError> {
        let order_ref = &result.order_ref;
        let order = self.find(order_ref)?;
        if written(&order, &result.envelope.event_id) {
            tracing::debug!(order_ref, "verdict already written back");
            return Ok(());
        }
        let entity_id = entity_id(&order, order_ref)?;
        let status = match result.outcome {
            ErpOutcome::Rejected => &self.settings.rejected_status,
            _ => &self.settings.accepted_status,
        };
        let status = (!status.is_empty()).then_some(status.clone());
        let magento = Arc::clone(&self.magento);
        let notify = self.settings.notify_customer;
        let text = comment(result);
        let posted = magento.post_comment(&entity_id, &text, status.as_deref(), notify);
        self.call("writing the comment", posted)?;
        tracing::debug!(order_ref, outcome = ?result.outcome, "verdict written back");
        Ok(())
    }

    /// Ships the order in Magento with the ERP's tracking; one Magento shipped already (by
    /// hand) gets the comment only; a cancelled one parks the record — goods left for an
    /// order the shop cancelled, which people must look at.
    fn ship(&mut self, shipped: &OrderShipped) -> Result<(), HandlerError> {
        let order_ref = &shipped.order_ref;
        let order = self.find(order_ref)?;
        if written(&order, &shipped.envelope.event_id) {
            tracing::debug!(order_ref, "shipment already written back");
            return Ok(());
        }
        let entity_id = entity_id(&order, order_ref)?;
        let text = shipped_comment(shipped);
        let magento = Arc::clone(&self.magento);
        let written = match order["state"].as_str().unwrap_or_default() {
            "canceled" => {
                return Err(HandlerError::Terminal {
                    class: "shipped_but_cancelled",
                    reason: format!(
                        "{} shipped order {order_ref} ({}) but Magento cancelled it",
                        shipped.erp_system, shipped.shipment_id
                    ),
                });
            }
            "complete" | "closed" => {
                let text = format!("{text} (Magento had shipped it already.)");
                let posted = magento.post_comment(&entity_id, &text, None, false);
                self.call("commenting the shipment", posted)?;
                "comment"
            }
            _ => {
                let carrier = shipped.carrier.as_deref().unwrap_or_default();
                let (carrier_code, title) = carrier_of(carrier);
                let track = shipped
                    .tracking_number
                    .as_deref()
                    .map(|number| magento::rest::Track {
                        number,
                        title: &title,
                        carrier_code,
                    });
                let notify = self.settings.notify_customer;
                let shipping = magento.ship_order(&entity_id, track, &text, notify);
                self.call("shipping the order", shipping)?;
                "shipment"
            }
        };
        tracing::info!(order_ref, shipment = %shipped.shipment_id, written,
            "shipment written back");
        Ok(())
    }
}

/// Whether the order's history holds the comment of event `event_id` already.
fn written(order: &Value, event_id: &str) -> bool {
    let marker = marker(event_id);
    order["status_histories"].as_array().is_some_and(|h| {
        h.iter().any(|entry| {
            entry["comment"]
                .as_str()
                .is_some_and(|c| c.contains(&marker))
        })
    })
}

fn entity_id(order: &Value, order_ref: &str) -> Result<String, HandlerError> {
    match order.get("entity_id") {
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(HandlerError::Terminal {
            class: "magento_refused",
            reason: format!("order {order_ref} came without an entity_id"),
        }),
    }
}

/// The comment for a shipment.
pub fn shipped_comment(shipped: &OrderShipped) -> String {
    let tracking = match (&shipped.carrier, &shipped.tracking_number) {
        (Some(carrier), Some(number)) => format!(", {carrier} tracking {number}"),
        (None, Some(number)) => format!(", tracking {number}"),
        _ => String::new(),
    };
    format!(
        "Shipped by {} ({}{tracking}). {}",
        shipped.erp_system,
        shipped.shipment_id,
        marker(&shipped.envelope.event_id)
    )
}

/// Magento's carrier code and title for the ERP's carrier: Magento's own carriers by
/// their code, anything else as `custom` under the ERP's name.
fn carrier_of(carrier: &str) -> (&'static str, String) {
    match carrier.to_ascii_lowercase().as_str() {
        "ups" => ("ups", "UPS".into()),
        "fedex" => ("fedex", "FedEx".into()),
        "usps" => ("usps", "USPS".into()),
        "dhl" => ("dhl", "DHL".into()),
        "" => ("custom", "Carrier".into()),
        _ => ("custom", carrier.to_owned()),
    }
}

impl Handler for MagentoWriter {
    fn handle(&mut self, input: &Inbound<'_>, _ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        match input.event {
            Event::ErpOrderResult(result) => self.write_back(result),
            Event::OrderShipped(shipped) => self.ship(shipped),
            // Stock adjustments confirmed by the ERP share the topic; nothing to write.
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_events::samples;

    #[test]
    fn comments_carry_the_verdict_and_their_marker() {
        for event in samples::one_of_each() {
            let Event::ErpOrderResult(mut result) = event else {
                continue;
            };
            let accepted = comment(&result);
            assert!(accepted.contains(&marker(&result.envelope.event_id)));
            assert!(accepted.contains(&result.erp_system));
            result.outcome = ErpOutcome::Rejected;
            result.reason_code = Some("credit_limit".into());
            result.reason = Some("customer C-1 would exceed the credit limit".into());
            let rejected = comment(&result);
            assert!(rejected.starts_with("Refused by"));
            assert!(rejected.contains("credit_limit"));
            assert!(rejected.contains("exceed the credit limit"));
            return;
        }
        panic!("no ErpOrderResult sample");
    }

    #[test]
    fn a_shipment_comment_names_the_shipment_and_tracking_and_carries_its_marker() {
        for event in samples::one_of_each() {
            let Event::OrderShipped(mut shipped) = event else {
                continue;
            };
            let text = shipped_comment(&shipped);
            assert!(text.starts_with("Shipped by erp-sim (SH-000007, ups tracking 1Z"));
            assert!(text.contains(&marker(&shipped.envelope.event_id)));
            shipped.carrier = None;
            shipped.tracking_number = None;
            assert!(shipped_comment(&shipped).starts_with("Shipped by erp-sim (SH-000007). "));
            assert_eq!(carrier_of("UPS"), ("ups", "UPS".to_owned()));
            assert_eq!(carrier_of("PostNL"), ("custom", "PostNL".to_owned()));
            return;
        }
        panic!("no OrderShipped sample");
    }
}
