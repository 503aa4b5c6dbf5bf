//! What erp-writer needs from an ERP, and the documents it sends. One implementation per
//! ERP: [`erp_sim::ErpSimConnector`] (HTTP/JSON, the simulator) and
//! [`tryton::TrytonConnector`] (Tryton 8.0 over JSON-RPC). Every create is keyed by an external reference the ERP keeps unique (the
//! Magento increment id, the credit memo reference, the window key), so the writer can
//! always ask "does it exist?" before creating — the ERP-side half of exactly once.

pub mod configured;
pub mod erp_sim;
pub mod tryton;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How an ERP call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErpError {
    /// Try again later: unreachable, timed out, 429, 5xx, maintenance.
    #[error("ERP unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// The ERP's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The ERP refused the document (credit limit, blocked customer, closed period, unknown
    /// item, validation): a business verdict, final until someone fixes the data.
    #[error("ERP rejected ({code}): {reason}")]
    Rejected {
        /// Machine-readable, e.g. `credit_limit`.
        code: String,
        /// Readable.
        reason: String,
    },
    /// The ERP answered something this connector does not understand: a version mismatch
    /// or a bug. Retried (the record stays in Kafka) and alerted on.
    #[error("unexpected ERP answer: {0}")]
    Protocol(String),
}

impl ErpError {
    /// Whether a retry can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected { .. })
    }
}

/// A customer to find or create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDoc {
    /// The shop's customer reference (`customer:42`, or the guest account).
    pub external_ref: String,
    /// Display name (no other personal data leaves the shop through the bridge).
    pub name: String,
}

/// A sales-order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDoc {
    /// ERP item code.
    pub item_code: String,
    /// The Magento SKU it came from.
    pub sku: String,
    /// Description.
    pub description: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price, order currency.
    pub unit_price: Decimal,
    /// Discount (positive).
    pub discount_amount: Decimal,
    /// Tax rate, percent.
    pub tax_rate: Decimal,
    /// Tax as Magento invoiced it.
    pub tax_amount: Decimal,
    /// ERP tax code.
    pub tax_code: Option<String>,
    /// Magento's line id.
    pub source_line: String,
}

/// A sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrderDoc {
    /// Magento increment id: unique in the ERP.
    pub external_ref: String,
    /// The customer.
    pub customer: CustomerDoc,
    /// ISO 4217.
    pub currency: String,
    /// `YYYY-MM-DD` (UTC) of the order.
    pub order_date: String,
    /// ERP warehouse.
    pub warehouse: String,
    /// ERP fulfilment method.
    pub shipping_method: Option<String>,
    /// ERP payment method.
    pub payment_method: Option<String>,
    /// Shipping before tax.
    pub shipping_amount: Decimal,
    /// Tax on shipping.
    pub shipping_tax_amount: Decimal,
    /// Lines.
    pub lines: Vec<LineDoc>,
}

/// Totals as the ERP computed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpTotals {
    /// Σ quantity × price.
    pub subtotal: Decimal,
    /// Σ discounts.
    pub discount_amount: Decimal,
    /// Shipping.
    pub shipping_amount: Decimal,
    /// Tax.
    pub tax_amount: Decimal,
    /// Grand total.
    pub grand_total: Decimal,
}

/// A line as the ERP booked it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpLine {
    /// Item code.
    pub item_code: String,
    /// Quantity.
    pub quantity: Decimal,
}

/// A sales order as the ERP has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpOrder {
    /// The ERP's id.
    pub id: String,
    /// The external reference.
    pub external_ref: String,
    /// ERP status, e.g. `confirmed`, `cancelled`.
    pub status: String,
    /// ISO 4217.
    pub currency: String,
    /// The ERP's totals.
    pub totals: ErpTotals,
    /// The booked lines.
    pub lines: Vec<ErpLine>,
    /// Σ credit notes booked against it.
    #[serde(default)]
    pub credited: Decimal,
    /// The shop's customer reference it is booked to, when the ERP tells.
    #[serde(default)]
    pub customer_ref: Option<String>,
    /// When the ERP booked it (ms since the epoch), when the ERP tells.
    #[serde(default)]
    pub booked_at: Option<i64>,
}

/// A credit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteDoc {
    /// Unique: `<order_ref>/<credit memo ref>`.
    pub external_ref: String,
    /// The order.
    pub order_ref: String,
    /// Credited, tax included.
    pub amount: Decimal,
    /// Of which tax.
    pub tax_amount: Decimal,
    /// Items and quantities credited.
    pub lines: Vec<ErpLine>,
}

/// A batched stock adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustmentDoc {
    /// Unique: the window key (and chunk number).
    pub external_ref: String,
    /// ERP warehouse.
    pub warehouse: String,
    /// Signed quantities per item.
    pub lines: Vec<ErpLine>,
}

