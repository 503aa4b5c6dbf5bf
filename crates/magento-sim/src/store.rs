//! The simulated store's data: orders, credit memos and shipments in the REST shapes of the
//! fixtures, MSI source items, the changes made to them, and every write-back received.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::IndexedRandom;
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde_json::{Value, json};

use crate::table::Table;
use crate::templates::{self, Template};

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

    /// Applies `action` to order `id`; returns the changes to announce. A shipment goes
    /// from the source [`Store::pick_source`] chooses.
    pub fn act(&mut self, id: u64, action: Action) -> Result<Vec<Change>, StoreError> {
        self.act_from(id, action, None)
    }

    /// Applies `action` to order `id`, shipping from `source` when given.
    pub fn act_from(
        &mut self,
        id: u64,
        action: Action,
        source: Option<&str>,
    ) -> Result<Vec<Change>, StoreError> {
        let source = match (action, source) {
            (Action::Ship, Some(source)) => source.to_owned(),
            (Action::Ship, None) => self.pick_source(id),
            _ => String::new(),
        };
        let now = (self.clock)();
        let mut row = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| StoreError::NoOrder(id.to_string()))?;
        let order: &mut Value = &mut row;
        let state = order["state"].as_str().unwrap_or_default().to_owned();
        let reference = order_ref(order);
        let refuse = |action: &str| StoreError::NotAllowed {
            order: reference.clone(),
            state: state.clone(),
            action: action.to_owned(),
        };
        match action {
            Action::Touch => {}
            Action::Invoice if state == "new" => {
                set_state(order, "processing", "processing");
                for (field, from) in [
                    ("total_invoiced", "grand_total"),
                    ("base_total_invoiced", "base_grand_total"),
                    ("total_paid", "grand_total"),
                    ("base_total_paid", "base_grand_total"),
                ] {
                    order[field] = order[from].clone();
                }
                order["total_due"] = 0.into();
                order["base_total_due"] = 0.into();
            }
            Action::Ship if state == "processing" => {
                if !ship_items(order) {
                    return Err(refuse("shipped"));
                }
                set_state(order, "complete", "complete");
            }
            Action::Cancel if state == "new" => {
                let Some(items) = order["items"].as_array_mut() else {
                    return Err(refuse("canceled"));
                };
                for item in items {
                    item["qty_canceled"] = item["qty_ordered"].clone();
                }
                set_state(order, "canceled", "canceled");
            }
            Action::Refund if matches!(state.as_str(), "processing" | "complete") => {
                for (field, from) in [
                    ("total_refunded", "grand_total"),
                    ("base_total_refunded", "base_grand_total"),
                ] {
                    order[field] = order[from].clone();
                }
                if let Some(items) = order["items"].as_array_mut() {
                    for item in items {
                        item["qty_refunded"] = item["qty_ordered"].clone();
                    }
                }
                set_state(order, "closed", "closed");
            }
            Action::Invoice => return Err(refuse("invoiced")),
            Action::Ship => return Err(refuse("shipped")),
            Action::Cancel => return Err(refuse("canceled")),
            Action::Refund => return Err(refuse("refunded")),
        }
        order["updated_at"] = now.into();
        let mut changes = vec![order_change(order)];
        drop(row);
        match action {
            Action::Refund => changes.extend(self.credit_memo_for(id)),
            Action::Ship => changes.extend(self.shipment_for(id, &source, &[])),
            _ => {}
        }
        Ok(changes)
    }

    /// A full credit memo for order `id`, in the shape of the fixture.
    fn credit_memo_for(&mut self, id: u64) -> Option<Change> {
        let order = self.orders.get(&id)?;
        self.next_memo += 1;
        let memo_id = self.next_memo;
        let mut memo = templates::creditmemo();
        memo["entity_id"] = memo_id.into();
        memo["increment_id"] = format!("{memo_id:09}").into();
        memo["order_id"] = id.into();
        let now = (self.clock)();
        memo["created_at"] = now.clone().into();
        memo["updated_at"] = now.into();
        for field in [
            "order_currency_code",
            "base_currency_code",
            "base_to_order_rate",
            "grand_total",
            "base_grand_total",
            "subtotal",
            "base_subtotal",
            "tax_amount",
            "base_tax_amount",
            "shipping_amount",
            "base_shipping_amount",
            "discount_amount",
            "base_discount_amount",
        ] {
            memo[field] = order[field].clone();
        }
        let items: Vec<Value> = order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(n, item)| {
                json!({
                    "entity_id": memo_id * 100 + n as u64,
                    "parent_id": memo_id,
                    "order_item_id": item["item_id"],
                    "sku": item["sku"],
                    "name": item["name"],
                    "qty": item["qty_ordered"],
                    "price": item["price"],
                    "base_price": item["base_price"],
                    "row_total": item["row_total"],
                    "base_row_total": item["base_row_total"],
                    "tax_amount": item["tax_amount"],
                    "base_tax_amount": item["base_tax_amount"],
                    "discount_amount": item["discount_amount"],
                    "product_id": item["product_id"],
                })
            })
            .collect();
        memo["items"] = Value::Array(items);
        let change = creditmemo_change(&memo);
        self.creditmemos.insert(memo_id, memo);
        Some(change)
    }

    /// The source an order ships from, like MSI's priority algorithm with a preferred
    /// source: every third order prefers `wh_east` (a nearer warehouse), the rest
    /// `default`; the preferred source is taken if it holds every line, else the other one
    /// if it does, else the preferred one anyway (a backorder).
    pub fn pick_source(&self, id: u64) -> String {
        let preferred = if id.is_multiple_of(3) {
            "wh_east"
        } else {
            DEFAULT_SOURCE
        };
        let other = if preferred == DEFAULT_SOURCE {
            "wh_east"
        } else {
            DEFAULT_SOURCE
        };
        let Some(order) = self.orders.get(&id) else {
            return preferred.to_owned();
        };
        let holds_all = |source: &str| {
            stock_lines(order).all(|(sku, qty)| {
                self.source_items
                    .get(&(sku.to_owned(), source.to_owned()))
                    .is_some_and(|i| i["status"] == 1 && decimal(&i["quantity"]) >= qty)
            })
        };
        [preferred, other]
            .into_iter()
            .find(|s| holds_all(s))
            .unwrap_or(preferred)
            .to_owned()
    }

    /// A shipment of everything in order `id` from `source` with `tracks` (as the ship
    /// call takes them), in the REST shape (MSI puts the source in
    /// `extension_attributes.source_code`); the source's quantities go down.
    fn shipment_for(&mut self, id: u64, source: &str, tracks: &[Value]) -> Option<Change> {
        let order = self.orders.get(&id)?;
        self.next_shipment += 1;
        let shipment_id = self.next_shipment;
        let now = (self.clock)();
        // Magento lists top-level items and bundle children; a configurable ships as its
        // parent line (which carries the child's SKU).
        let items: Vec<Value> = order["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| {
                item["parent_item_id"].is_null()
                    || parent_type(order, &item["parent_item_id"]) == Some("bundle")
            })
            .enumerate()
            .map(|(n, item)| {
                json!({
                    "entity_id": shipment_id * 100 + n as u64,
                    "parent_id": shipment_id,
                    "order_item_id": item["item_id"],
                    "sku": item["sku"],
                    "name": item["name"],
                    "qty": item["qty_ordered"],
                    "price": item["price"],
                    "product_id": item["product_id"],
                    "weight": item.get("weight").cloned().unwrap_or(Value::Null),
                })
            })
            .collect();
        let total_qty: Decimal = stock_lines(order).map(|(_, qty)| qty).sum();
        let moved: Vec<(String, Decimal)> = stock_lines(order)
            .map(|(sku, qty)| (sku.to_owned(), qty))
            .collect();
        let shipment = json!({
            "entity_id": shipment_id,
            "increment_id": format!("{shipment_id:09}"),
            "order_id": id,
            "store_id": order["store_id"],
            "customer_id": order["customer_id"],
            "billing_address_id": Value::Null,
            "shipping_address_id": Value::Null,
            "total_qty": json_number(total_qty),
            "created_at": now,
            "updated_at": now,
            "items": items,
            "tracks": tracks
                .iter()
                .map(|t| json!({
                    "order_id": id,
                    "parent_id": shipment_id,
                    "track_number": t["track_number"],
                    "title": t["title"],
                    "carrier_code": t["carrier_code"],
                }))
                .collect::<Vec<Value>>(),
            "comments": [],
            "packages": [],
            "extension_attributes": { "source_code": source },
        });
        for (sku, qty) in moved {
            let item = self
                .source_items
                .entry((sku.clone(), source.to_owned()))
                .or_insert_with(
                    || json!({"sku": sku, "source_code": source, "quantity": 0, "status": 1}),
                );
            item["quantity"] = json_number(decimal(&item["quantity"]) - qty);
        }
        let change = shipment_change(&shipment);
        self.shipments.insert(shipment_id, shipment);
        Some(change)
    }

    /// The announcement of shipment `id`.
    pub fn shipment_announcement(&self, id: u64) -> Option<Change> {
        self.shipments.get(&id).map(shipment_change)
    }

    /// Records an order comment (and status) write-back, Magento's
    /// `POST /V1/orders/{id}/comments` with `{"statusHistory": {...}}`.
    pub fn comment(&mut self, id: u64, body: Value) -> Result<Option<Change>, StoreError> {
        let now = (self.clock)();
        let mut row = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| StoreError::NoOrder(id.to_string()))?;
        let order: &mut Value = &mut row;
        let history = body
            .get("statusHistory")
            .ok_or(StoreError::Missing("statusHistory"))?;
        let comment = history
            .get("comment")
            .and_then(Value::as_str)
            .ok_or(StoreError::Missing("statusHistory.comment"))?;
        let status = history.get("status").and_then(Value::as_str);
        let entry = json!({
            "comment": comment,
            "created_at": now,
            "entity_name": "order",
            "parent_id": id,
            "status": status.unwrap_or_else(|| order["status"].as_str().unwrap_or_default()),
            "is_customer_notified": history.get("is_customer_notified").cloned().unwrap_or(0.into()),
            "is_visible_on_front": history.get("is_visible_on_front").cloned().unwrap_or(0.into()),
        });
        if let Some(histories) = order["status_histories"].as_array_mut() {
            histories.insert(0, entry);
        } else {
            order["status_histories"] = json!([entry]);
        }
        let changed = status.is_some_and(|s| order["status"] != s);
        if let Some(status) = status {
            order["status"] = status.into();
        }
        self.writebacks.push(WriteBack {
            kind: "order_comment".into(),
            target: order_ref(order),
            body,
            at: now.clone(),
        });
        // A status change saves the order: a new updated_at the poller will see.
        Ok(changed.then(|| {
            order["updated_at"] = now.into();
            order_change(order)
        }))
    }

    /// Ships everything in order `id` as `POST /V1/order/{id}/ship` does (fulfilment the
    /// ERP drives): with the body's `tracks`, and its `comment` on the order when
    /// `appendComment`. A new order becomes processing, an invoiced one complete; any
    /// other state refuses, as Magento's "The order does not allow a shipment to be
    /// created". Returns the shipment id.
    pub fn ship_order(&mut self, id: u64, body: Value) -> Result<(u64, Vec<Change>), StoreError> {
        let source = match body
            .pointer("/arguments/extension_attributes/source_code")
            .and_then(Value::as_str)
        {
            Some(source) => source.to_owned(),
            None => self.pick_source(id),
        };
        let now = (self.clock)();
        let mut row = self
            .orders
            .get_mut(&id)
            .ok_or_else(|| StoreError::NoOrder(id.to_string()))?;
        let order: &mut Value = &mut row;
        let state = order["state"].as_str().unwrap_or_default().to_owned();
        let shipped_all = order["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .all(|i| decimal(&i["qty_shipped"]) >= decimal(&i["qty_ordered"]))
        });
        let next = match state.as_str() {
            _ if shipped_all => None,
            "new" => Some("processing"),
            "processing" => Some("complete"),
            _ => None,
        };
        let Some(next) = next.filter(|_| ship_items(order)) else {
            return Err(StoreError::NotAllowed {
                order: order_ref(order),
                state,
                action: if shipped_all {
                    "shipped again"
                } else {
                    "shipped"
                }
                .into(),
            });
        };
        set_state(order, next, next);
        order["updated_at"] = now.into();
        let mut changes = vec![order_change(order)];
        drop(row);
        let tracks = body["tracks"].as_array().cloned().unwrap_or_default();
        changes.extend(self.shipment_for(id, &source, &tracks));
        let shipment_id = self.next_shipment;
        let comment = body.pointer("/comment/comment").and_then(Value::as_str);
        if let (Some(true), Some(comment)) = (body["appendComment"].as_bool(), comment) {
            let history = json!({ "statusHistory": { "comment": comment } });
            changes.extend(self.comment(id, history)?);
        }
        let target = self.orders.get(&id).map(order_ref).unwrap_or_default();
        self.writebacks.push(WriteBack {
            kind: "order_ship".into(),
            target,
            body,
            at: (self.clock)(),
        });
        Ok((shipment_id, changes))
    }

    /// Saves MSI source items (`POST /V1/inventory/source-items`, `{"sourceItems": [...]}`).
    pub fn save_source_items(&mut self, body: Value) -> Result<(), StoreError> {
        let items = body
            .get("sourceItems")
            .and_then(Value::as_array)
            .ok_or(StoreError::Missing("sourceItems"))?;
        let now = (self.clock)();
        for item in items {
            let sku = item
                .get("sku")
                .and_then(Value::as_str)
                .ok_or(StoreError::Missing("sourceItems[].sku"))?;
            let source = item
                .get("source_code")
                .and_then(Value::as_str)
                .ok_or(StoreError::Missing("sourceItems[].source_code"))?;
            let quantity = item
                .get("quantity")
                .ok_or(StoreError::Missing("sourceItems[].quantity"))?;
            let status = item.get("status").cloned().unwrap_or(1.into());
            self.source_items.insert(
                (sku.to_owned(), source.to_owned()),
                json!({"sku": sku, "source_code": source, "quantity": quantity, "status": status}),
            );
            self.writebacks.push(WriteBack {
                kind: "source_items".into(),
                target: format!("{sku}|{source}"),
                body: item.clone(),
                at: now.clone(),
            });
        }
        Ok(())
    }

    /// Gives every stock SKU of `order` source items it has none of: 100 units at
    /// `default`, 25 at `wh_east` (the fixture's two sources).
    fn add_stock_for(&mut self, order: &Value) {
        let skus: Vec<String> = stock_lines(order).map(|(sku, _)| sku.to_owned()).collect();
        for sku in skus {
            for (source, quantity) in [(DEFAULT_SOURCE, 100), ("wh_east", 25)] {
                self.source_items
                    .entry((sku.clone(), source.to_owned()))
                    .or_insert_with(|| {
                        json!({"sku": sku, "source_code": source, "quantity": quantity, "status": 1})
                    });
            }
        }
    }
}

