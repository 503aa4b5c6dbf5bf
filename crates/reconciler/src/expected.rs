//! What the bridge knows of one order from the orders topic: what was placed, whether it
//! ever reached a status at which the ERP must have it, whether Magento cancelled it, and
//! what was refunded. The reconciler compares the two systems against this.

use bridge_events::order::OrderPlaced;
use bridge_events::{Event, Millis};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One order as the order events tell it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpectedOrder {
    /// The order as placed (`None` while only later facts have arrived).
    pub placed: Option<OrderPlaced>,
    /// The latest Magento status.
    pub status: String,
    /// The order reached a status at which erp-writer creates it in the ERP.
    pub reached_create: bool,
    /// Magento cancelled it.
    pub cancelled: bool,
    /// It was cancelled before it ever reached a creating status (the ERP never gets it).
    pub cancelled_before_create: bool,
    /// Σ credit memo grand totals.
    pub refunded: Decimal,
    /// Credit memo references seen (a replayed memo is counted once).
    pub credit_memos: Vec<String>,
    /// The latest Magento `updated_at` (or event time) seen.
    pub updated_at: Millis,
    /// When a run first found it in the ERP (its sync delay was measured then).
    pub synced: bool,
}

impl ExpectedOrder {
    /// Folds one order fact in; `creates_on` says which statuses create the ERP order.
    pub fn apply(&mut self, event: &Event, creates_on: impl Fn(&str) -> bool) {
        match event {
            Event::OrderPlaced(placed) => {
                self.updated_at = self.updated_at.max(placed.updated_at);
                if self.status.is_empty() || self.placed.is_none() {
                    self.status = placed.status.clone();
                }
                self.note_status(&placed.status, &creates_on);
                self.placed = Some(placed.clone());
            }
            Event::OrderUpdated(update) => {
                if update.updated_at >= self.updated_at {
                    self.status = update.status.clone();
                    self.updated_at = update.updated_at;
                }
                self.note_status(&update.status, &creates_on);
            }
            Event::OrderCancelled(cancelled) => {
                if !self.reached_create {
                    self.cancelled_before_create = true;
                }
                self.cancelled = true;
                self.status = "canceled".into();
                self.updated_at = self.updated_at.max(cancelled.cancelled_at);
            }
            Event::CreditMemoCreated(memo) => {
                if !self.credit_memos.contains(&memo.credit_memo_ref) {
                    self.credit_memos.push(memo.credit_memo_ref.clone());
                    self.refunded = self.refunded.saturating_add(memo.grand_total);
                }
                self.updated_at = self.updated_at.max(memo.created_at);
            }
            _ => {}
        }
    }

    fn note_status(&mut self, status: &str, creates_on: &impl Fn(&str) -> bool) {
        if status == "canceled" {
            if !self.reached_create {
                self.cancelled_before_create = true;
            }
            self.cancelled = true;
        } else if creates_on(status) {
            self.reached_create = true;
        }
    }

    /// Whether the ERP should hold this order (possibly cancelled).
    pub fn belongs_in_erp(&self) -> bool {
        self.placed.is_some() && self.reached_create && !self.cancelled_before_create
    }
}
