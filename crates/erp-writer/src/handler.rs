//! The order flow into the ERP, as a runtime [`Handler`] over the orders topic.
//!
//! Per order the state keeps what was placed, the latest Magento status and what the ERP
//! has (its id, the credit memos booked). Creating follows the design's rule for side
//! effects outside Kafka: look in our state, then ask the ERP by external reference, and
//! only then create; the outcome is recorded in the transaction that commits the input
//! offset, i.e. after the ERP confirmed. A crash between the ERP call and that commit
//! replays the record, finds the order in the ERP and records it — never a second order.
//!
//! Verdicts are `ErpOrderResult` events. A rejection (the ERP's, or a SKU the mapping does
//! not know) is a verdict *and* a parked record, so the order is replayed after the fix.

use std::sync::Arc;

use bridge_events::erp::{ErpOrderResult, ErpOutcome};
use bridge_events::ids::FactIdentity;
use bridge_events::order::{
    CreditMemoCreated, OrderCancelled, OrderPlaced, OrderTotals, OrderUpdated,
};
use bridge_events::{AvroEvent, Envelope, Event};
use bridge_runtime::handler::{Context, Handler, HandlerError, Inbound};
use serde::{Deserialize, Serialize};

use crate::calls::{ErpCaller, Refusal};
use crate::config::ShipmentSettings;
use crate::customers::Ensured;
use crate::metrics::WriterMetrics;
use crate::shipments::ShipmentReader;
use bridge_runtime::guard::Guard;
use erp::connector::{CreditNoteDoc, ErpConnector, ErpLine, ErpOrder};
use erp::mapping::Mapping;

/// What the state knows of one order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The order as placed (kept until it is in the ERP, which may be a later status).
    pub placed: Option<OrderPlaced>,
    /// Latest Magento status.
    pub status: String,
    /// The ERP's id once it has the order.
    pub erp_id: Option<String>,
    /// `accepted`, or `rejected:<code>`.
    pub verdict: Option<String>,
    /// Magento cancelled it (and the ERP order, if any, was cancelled).
    pub cancelled: bool,
    /// Credit memos booked as credit notes.
    pub credited: Vec<String>,
    /// Credit memos that came before the order was in the ERP: booked once it is.
    #[serde(default)]
    pub pending_credits: Vec<CreditMemoCreated>,
}

/// The ERP credit note of a Magento credit memo, or why the mapping cannot make one.
pub fn credit_note(mapping: &Mapping, memo: &CreditMemoCreated) -> Result<CreditNoteDoc, Refusal> {
    let mut lines = Vec::with_capacity(memo.lines.len());
    for line in &memo.lines {
        match mapping.item_code(&line.sku) {
            Ok(item_code) => lines.push(ErpLine {
                item_code,
                quantity: line.qty,
            }),
            Err(unmapped) => {
                return Err(Refusal {
                    code: "unmappable".into(),
                    reason: format!("credit memo {}: {unmapped}", memo.credit_memo_ref),
                });
            }
        }
    }
    Ok(CreditNoteDoc {
        external_ref: format!("{}/{}", memo.order_ref, memo.credit_memo_ref),
        order_ref: memo.order_ref.clone(),
        amount: memo.grand_total,
        tax_amount: memo.tax_amount,
        lines,
    })
}

/// The handler.
pub struct ErpWriter<C: ErpConnector> {
    connector: Arc<C>,
    mapping: Arc<Mapping>,
    caller: ErpCaller,
    results_topic: String,
    metrics: WriterMetrics,
    shipments: ShipmentReader,
    ensured: Ensured,
}

fn customer_key(customer_ref: &str) -> Vec<u8> {
    format!("customer/{customer_ref}").into_bytes()
}

fn order_key(order_ref: &str) -> Vec<u8> {
    format!("order/{order_ref}").into_bytes()
}

fn state_error(what: &str, e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Fatal {
        reason: format!("{what}: {e}"),
    }
}