/// Marks every item of `order` shipped in full; `false` when it has no items.
fn ship_items(order: &mut Value) -> bool {
    let Some(items) = order["items"].as_array_mut() else {
        return false;
    };
    for item in items {
        item["qty_shipped"] = item["qty_ordered"].clone();
    }
    true
}

fn set_state(order: &mut Value, state: &str, status: &str) {
    order["state"] = state.into();
    order["status"] = status.into();
}

fn order_ref(order: &Value) -> String {
    order["increment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Simple products carry stock; their configurable / bundle parents do not.
fn is_stock_line(item: &Value) -> bool {
    item["product_type"] == "simple" || item["product_type"] == "virtual"
}

/// The (SKU, quantity ordered) of every stock line of `order`.
fn stock_lines(order: &Value) -> impl Iterator<Item = (&str, Decimal)> {
    order["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| is_stock_line(item))
        .filter_map(|item| Some((item["sku"].as_str()?, decimal(&item["qty_ordered"]))))
}

/// The product type of the order item `parent` names.
fn parent_type<'o>(order: &'o Value, parent: &Value) -> Option<&'o str> {
    order["items"]
        .as_array()?
        .iter()
        .find(|item| number(&item["item_id"]) == number(parent))?["product_type"]
        .as_str()
}

/// The I/O Events observer shape of an order save: raw model data with string ids and
/// no `entity_id` (the quirk of the fixture), items with their `order_id`.
fn order_change(order: &Value) -> Change {
    let items: Vec<Value> = order["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            json!({
                "sku": item["sku"],
                "qty_ordered": item["qty_ordered"],
                "item_id": text(&item["item_id"]),
                "order_id": text(&order["entity_id"]),
                "product_type": item["product_type"],
            })
        })
        .collect();
    Change {
        event: "observer.sales_order_save_commit_after",
        value: json!({
            "increment_id": order["increment_id"],
            "state": order["state"],
            "status": order["status"],
            "updated_at": order["updated_at"],
            "store_id": text(&order["store_id"]),
            "items": items,
        }),
    }
}

