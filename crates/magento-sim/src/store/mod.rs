//! The simulated store's data: orders, credit memos and shipments in the REST shapes of the
//! fixtures, MSI source items, the changes made to them, and every write-back received.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::IndexedRandom;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::table::Table;
use crate::templates::{self, Template};

mod lifecycle;
mod shape;
#[cfg(test)]
mod tests;
mod writebacks;

use shape::{
    creditmemo_change, decimal, is_stock_line, number, order_change, order_ref, remap, to_currency,
};

/// A write-back call the sim received (order comment/status, source-item quantity).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteBack {
    /// `order_comment`, `order_ship` or `source_items`.
    pub kind: String,
    /// The order increment id, or the `sku|source` pair.
    pub target: String,
    /// The request body.
    pub body: Value,
    /// When (Magento time).
    pub at: String,
}

/// A change to an order or credit memo, to announce as an Adobe I/O event.
#[derive(Debug, Clone)]
pub struct Change {
    /// `observer.sales_order_save_commit_after`, `observer.sales_order_creditmemo_save_after`
    /// or `observer.sales_order_shipment_save_after`.
    pub event: &'static str,
    /// The observer-shaped payload (`data.value`).
    pub value: Value,
}

/// What can be done to an order from outside (admin endpoint, generator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Invoice: `processing`, totals invoiced.
    Invoice,
    /// Ship everything: `complete` once invoiced.
    Ship,
    /// Cancel a not yet invoiced order.
    Cancel,
    /// Refund in full with a credit memo: `closed`.
    Refund,
    /// Save without a change (a new `updated_at`, as many Magento saves do).
    Touch,
}

/// Why an action or write-back is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// No such order.
    #[error("order `{0}` does not exist")]
    NoOrder(String),
    /// Not allowed in the order's state.
    #[error("order `{order}` in state `{state}` cannot be {action}")]
    NotAllowed {
        /// Increment id.
        order: String,
        /// Current state.
        state: String,
        /// What was asked.
        action: String,
    },
    /// A request body without a required field.
    #[error("`{0}` is required")]
    Missing(&'static str),
}

/// The sim's data. Lock it as a whole; every operation is short.
#[derive(Debug)]
pub struct Store {
    orders: Table,
    creditmemos: Table,
    shipments: Table,
    source_items: BTreeMap<(String, String), Value>,
    writebacks: Vec<WriteBack>,
    next_order: u64,
    next_item: u64,
    next_memo: u64,
    next_shipment: u64,
    clock: fn() -> String,
}

/// Magento's timestamp format, UTC, second resolution.
pub fn magento_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

const GUEST_SHARE: f64 = 0.3;
const EUR_SHARE: f64 = 0.2;
const EUR_RATE: &str = "0.9200";
/// The MSI source of single-source stores.
const DEFAULT_SOURCE: &str = "default";

/// Order-currency money fields (the `base_*` twins stay in the base currency).
const MONEY: &[&str] = &[
    "subtotal",
    "subtotal_incl_tax",
    "discount_amount",
    "shipping_amount",
    "shipping_incl_tax",
    "shipping_tax_amount",
    "tax_amount",
    "grand_total",
    "total_due",
    "total_invoiced",
    "total_paid",
    "total_refunded",
    "total_offline_refunded",
    "subtotal_invoiced",
    "subtotal_refunded",
    "tax_invoiced",
    "tax_refunded",
    "shipping_invoiced",
    "shipping_refunded",
    "discount_invoiced",
    "discount_refunded",
    "price",
    "original_price",
    "price_incl_tax",
    "row_total",
    "row_total_incl_tax",
    "row_invoiced",
    "amount_refunded",
    "amount_ordered",
    "amount_paid",
    "shipping_captured",
    "amount_invoiced",
];