impl<C: ErpConnector> ErpWriter<C> {
    /// A writer calling `connector` as `mapping` says, through `guard`, blocking on
    /// `runtime` for each call.
    pub fn new(
        connector: Arc<C>,
        mapping: Arc<Mapping>,
        runtime: tokio::runtime::Handle,
        guard: Guard,
        results_topic: &str,
        metrics: WriterMetrics,
    ) -> Self {
        Self {
            connector,
            mapping,
            caller: ErpCaller::new(runtime, guard, metrics.clone()),
            results_topic: results_topic.to_owned(),
            metrics,
            ensured: Ensured::default(),
            shipments: ShipmentReader::new(ShipmentSettings {
                enabled: false,
                ..ShipmentSettings::default()
            }),
        }
    }

    /// Also reads the ERP's shipments back as `OrderShipped` events ([`ShipmentReader`]).
    pub fn with_shipments(mut self, settings: ShipmentSettings) -> Self {
        self.shipments = ShipmentReader::new(settings);
        self
    }

    /// Skips finding or creating the customers the batch loop has ensured.
    pub fn with_ensured(mut self, ensured: Ensured) -> Self {
        self.ensured = ensured;
        self
    }

    fn load(ctx: &Context<'_>, order_ref: &str) -> Result<OrderRecord, HandlerError> {
        match ctx.get(&order_key(order_ref))? {
            Some(raw) => serde_json::from_slice(&raw).map_err(|e| state_error("order state", e)),
            None => Ok(OrderRecord::default()),
        }
    }

    fn save(
        ctx: &mut Context<'_>,
        order_ref: &str,
        record: &OrderRecord,
    ) -> Result<(), HandlerError> {
        let raw = serde_json::to_vec(record).map_err(|e| state_error("order state", e))?;
        ctx.put(&order_key(order_ref), &raw, None);
        Ok(())
    }

    fn result(
        &self,
        ctx: &mut Context<'_>,
        cause: &Envelope,
        order_ref: &str,
        outcome: ErpOutcome,
        erp: Option<&ErpOrder>,
        refusal: Option<&Refusal>,
    ) {
        let system = self.connector.system();
        let source = format!("erp:{system}");
        let fact = match (outcome, refusal) {
            (ErpOutcome::Rejected, Some(r)) => format!("ErpOrderResult:REJECTED:{}", r.code),
            (ErpOutcome::Rejected, None) => "ErpOrderResult:REJECTED".into(),
            (ErpOutcome::Accepted, _) => "ErpOrderResult:ACCEPTED".into(),
            (ErpOutcome::Duplicate, _) => "ErpOrderResult:DUPLICATE".into(),
        };
        let identity = FactIdentity {
            source: &source,
            entity: order_ref,
            fact: &fact,
            version: None,
        };
        let now = ctx.now();
        let event = ErpOrderResult {
            envelope: Envelope {
                event_id: identity.event_id(),
                event_type: ErpOrderResult::RECORD.into(),
                schema_version: 1,
                occurred_at: now,
                produced_at: now,
                source,
                correlation_id: order_ref.to_owned(),
                causation_id: Some(cause.event_id.clone()),
            },
            order_ref: order_ref.to_owned(),
            outcome,
            erp_system: system.to_owned(),
            erp_order_id: erp.map(|o| o.id.clone()),
            reason_code: refusal.map(|r| r.code.clone()),
            reason: refusal.map(|r| r.reason.clone()),
            currency: erp.map(|o| o.currency.clone()),
            erp_totals: erp.map(|o| OrderTotals {
                subtotal: o.totals.subtotal,
                discount_amount: o.totals.discount_amount,
                shipping_amount: o.totals.shipping_amount,
                tax_amount: o.totals.tax_amount,
                grand_total: o.totals.grand_total,
            }),
        };
        let topic = self.results_topic.clone();
        ctx.emit(&topic, order_ref, Event::ErpOrderResult(event));
    }

    fn refuse(
        &self,
        ctx: &mut Context<'_>,
        cause: &Envelope,
        record: &mut OrderRecord,
        order_ref: &str,
        refusal: Refusal,
    ) {
        tracing::warn!(order_ref, code = %refusal.code, reason = %refusal.reason, "order rejected");
        self.metrics.verdict("rejected");
        self.result(
            ctx,
            cause,
            order_ref,
            ErpOutcome::Rejected,
            None,
            Some(&refusal),
        );
        record.verdict = Some(format!("rejected:{}", refusal.code));
        ctx.park(
            refusal.park_class(),
            format!("order {order_ref}: {}", refusal.reason),
        );
    }