/// The observer shape of a credit memo save.
fn creditmemo_change(memo: &Value) -> Change {
    Change {
        event: "observer.sales_order_creditmemo_save_after",
        value: json!({
            "entity_id": text(&memo["entity_id"]),
            "order_id": text(&memo["order_id"]),
            "increment_id": memo["increment_id"],
            "updated_at": memo["updated_at"],
        }),
    }
}

/// The observer shape of a shipment save.
fn shipment_change(shipment: &Value) -> Change {
    Change {
        event: "observer.sales_order_shipment_save_after",
        value: json!({
            "entity_id": text(&shipment["entity_id"]),
            "order_id": text(&shipment["order_id"]),
            "increment_id": shipment["increment_id"],
            "updated_at": shipment["updated_at"],
        }),
    }
}

fn text(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.to_string().into(),
        other => other.clone(),
    }
}

fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap_or_default(),
        Value::String(s) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

fn decimal(value: &Value) -> Decimal {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(Decimal::from)
            .or_else(|| n.as_f64().and_then(Decimal::from_f64))
            .unwrap_or_default(),
        Value::String(s) => s.parse().unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

/// New order and item ids everywhere they appear (items, payment, histories, shipping
/// assignments, applied taxes).
fn remap(value: &mut Value, order: u64, items: &BTreeMap<u64, u64>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "order_id" | "parent_id" if !v.is_object() && !v.is_array() => {
                        *v = same_kind(v, order)
                    }
                    "item_id" | "parent_item_id" | "order_item_id" => {
                        if let Some(new) = items.get(&number(v)) {
                            *v = same_kind(v, *new);
                        }
                    }
                    _ => remap(v, order, items),
                }
            }
        }
        Value::Array(values) => values.iter_mut().for_each(|v| remap(v, order, items)),
        _ => {}
    }
}

