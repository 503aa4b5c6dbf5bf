//! ERP verdicts to Magento as order comments (and a status, if configured), as a runtime
//! [`Handler`] over the results topic.
//!
//! Idempotent: each comment carries `[bridge <event id>]`, and before writing, the order's
//! status history is read; a comment already there (a crash between the write and the
//! offset commit) is not written again.

use std::sync::Arc;

use bridge_events::Event;
use bridge_events::erp::{ErpOrderResult, ErpOutcome};
use bridge_runtime::guard::Guard;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use magento_rest::{Magento, RestError};
use serde_json::Value;

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

    fn write_back(&mut self, result: &ErpOrderResult) -> Result<(), HandlerError> {
        let order_ref = &result.order_ref;
        self.guard.admit()?;
        let found = self
            .runtime
            .block_on(self.magento.order_by_increment_id(order_ref));
        let order = match found {
            Ok(Some(order)) => {
                self.guard.succeeded();
                order
            }
            Ok(None) => {
                self.guard.succeeded();
                return Err(HandlerError::Terminal {
                    class: "order_not_found",
                    reason: format!("Magento has no order {order_ref}"),
                });
            }
            Err(e) => return Err(classify(&mut self.guard, e, "finding the order")),
        };
        let marker = marker(&result.envelope.event_id);
        let written = order["status_histories"].as_array().is_some_and(|h| {
            h.iter().any(|entry| {
                entry["comment"]
                    .as_str()
                    .is_some_and(|c| c.contains(&marker))
            })
        });
        if written {
            tracing::debug!(order_ref, "verdict already written back");
            return Ok(());
        }
        let Some(entity_id) = order.get("entity_id").and_then(|id| match id {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) => Some(s.clone()),
            _ => None,
        }) else {
            return Err(HandlerError::Terminal {
                class: "magento_refused",
                reason: format!("order {order_ref} came without an entity_id"),
            });
        };
        let status = match result.outcome {
            ErpOutcome::Rejected => &self.settings.rejected_status,
            _ => &self.settings.accepted_status,
        };
        let status = (!status.is_empty()).then_some(status.as_str());
        self.guard.admit()?;
        let posted = self.runtime.block_on(self.magento.post_comment(
            &entity_id,
            &comment(result),
            status,
            self.settings.notify_customer,
        ));
        match posted {
            Ok(()) => {
                self.guard.succeeded();
                tracing::debug!(order_ref, outcome = ?result.outcome, "verdict written back");
                Ok(())
            }
            Err(e) => Err(classify(&mut self.guard, e, "writing the comment")),
        }
    }
}

impl Handler for MagentoWriter {
    fn handle(&mut self, input: &Inbound<'_>, _ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        match input.event {
            Event::ErpOrderResult(result) => self.write_back(result),
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
}
