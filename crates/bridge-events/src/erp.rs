//! The ERP's answers: order verdicts and confirmed stock adjustments.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, Millis};
use crate::order::OrderTotals;

/// The ERP's verdict on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErpOutcome {
    /// Created in the ERP.
    Accepted,
    /// Refused by the ERP, with a reason.
    Rejected,
    /// Already in the ERP under the same external reference.
    Duplicate,
}

/// The ERP's verdict (`bridge.events.ErpOrderResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpOrderResult {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id.
    pub order_ref: String,
    /// Verdict.
    pub outcome: ErpOutcome,
    /// Which ERP.
    pub erp_system: String,
    /// ERP document id.
    pub erp_order_id: Option<String>,
    /// Machine-readable rejection code.
    pub reason_code: Option<String>,
    /// Readable rejection reason.
    pub reason: Option<String>,
    /// Currency of erp_totals.
    pub currency: Option<String>,
    /// Totals the ERP computed.
    pub erp_totals: Option<OrderTotals>,
}

/// One item of a stock adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustmentLine {
    /// Magento SKU.
    pub sku: String,
    /// ERP item code.
    pub item_code: String,
    /// Signed adjustment.
    #[serde(with = "crate::decimal")]
    pub quantity: Decimal,
}

/// A batched stock adjustment the ERP confirmed (`bridge.events.StockAdjustmentPosted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustmentPosted {
    /// Envelope.
    pub envelope: Envelope,
    /// Idempotency key of the window chunk.
    pub window_key: String,
    /// MSI source code.
    pub source_code: String,
    /// ERP warehouse code.
    pub warehouse: String,
    /// Which ERP.
    pub erp_system: String,
    /// ERP document id.
    pub erp_document_id: Option<String>,
    /// Window start.
    pub window_start: Millis,
    /// Window end.
    pub window_end: Millis,
    /// Adjusted items.
    pub lines: Vec<StockAdjustmentLine>,
}

/// The ERP shipped an order (`bridge.events.OrderShipped`): magento-writer ships it in
/// Magento with the tracking number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id.
    pub order_ref: String,
    /// Which ERP.
    pub erp_system: String,
    /// The ERP's sales order id.
    pub erp_order_id: String,
    /// The ERP's shipment id.
    pub shipment_id: String,
    /// Carrier code.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When the goods left the warehouse.
    pub shipped_at: Millis,
}