    /// Puts the order into the ERP: our state, then the ERP by external reference, then
    /// create.
    fn create(
        &mut self,
        ctx: &mut Context<'_>,
        cause: &Envelope,
        record: &mut OrderRecord,
        order_ref: &str,
    ) -> Result<(), HandlerError> {
        let Some(placed) = record.placed.clone() else {
            return Ok(());
        };
        let doc = match self.mapping.sales_order(&placed) {
            Ok(doc) => doc,
            Err(unmapped) => {
                let refusal = Refusal {
                    code: "unmappable".into(),
                    reason: unmapped.to_string(),
                };
                self.refuse(ctx, cause, record, order_ref, refusal);
                return Ok(());
            }
        };
        let connector = Arc::clone(&self.connector);
        let customer = &doc.customer.external_ref;
        let known = customer_key(customer);
        if ctx.get(&known)?.is_none() {
            // Ensured by the batch loop (`customers`), or else found or created here.
            if !self.ensured.contains(customer) {
                let customers = [doc.customer.clone()];
                if let Err(refusal) = self
                    .caller
                    .call("ensure_customers", connector.ensure_customers(&customers))?
                {
                    self.refuse(ctx, cause, record, order_ref, refusal);
                    return Ok(());
                }
            }
            ctx.put(&known, b"1", None);
        }
        let existing = match self
            .caller
            .call("find_order", connector.find_order(order_ref))?
        {
            Ok(found) => found,
            Err(refusal) => {
                self.refuse(ctx, cause, record, order_ref, refusal);
                return Ok(());
            }
        };
        let booked = match existing {
            Some(order) => {
                tracing::info!(order_ref, erp_id = %order.id, "already in the ERP; recording it");
                order
            }
            None => {
                let mut created = self
                    .caller
                    .call("create_order", connector.create_order(&doc))?;
                if matches!(&created, Err(r) if r.code == "unknown_customer") {
                    // Our memory of the customer is stale (merged or deleted in the ERP):
                    // find or create it again, then try once more.
                    tracing::info!(
                        order_ref,
                        "the ERP does not know the customer any more; ensuring it again"
                    );
                    let customers = [doc.customer.clone()];
                    if let Err(refusal) = self
                        .caller
                        .call("ensure_customers", connector.ensure_customers(&customers))?
                    {
                        ctx.delete(&known);
                        self.refuse(ctx, cause, record, order_ref, refusal);
                        return Ok(());
                    }
                    created = self
                        .caller
                        .call("create_order", connector.create_order(&doc))?;
                }
                match created {
                    Ok(posted) => posted.doc,
                    Err(refusal) => {
                        self.refuse(ctx, cause, record, order_ref, refusal);
                        return Ok(());
                    }
                }
            }
        };
        tracing::debug!(order_ref, erp_id = %booked.id, "order in the ERP");
        self.metrics.verdict("accepted");
        self.result(
            ctx,
            cause,
            order_ref,
            ErpOutcome::Accepted,
            Some(&booked),
            None,
        );
        record.erp_id = Some(booked.id);
        record.verdict = Some("accepted".into());
        for memo in std::mem::take(&mut record.pending_credits) {
            if let Err(refusal) = self.book_credit(record, &memo)? {
                tracing::warn!(order_ref, credit_memo = %memo.credit_memo_ref, reason = %refusal.reason, "the ERP refused a credit memo that waited for its order");
                self.metrics.verdict("credit_refused");
            }
        }
        Ok(())
    }

