//! Order facts from Magento: placed, updated, cancelled, refunded.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, Millis};

/// An order's totals in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTotals {
    /// Sum of row totals before discount and tax.
    #[serde(with = "crate::decimal")]
    pub subtotal: Decimal,
    /// Total discount, positive.
    #[serde(with = "crate::decimal")]
    pub discount_amount: Decimal,
    /// Shipping before tax.
    #[serde(with = "crate::decimal")]
    pub shipping_amount: Decimal,
    /// Total tax.
    #[serde(with = "crate::decimal")]
    pub tax_amount: Decimal,
    /// What the customer pays.
    #[serde(with = "crate::decimal")]
    pub grand_total: Decimal,
}

/// One order item; bundle and configurable children name their parent line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Magento `item_id`.
    pub line_id: String,
    /// Parent `item_id` for children of bundles and configurables.
    pub parent_line_id: Option<String>,
    /// SKU.
    pub sku: String,
    /// Product name on the order.
    pub name: String,
    /// Magento product type.
    pub product_type: String,
    /// Quantity ordered.
    #[serde(with = "crate::decimal")]
    pub qty_ordered: Decimal,
    /// Unit price, order currency, before tax and discount.
    #[serde(with = "crate::decimal")]
    pub unit_price: Decimal,
    /// Row discount, positive.
    #[serde(with = "crate::decimal")]
    pub discount_amount: Decimal,
    /// Row tax.
    #[serde(with = "crate::decimal")]
    pub tax_amount: Decimal,
    /// Tax rate in percent.
    #[serde(with = "crate::decimal")]
    pub tax_percent: Decimal,
    /// Magento tax class.
    pub tax_class: Option<String>,
    /// unit_price × qty, order currency.
    #[serde(with = "crate::decimal")]
    pub row_total: Decimal,
    /// row_total in the base currency.
    #[serde(with = "crate::decimal")]
    pub base_row_total: Decimal,
}

/// A quantity of one order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineQuantity {
    /// Magento `item_id`.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Quantity.
    #[serde(with = "crate::decimal")]
    pub qty: Decimal,
}

/// An order was placed (`bridge.events.OrderPlaced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id: the ERP's external reference.
    pub order_ref: String,
    /// Magento `entity_id`.
    pub order_id: String,
    /// Store view id.
    pub store_id: i32,
    /// Order state.
    pub state: String,
    /// Order status.
    pub status: String,
    /// Magento `created_at`.
    pub created_at: Millis,
    /// Magento `updated_at`.
    pub updated_at: Millis,
    /// Order currency code.
    pub order_currency: String,
    /// Base currency code.
    pub base_currency: String,
    /// Totals, order currency.
    pub totals: OrderTotals,
    /// Totals, base currency.
    pub base_totals: OrderTotals,
    /// Shipping method code.
    pub shipping_method: Option<String>,
    /// Payment method code.
    pub payment_method: String,
    /// Pseudonymous customer reference.
    pub customer_ref: String,
    /// Placed without an account.
    pub customer_is_guest: bool,
    /// Customer group id.
    pub customer_group_id: Option<i32>,
    /// Shipping country code.
    pub ship_to_country: Option<String>,
    /// Every item, children included.
    pub lines: Vec<OrderLine>,
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderTransition {
    /// An invoice was created.
    Invoiced,
    /// A shipment was created.
    Shipped,
    /// Put on hold.
    OnHold,
    /// Released from hold.
    Released,
    /// Closed (fully refunded).
    Closed,
    /// Complete.
    Completed,
    /// Any other status change.
    StatusChanged,
}

/// An order's state or status changed (`bridge.events.OrderUpdated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderUpdated {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id.
    pub order_ref: String,
    /// Magento `entity_id`.
    pub order_id: String,
    /// Store view id.
    pub store_id: i32,
    /// What happened.
    pub transition: OrderTransition,
    /// State before.
    pub previous_state: Option<String>,
    /// Status before.
    pub previous_status: Option<String>,
    /// State after.
    pub state: String,
    /// Status after.
    pub status: String,
    /// Magento `updated_at`.
    pub updated_at: Millis,
    /// Invoiced so far.
    #[serde(with = "crate::decimal::option")]
    pub total_invoiced: Option<Decimal>,
    /// Refunded so far.
    #[serde(with = "crate::decimal::option")]
    pub total_refunded: Option<Decimal>,
    /// Shipped so far, per line.
    pub shipped: Vec<LineQuantity>,
}

/// An order was cancelled (`bridge.events.OrderCancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id.
    pub order_ref: String,
    /// Magento `entity_id`.
    pub order_id: String,
    /// Store view id.
    pub store_id: i32,
    /// When.
    pub cancelled_at: Millis,
    /// Why.
    pub reason: Option<String>,
    /// Quantities released to stock.
    pub released: Vec<LineQuantity>,
}

/// One refunded line of a credit memo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditMemoLine {
    /// Order item id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Quantity refunded.
    #[serde(with = "crate::decimal")]
    pub qty: Decimal,
    /// Refunded row amount before tax.
    #[serde(with = "crate::decimal")]
    pub row_total: Decimal,
    /// Refunded tax.
    #[serde(with = "crate::decimal")]
    pub tax_amount: Decimal,
    /// Discount given back.
    #[serde(with = "crate::decimal")]
    pub discount_amount: Decimal,
    /// Returned to stock.
    pub back_to_stock: bool,
}

/// A credit memo was created (`bridge.events.CreditMemoCreated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditMemoCreated {
    /// Envelope.
    pub envelope: Envelope,
    /// Magento increment id of the order.
    pub order_ref: String,
    /// Magento order `entity_id`.
    pub order_id: String,
    /// Store view id.
    pub store_id: i32,
    /// Credit memo `entity_id`.
    pub credit_memo_id: String,
    /// Credit memo increment id.
    pub credit_memo_ref: String,
    /// Created at.
    pub created_at: Millis,
    /// Currency of the amounts.
    pub currency: String,
    /// Refunded subtotal.
    #[serde(with = "crate::decimal")]
    pub subtotal: Decimal,
    /// Refunded shipping.
    #[serde(with = "crate::decimal")]
    pub shipping_amount: Decimal,
    /// Refunded tax.
    #[serde(with = "crate::decimal")]
    pub tax_amount: Decimal,
    /// Adjustment refund.
    #[serde(with = "crate::decimal")]
    pub adjustment_positive: Decimal,
    /// Adjustment fee.
    #[serde(with = "crate::decimal")]
    pub adjustment_negative: Decimal,
    /// Total refunded.
    #[serde(with = "crate::decimal")]
    pub grand_total: Decimal,
    /// Refunded lines.
    pub lines: Vec<CreditMemoLine>,
}
