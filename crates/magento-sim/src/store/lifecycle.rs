//! What happens to an order in the store: Magento's actions (invoice, ship, cancel,
//! refund, hold), the credit memos and shipments they make, and their announcements.

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::shape::{
    creditmemo_change, decimal, json_number, order_change, order_ref, parent_type, set_state,
    ship_items, shipment_change, stock_lines,
};
use super::{Action, Change, DEFAULT_SOURCE, Store, StoreError};
use crate::templates;

impl Store {
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
    pub(super) fn credit_memo_for(&mut self, id: u64) -> Option<Change> {
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
    pub(super) fn shipment_for(
        &mut self,
        id: u64,
        source: &str,
        tracks: &[Value],
    ) -> Option<Change> {
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
}
