//! The documents in the books and the requests that make them: customers, sales orders and
//! their lines, shipments, order patches, credit notes, stock adjustments.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::totals::Totals;

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// The ERP's id, `C-000001`.
    pub id: String,
    /// The shop's reference (`customer:42`, `guest:000000123`).
    pub external_ref: String,
    /// Display name.
    pub name: String,
    /// Orders are refused.
    pub blocked: bool,
    /// Open order value allowed; none = unlimited.
    pub credit_limit: Option<Decimal>,
    /// Σ grand totals of open orders.
    pub open_balance: Decimal,
}

/// A customer to find or create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCustomer {
    /// The shop's reference.
    pub external_ref: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// A sales-order line as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLine {
    /// The item.
    pub item_code: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price, order currency.
    pub unit_price: Decimal,
    /// Discount on the line (positive).
    #[serde(default)]
    pub discount_amount: Decimal,
    /// Tax code.
    #[serde(default)]
    pub tax_code: Option<String>,
    /// Tax rate in percent.
    #[serde(default)]
    pub tax_rate: Decimal,
    /// The tax as invoiced by the shop; computed from the rate when absent.
    #[serde(default)]
    pub tax_amount: Option<Decimal>,
    /// The shop's line id.
    #[serde(default)]
    pub source_line: Option<String>,
}

/// A sales order as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSalesOrder {
    /// The shop's order reference (Magento increment id): unique.
    pub external_ref: String,
    /// The customer's reference.
    pub customer_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// `YYYY-MM-DD`, for the posting period.
    pub order_date: String,
    /// The warehouse it ships from.
    pub warehouse: String,
    /// Fulfilment method.
    #[serde(default)]
    pub shipping_method: Option<String>,
    /// Payment method.
    #[serde(default)]
    pub payment_method: Option<String>,
    /// Shipping before tax.
    #[serde(default)]
    pub shipping_amount: Decimal,
    /// Tax on shipping.
    #[serde(default)]
    pub shipping_tax_amount: Decimal,
    /// The lines.
    pub lines: Vec<NewLine>,
}

/// A sales-order line as booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based.
    pub number: u32,
    /// The item.
    pub item_code: String,
    /// Description.
    pub description: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price.
    pub unit_price: Decimal,
    /// Discount.
    pub discount_amount: Decimal,
    /// Tax.
    pub tax_amount: Decimal,
    /// Tax code.
    pub tax_code: Option<String>,
    /// The shop's line id.
    pub source_line: Option<String>,
}

/// A booked sales order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrder {
    /// `SO-000001`.
    pub id: String,
    /// The shop's reference.
    pub external_ref: String,
    /// The ERP customer id.
    pub customer_id: String,
    /// The shop's customer reference.
    pub customer_ref: String,
    /// ISO 4217.
    pub currency: String,
    /// Posting date.
    pub order_date: String,
    /// Warehouse.
    pub warehouse: String,
    /// Fulfilment method.
    pub shipping_method: Option<String>,
    /// Payment method.
    pub payment_method: Option<String>,
    /// `confirmed`, `cancelled`.
    pub status: String,
    /// When it was booked, milliseconds since the epoch.
    #[serde(default)]
    pub created_at: i64,
    /// Lines as booked.
    pub lines: Vec<Line>,
    /// The ERP's totals (authoritative).
    pub totals: Totals,
    /// Credit notes against it.
    pub credit_notes: Vec<String>,
    /// Σ credited.
    pub credited: Decimal,
    /// The shipment that delivered it, once shipped.
    #[serde(default)]
    pub shipment_id: Option<String>,
}

/// A delivery of an order's goods as the warehouse confirmed it, in the ERP's shipment
/// journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// Position in the journal (1, 2, …): what readers page by.
    pub seq: u64,
    /// `SH-000001`.
    pub id: String,
    /// The sales order shipped.
    pub order_id: String,
    /// The shop's reference of that order.
    pub external_ref: String,
    /// Carrier code, e.g. `ups`.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When it left the warehouse, milliseconds since the epoch.
    pub shipped_at: i64,
}

/// What the warehouse says when it ships an order (`POST /admin/sales-orders/{ref}/ship`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewShipment {
    /// Carrier code.
    pub carrier: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
}

/// A raw edit of a booked order: every field optional; `quantities` sets an item's
/// quantity (0 removes its lines, an unknown item is added at price 0). Totals are not
/// computed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrderPatch {
    /// New status, e.g. `cancelled`.
    pub status: Option<String>,
    /// New currency.
    pub currency: Option<String>,
    /// Another customer.
    pub customer_ref: Option<String>,
    /// Item code → quantity.
    pub quantities: BTreeMap<String, Decimal>,
    /// Totals to overwrite.
    pub subtotal: Option<Decimal>,
    /// Discount to overwrite.
    pub discount_amount: Option<Decimal>,
    /// Shipping to overwrite.
    pub shipping_amount: Option<Decimal>,
    /// Tax to overwrite.
    pub tax_amount: Option<Decimal>,
    /// Grand total to overwrite.
    pub grand_total: Option<Decimal>,
    /// Credited to overwrite.
    pub credited: Option<Decimal>,
}

/// A credit note as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCreditNote {
    /// The shop's credit memo reference: unique.
    pub external_ref: String,
    /// The order's external reference.
    pub order_ref: String,
    /// Amount credited, tax included.
    pub amount: Decimal,
    /// Of which tax.
    #[serde(default)]
    pub tax_amount: Decimal,
    /// Lines credited (item, quantity).
    #[serde(default)]
    pub lines: Vec<StockLine>,
}

/// A booked credit note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNote {
    /// `CN-000001`.
    pub id: String,
    /// As sent.
    #[serde(flatten)]
    pub note: NewCreditNote,
    /// The sales order.
    pub sales_order_id: String,
}

/// An item and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLine {
    /// The item.
    pub item_code: String,
    /// The quantity (signed for adjustments).
    pub quantity: Decimal,
}

/// A stock adjustment as sent: one per window and warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAdjustment {
    /// Unique: the window key (and chunk).
    pub external_ref: String,
    /// The warehouse.
    pub warehouse: String,
    /// Signed quantities.
    pub lines: Vec<StockLine>,
}

/// A booked adjustment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// `ADJ-000001`.
    pub id: String,
    /// As sent.
    #[serde(flatten)]
    pub adjustment: NewAdjustment,
}