impl Store {
    /// A store holding the fixture orders (and the fixture credit memo) as they are.
    pub fn with_fixtures() -> Self {
        let mut store = Self {
            orders: Table::default(),
            creditmemos: Table::default(),
            shipments: Table::default(),
            source_items: BTreeMap::new(),
            writebacks: Vec::new(),
            next_order: 1000,
            next_item: 10_000,
            next_memo: 1000,
            next_shipment: 1000,
            clock: magento_now,
        };
        for template in templates::orders() {
            let id = number(&template.order["entity_id"]);
            store.orders.insert(id, template.order.clone());
            store.add_stock_for(&template.order);
        }
        let memo = templates::creditmemo();
        store.creditmemos.insert(number(&memo["entity_id"]), memo);
        store
    }

    /// Numbers new orders, credit memos and shipments from `first` (and their items from
    /// `first × 10`), so a sim restarted beside a Kafka that remembers an earlier run does
    /// not hand out the increment ids of that run's orders again (Magento never does).
    pub fn number_from(&mut self, first: u64) {
        self.next_order = self.next_order.max(first);
        self.next_memo = self.next_memo.max(first);
        self.next_shipment = self.next_shipment.max(first);
        self.next_item = self.next_item.max(first.saturating_mul(10));
    }

    /// Every order.
    pub fn orders(&self) -> impl Iterator<Item = &Value> {
        self.orders.values()
    }

    /// One order by entity id.
    pub fn order(&self, id: u64) -> Option<&Value> {
        self.orders.get(&id)
    }

    /// Every credit memo.
    pub fn creditmemos(&self) -> impl Iterator<Item = &Value> {
        self.creditmemos.values()
    }

    /// One credit memo.
    pub fn creditmemo(&self, id: u64) -> Option<&Value> {
        self.creditmemos.get(&id)
    }

    /// Every shipment.
    pub fn shipments(&self) -> impl Iterator<Item = &Value> {
        self.shipments.values()
    }

    /// One shipment.
    pub fn shipment(&self, id: u64) -> Option<&Value> {
        self.shipments.get(&id)
    }

    /// The orders as a table (searches use its index).
    pub fn order_table(&self) -> &Table {
        &self.orders
    }

    /// The credit memos as a table.
    pub fn creditmemo_table(&self) -> &Table {
        &self.creditmemos
    }

    /// The shipments as a table.
    pub fn shipment_table(&self) -> &Table {
        &self.shipments
    }

    /// Every MSI source item.
    pub fn source_items(&self) -> impl Iterator<Item = &Value> {
        self.source_items.values()
    }

    /// Every write-back received, oldest first.
    pub fn writebacks(&self) -> &[WriteBack] {
        &self.writebacks
    }

    /// Salable quantity of `sku`: the enabled source quantities minus the quantities of
    /// orders not yet shipped, cancelled or refunded (Magento's reservations).
    pub fn salable_qty(&self, sku: &str) -> Decimal {
        let on_hand: Decimal = self
            .source_items
            .values()
            .filter(|i| i["sku"] == sku && i["status"] == 1)
            .map(|i| decimal(&i["quantity"]))
            .sum();
        let reserved: Decimal = self
            .orders
            .values()
            .filter(|o| matches!(o["state"].as_str(), Some("new" | "processing")))
            .flat_map(|o| o["items"].as_array().into_iter().flatten())
            .filter(|i| i["sku"] == sku && is_stock_line(i))
            .map(|i| decimal(&i["qty_ordered"]) - decimal(&i["qty_shipped"]))
            .sum();
        on_hand - reserved
    }