/// `n` as a string if `like` is one (observer payloads carry string ids), else a number.
fn same_kind(like: &Value, n: u64) -> Value {
    match like {
        Value::String(_) => n.to_string().into(),
        Value::Null => Value::Null,
        _ => n.into(),
    }
}

/// Converts the order-currency amounts at `rate` (the `base_*` amounts stay), rounding
/// each to the cent as Magento does, and recomputes the order's grand total from its parts.
fn to_currency(order: &mut Value, currency: &str, rate: &str) {
    let rate: Decimal = rate.parse().unwrap_or(Decimal::ONE);
    fn scale(value: &mut Value, rate: Decimal) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if MONEY.contains(&key.as_str()) && v.is_number() {
                        *v = json_number((decimal(v) * rate).round_dp(2));
                    } else {
                        scale(v, rate);
                    }
                }
            }
            Value::Array(values) => values.iter_mut().for_each(|v| scale(v, rate)),
            _ => {}
        }
    }
    scale(order, rate);
    order["order_currency_code"] = currency.into();
    order["base_to_order_rate"] = json_number(rate);
    // As Magento does in the order currency: rows are price × quantity, and the order's
    // subtotal, discount and tax are the sums of its items', so they agree to the cent.
    let (mut subtotal, mut discount, mut tax) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    if let Some(items) = order["items"].as_array_mut() {
        for item in items {
            let row = (decimal(&item["price"]) * decimal(&item["qty_ordered"])).round_dp(2);
            item["row_total"] = json_number(row);
            if item.get("parent_item_id").is_none_or(Value::is_null) {
                subtotal += row;
            }
            discount += decimal(&item["discount_amount"]).abs();
            tax += decimal(&item["tax_amount"]);
        }
    }
    tax += decimal(&order["shipping_tax_amount"]);
    order["subtotal"] = json_number(subtotal);
    order["discount_amount"] = json_number(-discount);
    order["tax_amount"] = json_number(tax);
    let grand = subtotal - discount + decimal(&order["shipping_amount"]) + tax;
    order["grand_total"] = json_number(grand);
    for field in ["total_due", "total_invoiced", "total_paid"] {
        if decimal(&order[field]) != Decimal::ZERO {
            order[field] = json_number(grand);
        }
    }
}

