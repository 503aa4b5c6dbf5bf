//! The write-backs the bridge makes to the store: order comments with a status, the REST
//! ship call, and source-item quantities; each recorded for `/sim/writebacks`.

use serde_json::{Value, json};

use super::shape::{decimal, order_change, order_ref, set_state, ship_items, stock_lines};
use super::{Change, DEFAULT_SOURCE, Store, StoreError, WriteBack};

impl Store {
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
    pub(super) fn add_stock_for(&mut self, order: &Value) {
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
