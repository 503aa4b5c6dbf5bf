//! Helpers over the REST shapes: states, stock lines, the announcements of an entity,
//! number and money reading, id remapping and currency conversion.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use serde_json::{Value, json};

use super::{Change, MONEY};

pub(super) fn ship_items(order: &mut Value) -> bool {
    let Some(items) = order["items"].as_array_mut() else {
        return false;
    };
    for item in items {
        item["qty_shipped"] = item["qty_ordered"].clone();
    }
    true
}

pub(super) fn set_state(order: &mut Value, state: &str, status: &str) {
    order["state"] = state.into();
    order["status"] = status.into();
}

pub(super) fn order_ref(order: &Value) -> String {
    order["increment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Simple products carry stock; their configurable / bundle parents do not.
pub(super) fn is_stock_line(item: &Value) -> bool {
    item["product_type"] == "simple" || item["product_type"] == "virtual"
}

/// The (SKU, quantity ordered) of every stock line of `order`.
pub(super) fn stock_lines(order: &Value) -> impl Iterator<Item = (&str, Decimal)> {
    order["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| is_stock_line(item))
        .filter_map(|item| Some((item["sku"].as_str()?, decimal(&item["qty_ordered"]))))
}

/// The product type of the order item `parent` names.
pub(super) fn parent_type<'o>(order: &'o Value, parent: &Value) -> Option<&'o str> {
    order["items"]
        .as_array()?
        .iter()
        .find(|item| number(&item["item_id"]) == number(parent))?["product_type"]
        .as_str()
}

/// The I/O Events observer shape of an order save: raw model data with string ids and
/// no `entity_id` (the quirk of the fixture), items with their `order_id`.
pub(super) fn order_change(order: &Value) -> Change {
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
pub(super) fn creditmemo_change(memo: &Value) -> Change {
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
pub(super) fn shipment_change(shipment: &Value) -> Change {
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

pub(super) fn text(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.to_string().into(),
        other => other.clone(),
    }
}

pub(super) fn number(value: &Value) -> u64 {
    match value {
        Value::Number(n) => n.as_u64().unwrap_or_default(),
        Value::String(s) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

pub(super) fn decimal(value: &Value) -> Decimal {
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
pub(super) fn remap(value: &mut Value, order: u64, items: &BTreeMap<u64, u64>) {
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
pub(super) fn same_kind(like: &Value, n: u64) -> Value {
    match like {
        Value::String(_) => n.to_string().into(),
        Value::Null => Value::Null,
        _ => n.into(),
    }
}

/// Converts the order-currency amounts at `rate` (the `base_*` amounts stay), rounding
/// each to the cent as Magento does, and recomputes the order's grand total from its parts.
pub(super) fn to_currency(order: &mut Value, currency: &str, rate: &str) {
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
pub(super) fn json_number(amount: Decimal) -> Value {
    amount.to_f64().map_or(Value::Null, Value::from)
}