/// A JSON number, as Magento writes amounts (the sim's own data; consumers read it as
/// decimal text).
fn json_number(amount: Decimal) -> Value {
    amount.to_f64().map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_orders_get_new_ids_everywhere_and_keep_their_shape() {
        let mut store = Store::with_fixtures();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..30 {
            store.generate(&mut rng);
        }
        let generated: Vec<&Value> = store
            .orders()
            .filter(|o| number(&o["entity_id"]) > 1000)
            .collect();
        assert_eq!(generated.len(), 30);
        for order in generated {
            let id = number(&order["entity_id"]);
            assert_eq!(order["increment_id"], format!("{id:09}"));
            for item in order["items"].as_array().into_iter().flatten() {
                assert_eq!(number(&item["order_id"]), id);
                assert!(number(&item["item_id"]) > 10_000);
                if !item["parent_item_id"].is_null() {
                    assert!(number(&item["parent_item_id"]) > 10_000);
                }
            }
            assert_eq!(number(&order["payment"]["parent_id"]), id);
        }
        assert!(store.orders().any(|o| o["customer_is_guest"] == 1));
        assert!(store.orders().any(|o| o["order_currency_code"] == "EUR"));
        assert!(store.creditmemos().count() > 1);
    }

    #[test]
    fn a_converted_order_adds_up_in_its_own_currency() {
        let mut store = Store::with_fixtures();
        let template = &templates::orders()[1];
        let order = store.place(template, Some(1), true);
        let sum = decimal(&order["subtotal"])
            + decimal(&order["shipping_amount"])
            + decimal(&order["tax_amount"])
            + decimal(&order["discount_amount"]);
        assert_eq!(decimal(&order["grand_total"]), sum);
        assert_eq!(
            order["base_grand_total"],
            template.order["base_grand_total"]
        );
        assert_ne!(order["grand_total"], template.order["grand_total"]);
    }

    #[test]
    fn actions_follow_magento_states_and_refuse_the_rest() -> Result<(), StoreError> {
        let mut store = Store::with_fixtures();
        let order = store.place(&templates::orders()[0], None, false);
        let id = number(&order["entity_id"]);
        assert!(matches!(
            store.act(id, Action::Ship),
            Err(StoreError::NotAllowed { .. })
        ));
        store.act(id, Action::Invoice)?;
        assert!(matches!(
            store.act(id, Action::Cancel),
            Err(StoreError::NotAllowed { .. })
        ));
        store.act(id, Action::Ship)?;
        let changes = store.act(id, Action::Refund)?;
        assert_eq!(changes.len(), 2, "the order save and the credit memo");
        assert_eq!(
            store.order(id).map(|o| o["state"].clone()),
            Some("closed".into())
        );
        assert_eq!(
            store.act(99_999, Action::Touch).err(),
            Some(StoreError::NoOrder("99999".into()))
        );
        Ok(())
    }

    #[test]
    fn the_rest_ship_call_ships_a_new_or_invoiced_order_once_with_its_tracks()
    -> Result<(), StoreError> {
        let mut store = Store::with_fixtures();
        let body = json!({
            "appendComment": true,
            "comment": { "comment": "Shipped by erp-sim (SH-1) [bridge e-1]" },
            "tracks": [{ "track_number": "1Z1", "title": "UPS", "carrier_code": "ups" }],
        });
        let new = number(&store.place(&templates::orders()[0], None, false)["entity_id"]);
        let (shipment, _) = store.ship_order(new, body.clone())?;
        assert_eq!(
            store
                .shipment(shipment)
                .map(|s| s["tracks"][0]["track_number"].clone()),
            Some("1Z1".into())
        );
        let order = store.order(new).cloned().unwrap_or_default();
        assert_eq!(order["state"], "processing", "shipped, not invoiced");
        assert!(matches!(
            store.ship_order(new, body.clone()),
            Err(StoreError::NotAllowed { .. })
        ));
        assert_eq!(
            order["status_histories"][0]["comment"],
            "Shipped by erp-sim (SH-1) [bridge e-1]"
        );

        let invoiced = number(&store.place(&templates::orders()[0], None, false)["entity_id"]);
        store.act(invoiced, Action::Invoice)?;
        store.ship_order(invoiced, body.clone())?;
        assert_eq!(
            store.order(invoiced).map(|o| o["state"].clone()),
            Some("complete".into())
        );
        assert!(matches!(
            store.ship_order(invoiced, body),
            Err(StoreError::NotAllowed { .. })
        ));
        let ships = store
            .writebacks()
            .iter()
            .filter(|w| w.kind == "order_ship")
            .count();
        assert_eq!(ships, 2);
        Ok(())
    }

    #[test]
    fn a_shipment_names_its_source_and_takes_the_stock_from_it() -> Result<(), StoreError> {
        let mut store = Store::with_fixtures();
        // The bundle + configurable fixture: stock lines are the bundle's children and the
        // configurable's child; the shipment lists top-level lines and bundle children.
        let order = store.place(&templates::orders()[0], None, false);
        let id = number(&order["entity_id"]);
        let before = store.source_items.clone();
        store.act(id, Action::Invoice)?;
        let changes = store.act_from(id, Action::Ship, Some("wh_east"))?;
        assert_eq!(
            changes.iter().map(|c| c.event).collect::<Vec<_>>(),
            [
                "observer.sales_order_save_commit_after",
                "observer.sales_order_shipment_save_after"
            ]
        );
        let shipment = store
            .shipments()
            .next()
            .cloned()
            .ok_or(StoreError::Missing("shipment"))?;
        assert_eq!(shipment["extension_attributes"]["source_code"], "wh_east");
        assert_eq!(shipment["order_id"], id);
        let shipped_skus: Vec<&str> = shipment["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["sku"].as_str())
            .collect();
        assert!(!shipped_skus.is_empty());
        for (sku, qty) in stock_lines(&order) {
            let key = (sku.to_owned(), "wh_east".to_owned());
            assert_eq!(
                decimal(&store.source_items[&key]["quantity"]),
                decimal(&before[&key]["quantity"]) - qty,
                "{sku} left wh_east"
            );
            let default = (sku.to_owned(), DEFAULT_SOURCE.to_owned());
            assert_eq!(store.source_items[&default], before[&default]);
        }
        Ok(())
    }

    #[test]
    fn imported_orders_are_served_as_given_and_announced() -> Result<(), StoreError> {
        let mut store = Store::with_fixtures();
        let mut order = templates::orders()[1].order.clone();
        order["entity_id"] = "7001".into();
        order["increment_id"] = "SHOP-7001".into();
        let changes = store.import_orders(vec![order.clone()])?;
        assert_eq!(changes.len(), 1);
        assert_eq!(store.order(7001), Some(&order));
        assert_eq!(changes[0].value["increment_id"], "SHOP-7001");
        let memo = json!({"entity_id": 77, "order_id": 7001, "items": []});
        assert_eq!(store.import_creditmemos(vec![memo])?.len(), 1);
        assert!(
            store
                .creditmemo(77)
                .is_some_and(|m| m["updated_at"].is_string())
        );
        assert_eq!(
            store
                .import_orders(vec![json!({"increment_id": "x"})])
                .err(),
            Some(StoreError::Missing("entity_id"))
        );
        Ok(())
    }

    #[test]
    fn write_backs_are_recorded_and_a_status_change_saves_the_order() -> Result<(), StoreError> {
        let mut store = Store::with_fixtures();
        let before = store
            .order(5)
            .map(|o| o["status_histories"].as_array().map(Vec::len));
        let change = store.comment(
            5,
            json!({"statusHistory": {"comment": "In ERP as SO-1", "status": "processing"}}),
        )?;
        assert!(change.is_some());
        assert_eq!(
            store.order(5).map(|o| o["status"].clone()),
            Some("processing".into())
        );
        let after = store
            .order(5)
            .map(|o| o["status_histories"].as_array().map(Vec::len));
        assert_ne!(before, after);
        assert_eq!(
            store.comment(5, json!({})).err(),
            Some(StoreError::Missing("statusHistory"))
        );
        store.save_source_items(json!({"sourceItems": [{"sku": "24-WB03", "source_code": "ams", "quantity": 7, "status": 1}]}))?;
        assert_eq!(store.writebacks().len(), 2);
        assert_eq!(store.writebacks()[1].target, "24-WB03|ams");
        Ok(())
    }
}