/// A stock level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// Warehouse.
    pub warehouse: String,
    /// Item.
    pub item_code: String,
    /// On hand.
    pub quantity: Decimal,
}

/// A shipment the ERP confirmed (its warehouse delivered an order's goods).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpShipment {
    /// The shop's order reference.
    pub external_ref: String,
    /// The ERP's sales order id.
    pub erp_order_id: String,
    /// The ERP's shipment id.
    pub shipment_id: String,
    /// Carrier code.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When it left the warehouse, milliseconds since the epoch.
    pub shipped_at: i64,
}

/// A page of the ERP's shipments, oldest first, and the position after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipmentPage {
    /// The shipments.
    pub shipments: Vec<ErpShipment>,
    /// Where the next page starts (opaque to the caller; the same when nothing is new).
    pub cursor: String,
}

/// Whether a create made a new document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted<T> {
    /// The document.
    pub doc: T,
    /// False when it existed already under its external reference.
    pub new: bool,
}

/// The JSON body of an ERP answer, read up to
/// [`bridge_runtime::http_body::MAX_RESPONSE_BYTES`]; a body that is not JSON reads as
/// `null` (the caller names what it expected), one that cannot be read is retried.
pub(crate) async fn json_answer(
    response: reqwest::Response,
) -> Result<serde_json::Value, ErpError> {
    use bridge_runtime::http_body::{MAX_RESPONSE_BYTES, read_capped};
    let body = read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| ErpError::Unavailable {
            reason: e.to_string(),
            retry_after: None,
        })?;
    Ok(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

/// An ERP, as erp-writer (and the reconciler) use it. Calls are async; erp-writer's
/// handler runs them to completion one at a time per partition.
pub trait ErpConnector: Send + Sync + 'static {
    /// The `erp_system` named in results, e.g. `erp-sim`, `tryton`.
    fn system(&self) -> &str;

    /// Is the ERP up? (The circuit breaker's probe.)
    fn probe(&self) -> impl Future<Output = Result<(), ErpError>> + Send;

    /// Finds or creates these customers in one call.
    fn ensure_customers(
        &self,
        customers: &[CustomerDoc],
    ) -> impl Future<Output = Result<(), ErpError>> + Send;

    /// The sales order with this external reference.
    fn find_order(
        &self,
        external_ref: &str,
    ) -> impl Future<Output = Result<Option<ErpOrder>, ErpError>> + Send;

    /// The sales orders with these external references, by reference (those the ERP lacks
    /// are not in it): the reconciler's page of orders in as few requests as the ERP allows.
    fn find_orders(
        &self,
        external_refs: &[String],
    ) -> impl Future<Output = Result<HashMap<String, ErpOrder>, ErpError>> + Send;

    /// Up to `limit` external references of sales orders, sorted, after `after` (a keyset
    /// page: the reconciler walks every ERP order with it to find those Magento lacks).
    fn order_refs(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, ErpError>> + Send;

    /// Creates a sales order; if its external reference exists, the existing one.
    fn create_order(
        &self,
        order: &SalesOrderDoc,
    ) -> impl Future<Output = Result<Posted<ErpOrder>, ErpError>> + Send;

    /// Replaces the lines and amounts of the booked order `erp_id` with `order`'s (a
    /// repair the reconciler asked for); the ERP prices it again.
    fn amend_order(
        &self,
        erp_id: &str,
        order: &SalesOrderDoc,
    ) -> impl Future<Output = Result<ErpOrder, ErpError>> + Send;

    /// Cancels a sales order (idempotent).
    fn cancel_order(&self, erp_id: &str) -> impl Future<Output = Result<(), ErpError>> + Send;

    /// Books a credit note; if its external reference exists, nothing new. Returns the
    /// ERP's document id.
    fn credit(
        &self,
        note: &CreditNoteDoc,
    ) -> impl Future<Output = Result<Posted<String>, ErpError>> + Send;

    /// Posts a stock adjustment; if its external reference exists, nothing new. Returns
    /// the ERP's document id.
    fn post_stock_adjustment(
        &self,
        adjustment: &StockAdjustmentDoc,
    ) -> impl Future<Output = Result<Posted<String>, ErpError>> + Send;

    /// Stock levels in a warehouse.
    fn stock_levels(
        &self,
        warehouse: &str,
    ) -> impl Future<Output = Result<Vec<StockLevel>, ErpError>> + Send;

    /// Up to `limit` shipments after `cursor` (none: from the start), in the order the
    /// ERP confirmed them.
    fn shipments_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<ShipmentPage, ErpError>> + Send;
}