    /// Books `memo` as a credit note on the order's ERP document.
    fn book_credit(
        &mut self,
        record: &mut OrderRecord,
        memo: &CreditMemoCreated,
    ) -> Result<Result<(), Refusal>, HandlerError> {
        let order_ref = &memo.order_ref;
        let note = match credit_note(&self.mapping, memo) {
            Ok(note) => note,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let connector = Arc::clone(&self.connector);
        Ok(self.caller.call("credit", connector.credit(&note))?.map(|posted| {
            tracing::debug!(order_ref, credit_note = %posted.doc, new = posted.new, "credit note booked");
            record.credited.push(memo.credit_memo_ref.clone());
        }))
    }

    fn placed(&mut self, ctx: &mut Context<'_>, placed: &OrderPlaced) -> Result<(), HandlerError> {
        let order_ref = &placed.order_ref;
        let mut record = Self::load(ctx, order_ref)?;
        if record.erp_id.is_some() {
            return Ok(());
        }
        record.placed = Some(placed.clone());
        if record.status.is_empty() {
            record.status = placed.status.clone();
        }
        if !record.cancelled && self.mapping.creates_on(&record.status) {
            self.create(ctx, &placed.envelope, &mut record, order_ref)?;
        }
        Self::save(ctx, order_ref, &record)
    }

    fn updated(
        &mut self,
        ctx: &mut Context<'_>,
        update: &OrderUpdated,
    ) -> Result<(), HandlerError> {
        let order_ref = &update.order_ref;
        let mut record = Self::load(ctx, order_ref)?;
        record.status = update.status.clone();
        if record.erp_id.is_none() && !record.cancelled && self.mapping.creates_on(&update.status) {
            self.create(ctx, &update.envelope, &mut record, order_ref)?;
        }
        Self::save(ctx, order_ref, &record)
    }

    fn cancelled(
        &mut self,
        ctx: &mut Context<'_>,
        cancel: &OrderCancelled,
    ) -> Result<(), HandlerError> {
        let order_ref = &cancel.order_ref;
        let mut record = Self::load(ctx, order_ref)?;
        if record.cancelled {
            return Ok(());
        }
        if let (Some(erp_id), true) = (record.erp_id.clone(), self.mapping.lifecycle().cancel) {
            let connector = Arc::clone(&self.connector);
            if let Err(refusal) = self
                .caller
                .call("cancel_order", connector.cancel_order(&erp_id))?
            {
                ctx.park(
                    "erp_rejected",
                    format!("cancel {order_ref} ({erp_id}): {}", refusal.reason),
                );
                return Self::save(ctx, order_ref, &record);
            }
        }
        record.cancelled = true;
        record.status = "canceled".into();
        Self::save(ctx, order_ref, &record)
    }

    fn credited(
        &mut self,
        ctx: &mut Context<'_>,
        memo: &CreditMemoCreated,
    ) -> Result<(), HandlerError> {
        if !self.mapping.lifecycle().credit {
            return Ok(());
        }
        let order_ref = &memo.order_ref;
        let mut record = Self::load(ctx, order_ref)?;
        if record.credited.contains(&memo.credit_memo_ref) {
            return Ok(());
        }
        if record.erp_id.is_none() {
            // The order is not in the ERP yet (its facts can come in any order from two
            // paths, or it waits for a status that creates it): book the memo after it.
            if !record
                .pending_credits
                .iter()
                .any(|m| m.credit_memo_ref == memo.credit_memo_ref)
            {
                tracing::info!(order_ref, credit_memo = %memo.credit_memo_ref, "credit memo waits until its order is in the ERP");
                record.pending_credits.push(memo.clone());
            }
            return Self::save(ctx, order_ref, &record);
        }
        if let Err(refusal) = self.book_credit(&mut record, memo)? {
            ctx.park(
                refusal.park_class(),
                format!(
                    "credit memo {} of {order_ref}: {}",
                    memo.credit_memo_ref, refusal.reason
                ),
            );
        }
        Self::save(ctx, order_ref, &record)
    }
}

impl<C: ErpConnector> Handler for ErpWriter<C> {
    fn handle(&mut self, input: &Inbound<'_>, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        match input.event {
            Event::OrderPlaced(e) => self.placed(ctx, e),
            Event::OrderUpdated(e) => self.updated(ctx, e),
            Event::OrderCancelled(e) => self.cancelled(ctx, e),
            Event::CreditMemoCreated(e) => self.credited(ctx, e),
            other => Err(HandlerError::Terminal {
                class: "unexpected_event",
                reason: format!(
                    "{} does not belong on the orders topic",
                    other.record_name()
                ),
            }),
        }
    }

    fn on_punctuate(&mut self, ctx: &mut Context<'_>) -> Result<(), HandlerError> {
        let Self {
            connector,
            caller,
            metrics,
            results_topic,
            shipments,
            ..
        } = self;
        shipments.poll(&**connector, caller, metrics, results_topic, ctx)
    }
}
