//! Repairs the reconciler asks for (`ResyncRequested`, target `ERP`, entity `order`): the
//! order is read again from Magento, the owner of orders, mapped as order-ingest maps it,
//! and the ERP is brought to it — created if missing, cancelled if Magento cancelled it,
//! amended if its lines or amounts differ. Each step asks the ERP first, so a replayed
//! request changes nothing; the reconciler's next run checks the result.

use std::sync::Arc;

use bridge_events::Event;
use bridge_events::reconciliation::{ResyncRequested, ResyncTarget};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use magento::rest::Magento;
use magento::{Obj, map_creditmemo, map_order};

use crate::calls::ErpCaller;
use crate::metrics::WriterMetrics;
use erp::connector::{ErpConnector, ErpOrder, SalesOrderDoc};
use erp::mapping::Mapping;

/// What a resync did to the ERP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// The ERP had no order: created.
    Created,
    /// Lines or amounts differed: amended.
    Amended,
    /// Cancelled in Magento, open in the ERP: cancelled.
    Cancelled,
    /// Credit memos the ERP lacked were booked.
    Credited,
    /// Nothing to do.
    Unchanged,
}

impl Repair {
    fn label(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Amended => "amended",
            Self::Cancelled => "cancelled",
            Self::Credited => "credited",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Whether the ERP's booking of `doc` differs from it in what a finance person checks:
/// items and quantities, and the amounts the ERP computes from them.
pub fn booking_differs(erp: &ErpOrder, doc: &SalesOrderDoc) -> bool {
    let mut booked: Vec<(String, rust_decimal::Decimal)> = erp
        .lines
        .iter()
        .map(|l| (l.item_code.clone(), l.quantity.normalize()))
        .collect();
    let mut wanted: Vec<(String, rust_decimal::Decimal)> = doc
        .lines
        .iter()
        .map(|l| (l.item_code.clone(), l.quantity.normalize()))
        .collect();
    booked.sort();
    wanted.sort();
    let tax: rust_decimal::Decimal = doc
        .lines
        .iter()
        .map(|l| l.tax_amount)
        .sum::<rust_decimal::Decimal>()
        + doc.shipping_tax_amount;
    booked != wanted || erp.totals.tax_amount != tax || erp.currency != doc.currency
}

/// The handler over the resync-request topic.
pub struct Resyncer<C: ErpConnector> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    magento: Magento,
    runtime: tokio::runtime::Handle,
    caller: ErpCaller,
    metrics: WriterMetrics,
}

impl<C: ErpConnector> Resyncer<C> {
    /// A resyncer reading orders from `magento` and writing through `caller`.
    pub fn new(
        connector: Arc<C>,
        mapping: Arc<Mapping>,
        magento: Magento,
        runtime: tokio::runtime::Handle,
        caller: ErpCaller,
        metrics: WriterMetrics,
    ) -> Self {
        Self {
            connector,
            mapping,
            magento,
            runtime,
            caller,
            metrics,
        }
    }

    /// The order as Magento has it now: its ERP document and whether it is cancelled.
    fn read_magento(
        &self,
        order_ref: &str,
    ) -> Result<(SalesOrderDoc, bool, serde_json::Value), HandlerError> {
        let found = self
            .runtime
            .block_on(self.magento.order_by_increment_id(order_ref))
            .map_err(|e| {
                if e.is_retryable() {
                    HandlerError::Retryable {
                        reason: format!("Magento: {e}"),
                        retry_after: None,
                    }
                } else {
                    HandlerError::Terminal {
                        class: "magento_refused",
                        reason: format!("reading order {order_ref} from Magento: {e}"),
                    }
                }
            })?;
        let Some(value) = found else {
            return Err(HandlerError::Terminal {
                class: "not_in_magento",
                reason: format!("order {order_ref} is not in Magento: nothing to resync from"),
            });
        };
        let mapped = map_order(&Obj::root(&value), "magento:resync", 0).map_err(|e| {
            HandlerError::Terminal {
                class: "unmappable",
                reason: format!("order {order_ref} from Magento: {e}"),
            }
        })?;
        let mut placed = None;
        let mut cancelled = false;
        for event in mapped.orders {
            match event {
                Event::OrderPlaced(p) => placed = Some(p),
                Event::OrderCancelled(_) => cancelled = true,
                _ => {}
            }
        }
        let placed = placed.ok_or_else(|| HandlerError::Terminal {
            class: "unmappable",
            reason: format!("order {order_ref} from Magento maps to no placed order"),
        })?;
        let cancelled = cancelled || placed.status == "canceled" || placed.state == "canceled";
        let doc = self
            .mapping
            .sales_order(&placed)
            .map_err(|e| HandlerError::Terminal {
                class: "unmappable",
                reason: format!("order {order_ref}: {e}"),
            })?;
        Ok((doc, cancelled, value))
    }