    /// Generates one order from a random template with new ids, a new customer or a guest,
    /// and now as its time; some in EUR. Returns its (entity id, increment id) and the
    /// changes to announce.
    pub fn generate(&mut self, rng: &mut impl Rng) -> (Option<(u64, String)>, Vec<Change>) {
        let templates = templates::orders();
        let Some(template) = templates.choose(rng) else {
            return (None, Vec::new());
        };
        let guest = rng.random_bool(GUEST_SHARE);
        let customer = rng.random_range(1..=500);
        let eur = rng.random_bool(EUR_SHARE);
        let mut changes = Vec::new();
        let order = self.place(
            template,
            guest.then_some(()).map_or(Some(customer), |_| None),
            eur,
        );
        let id = number(&order["entity_id"]);
        changes.push(order_change(&order));
        if template.refunded {
            changes.extend(self.credit_memo_for(id));
        }
        (Some((id, order_ref(&order))), changes)
    }

    fn place(&mut self, template: &Template, customer: Option<u64>, eur: bool) -> Value {
        self.next_order += 1;
        let id = self.next_order;
        let increment = format!("{id:09}");
        let now = (self.clock)();
        let mut order = template.order.clone();
        let mut items: BTreeMap<u64, u64> = BTreeMap::new();
        for item in order["items"].as_array().into_iter().flatten() {
            self.next_item += 1;
            items.insert(number(&item["item_id"]), self.next_item);
        }
        remap(&mut order, id, &items);
        order["entity_id"] = id.into();
        order["increment_id"] = increment.into();
        order["created_at"] = now.clone().into();
        order["updated_at"] = now.into();
        order["quote_id"] = (id + 5000).into();
        match customer {
            Some(customer) => {
                order["customer_is_guest"] = 0.into();
                order["customer_id"] = customer.into();
                order["customer_group_id"] = 1.into();
                order["customer_email"] = format!("customer{customer}@example.com").into();
            }
            None => {
                order["customer_is_guest"] = 1.into();
                order["customer_id"] = Value::Null;
                order["customer_group_id"] = 0.into();
                order["customer_email"] = format!("guest{id}@example.com").into();
            }
        }
        if eur {
            to_currency(&mut order, "EUR", EUR_RATE);
        }
        self.add_stock_for(&order);
        self.orders.insert(id, order.clone());
        order
    }

    /// Stores orders as given (REST shape; your own payloads), replacing any with the same
    /// `entity_id`; returns the changes to announce. An order without `entity_id` is refused.
    pub fn import_orders(&mut self, orders: Vec<Value>) -> Result<Vec<Change>, StoreError> {
        let mut changes = Vec::new();
        for mut order in orders {
            let id = number(&order["entity_id"]);
            if id == 0 {
                return Err(StoreError::Missing("entity_id"));
            }
            self.stamp(&mut order);
            self.add_stock_for(&order);
            changes.push(order_change(&order));
            self.orders.insert(id, order);
        }
        Ok(changes)
    }

    /// Stores credit memos as given (REST shape); each needs `entity_id` and `order_id`.
    pub fn import_creditmemos(&mut self, memos: Vec<Value>) -> Result<Vec<Change>, StoreError> {
        let mut changes = Vec::new();
        for mut memo in memos {
            let id = number(&memo["entity_id"]);
            if id == 0 {
                return Err(StoreError::Missing("entity_id"));
            }
            if number(&memo["order_id"]) == 0 {
                return Err(StoreError::Missing("order_id"));
            }
            self.stamp(&mut memo);
            changes.push(creditmemo_change(&memo));
            self.creditmemos.insert(id, memo);
        }
        Ok(changes)
    }

    /// Gives an imported entity without `updated_at` the current time.
    fn stamp(&self, entity: &mut Value) {
        if entity.get("updated_at").is_none_or(Value::is_null) {
            entity["updated_at"] = (self.clock)().into();
        }
    }

    /// The announcement of order `id` as it is now (to deliver it again).
    pub fn announcement(&self, id: u64) -> Option<Change> {
        self.orders.get(&id).map(order_change)
    }

    /// The announcement of credit memo `id`.
    pub fn creditmemo_announcement(&self, id: u64) -> Option<Change> {
        self.creditmemos.get(&id).map(creditmemo_change)
    }
}
