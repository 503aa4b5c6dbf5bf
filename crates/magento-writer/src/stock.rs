//! Stock truth back to Magento: the reconciler's stock repairs (`ResyncRequested`, target
//! `MAGENTO`, entity `stock`, key `sku|source_code`) set the MSI source item's quantity to
//! the ERP's, which owns stock. Setting an absolute quantity is idempotent; a request
//! older than `max_age` is skipped (the stock has moved since — the next reconciliation
//! asks again if it still differs).

use std::sync::Arc;

use bridge_events::Event;
use bridge_events::reconciliation::ResyncTarget;
use bridge_runtime::guard::Guard;
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use magento::rest::{Magento, SourceItemQuantity};

/// The handler over the resync topic.
pub struct StockResyncer {
    magento: Arc<Magento>,
    runtime: tokio::runtime::Handle,
    guard: Guard,
    max_age_ms: i64,
}

impl StockResyncer {
    /// Writes through `guard` to `magento`, skipping requests older than `max_age_ms`.
    pub fn new(
        magento: Arc<Magento>,
        runtime: tokio::runtime::Handle,
        guard: Guard,
        max_age_ms: i64,
    ) -> Self {
        Self {
            magento,
            runtime,
            guard,
            max_age_ms,
        }
    }
}

/// `sku|source_code` → both parts.
pub fn split_entity(entity_ref: &str) -> Option<(&str, &str)> {
    let (sku, source) = entity_ref.rsplit_once('|')?;
    (!sku.is_empty() && !source.is_empty()).then_some((sku, source))
}

impl Handler for StockResyncer {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::ResyncRequested(request) = input.event else {
            return Ok(());
        };
        if request.target != ResyncTarget::Magento || request.entity_type != "stock" {
            return Ok(());
        }
        let entity = &request.entity_ref;
        let Some((sku, source)) = split_entity(entity) else {
            return Err(HandlerError::Terminal {
                class: "bad_request",
                reason: format!("stock resync for `{entity}`: not `sku|source_code`"),
            });
        };
        let Some(quantity) = request.quantity else {
            return Err(HandlerError::Terminal {
                class: "bad_request",
                reason: format!("stock resync for `{entity}` carries no quantity"),
            });
        };
        let age = ctx.now() - request.envelope.occurred_at;
        if age > self.max_age_ms {
            tracing::info!(entity_ref = %entity, age_ms = age, "stale stock resync skipped");
            return Ok(());
        }
        self.guard.admit()?;
        let item = SourceItemQuantity {
            sku: sku.to_owned(),
            source_code: source.to_owned(),
            quantity,
            in_stock: quantity.is_sign_positive() && !quantity.is_zero(),
        };
        match self
            .runtime
            .block_on(self.magento.save_source_items(std::slice::from_ref(&item)))
        {
            Ok(()) => {
                self.guard.succeeded();
                tracing::info!(entity_ref = %entity, %quantity, attempt = request.attempt, "Magento stock set to the ERP's");
                Ok(())
            }
            Err(e) if e.is_retryable() => {
                Err(self.guard.failed(format!("setting stock: {e}"), None))
            }
            Err(e) => {
                self.guard.succeeded();
                Err(HandlerError::Terminal {
                    class: "magento_refused",
                    reason: format!("setting stock of {entity}: {e}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_split_at_the_last_bar() {
        assert_eq!(
            split_entity("24-MB01|default"),
            Some(("24-MB01", "default"))
        );
        assert_eq!(split_entity("A|B|wh_east"), Some(("A|B", "wh_east")));
        assert_eq!(split_entity("no-source"), None);
        assert_eq!(split_entity("|default"), None);
    }
}