    /// Books the order's Magento credit memos the ERP lacks (each is unique by reference,
    /// so the ERP answers "exists" for those it has). Returns how many were new.
    fn credit_memos(
        &mut self,
        order_ref: &str,
        order: &serde_json::Value,
    ) -> Result<usize, HandlerError> {
        let Some(entity_id) = order.get("entity_id").and_then(|id| match id {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        }) else {
            return Ok(0);
        };
        let memos = self
            .runtime
            .block_on(self.magento.creditmemos_of_order(&entity_id))
            .map_err(|e| HandlerError::Retryable {
                reason: format!("Magento credit memos of {order_ref}: {e}"),
                retry_after: None,
            })?;
        let mut new = 0;
        for memo in &memos {
            let mapped = map_creditmemo(&Obj::root(memo), &Obj::root(order), "magento:resync", 0)
                .map_err(|e| HandlerError::Terminal {
                class: "unmappable",
                reason: format!("credit memo of {order_ref} from Magento: {e}"),
            })?;
            for event in mapped.orders {
                let Event::CreditMemoCreated(memo) = event else {
                    continue;
                };
                let note = crate::handler::credit_note(&self.mapping, &memo).map_err(|r| {
                    HandlerError::Terminal {
                        class: "unmappable",
                        reason: r.reason,
                    }
                })?;
                let connector = Arc::clone(&self.connector);
                let posted = self
                    .caller
                    .call("credit", connector.credit(&note))?
                    .map_err(|r| HandlerError::Terminal {
                        class: "erp_rejected",
                        reason: format!(
                            "credit note {}: {} ({})",
                            note.external_ref, r.reason, r.code
                        ),
                    })?;
                new += usize::from(posted.new);
            }
        }
        Ok(new)
    }

    fn repair(&mut self, order_ref: &str) -> Result<Repair, HandlerError> {
        let (doc, cancelled, order) = self.read_magento(order_ref)?;
        let repair = self.repair_order(order_ref, &doc, cancelled)?;
        if cancelled || !self.mapping.lifecycle().credit {
            return Ok(repair);
        }
        let credited = self.credit_memos(order_ref, &order)?;
        Ok(if repair == Repair::Unchanged && credited > 0 {
            Repair::Credited
        } else {
            repair
        })
    }

    fn repair_order(
        &mut self,
        order_ref: &str,
        doc: &SalesOrderDoc,
        cancelled: bool,
    ) -> Result<Repair, HandlerError> {
        let connector = Arc::clone(&self.connector);
        let refused = |what: &str, r: crate::calls::Refusal| HandlerError::Terminal {
            class: "erp_rejected",
            reason: format!("{what} {order_ref}: {} ({})", r.reason, r.code),
        };
        let existing = self
            .caller
            .call("find_order", connector.find_order(order_ref))?
            .map_err(|r| refused("finding", r))?;
        match existing {
            None if cancelled => Ok(Repair::Unchanged),
            None => {
                self.caller
                    .call(
                        "ensure_customers",
                        connector.ensure_customers(std::slice::from_ref(&doc.customer)),
                    )?
                    .map_err(|r| refused("customer of", r))?;
                self.caller
                    .call("create_order", connector.create_order(doc))?
                    .map_err(|r| refused("creating", r))?;
                Ok(Repair::Created)
            }
            Some(order) if cancelled => {
                if order.status == "cancelled" {
                    return Ok(Repair::Unchanged);
                }
                self.caller
                    .call("cancel_order", connector.cancel_order(&order.id))?
                    .map_err(|r| refused("cancelling", r))?;
                Ok(Repair::Cancelled)
            }
            Some(order) if order.status != "cancelled" && booking_differs(&order, doc) => {
                self.caller
                    .call("amend_order", connector.amend_order(&order.id, doc))?
                    .map_err(|r| refused("amending", r))?;
                Ok(Repair::Amended)
            }
            Some(_) => Ok(Repair::Unchanged),
        }
    }
}

impl<C: ErpConnector> Handler for Resyncer<C> {
    fn handle(&mut self, input: &Inbound<'_>, _ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Event::ResyncRequested(request) = input.event else {
            return Ok(());
        };
        let ResyncRequested {
            target,
            entity_type,
            entity_ref,
            ..
        } = request;
        // Stock repairs go to Magento (magento-writer); only order repairs are ours.
        if *target != ResyncTarget::Erp || entity_type != "order" {
            return Ok(());
        }
        let repair = self.repair(entity_ref)?;
        self.metrics.resync(repair.label());
        tracing::info!(
            order_ref = %entity_ref,
            attempt = request.attempt,
            finding_id = request.finding_id.as_deref().unwrap_or(""),
            repair = repair.label(),
            "resync request handled"
        );
        Ok(())
    }
}
