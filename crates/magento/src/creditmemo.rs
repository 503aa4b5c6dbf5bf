//! A Magento credit memo (`GET /V1/creditmemo/{id}`) with its order to `CreditMemoCreated`
//! and, for the lines returned to stock, `RETURN` movements.
//!
//! The credit memo names its order only by `order_id` (entity id), and its items carry no
//! product type; the order gives the increment id and tells stock lines from parents.

use bridge_events::ids::{FactIdentity, parse_magento_time};
use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::order::{CreditMemoCreated, CreditMemoLine};
use bridge_events::{AvroEvent, Event, Millis};
use rust_decimal::Decimal;

use crate::json::{FieldError, Obj};
use crate::order::{DEFAULT_SOURCE, Mapped, envelope};

/// Maps credit memo `memo` of `order` (both REST shapes) from `source`.
pub fn map_creditmemo(
    memo: &Obj<'_>,
    order: &Obj<'_>,
    source: &str,
    produced_at: Millis,
) -> Result<Mapped, FieldError> {
    let order_ref = order.str("increment_id")?;
    let order_id = memo.str("order_id")?;
    if order.str("entity_id")? != order_id {
        return Err(memo.invalid(
            "order_id",
            format!("is not the order fetched ({order_ref})"),
        ));
    }
    let memo_ref = memo.str("increment_id")?;
    let created_text = memo.str("created_at")?;
    let created_at =
        parse_magento_time(&created_text).map_err(|e| memo.invalid("created_at", e.to_string()))?;
    let store_id = memo
        .opt_i64("store_id")?
        .or(order.opt_i64("store_id")?)
        .ok_or_else(|| memo.missing("store_id"))?;
    let store_id =
        i32::try_from(store_id).map_err(|_| memo.invalid("store_id", "out of range".into()))?;
    let stock_items = stock_item_ids(order)?;
    let mut lines = Vec::new();
    let mut movements = Vec::new();
    for item in memo.list("items")? {
        let line_id = item.str("order_item_id")?;
        let sku = item.str("sku")?;
        let qty = item.decimal("qty")?;
        let back_to_stock = item.has("back_to_stock") && item.flag("back_to_stock")?;
        if back_to_stock && qty > Decimal::ZERO && stock_items.contains(&line_id) {
            let entity = format!("{sku}|{DEFAULT_SOURCE}");
            let fact = format!("InventoryMovement:RETURN:{order_ref}:{memo_ref}:{line_id}");
            movements.push(InventoryMovement {
                envelope: envelope(
                    identity(source, &entity, &fact),
                    InventoryMovement::RECORD,
                    created_at,
                    produced_at,
                    &order_ref,
                ),
                sku: sku.clone(),
                source_code: DEFAULT_SOURCE.to_owned(),
                kind: MovementKind::Return,
                quantity: qty,
                order_ref: Some(order_ref.clone()),
            });
        }
        lines.push(CreditMemoLine {
            line_id,
            sku,
            qty,
            row_total: item.decimal_or_zero("row_total")?,
            tax_amount: item.decimal_or_zero("tax_amount")?,
            discount_amount: item.decimal_or_zero("discount_amount")?.abs(),
            back_to_stock,
        });
    }
    if lines.is_empty() {
        return Err(memo.missing("items"));
    }
    let fact = format!("CreditMemoCreated:{memo_ref}");
    let event = CreditMemoCreated {
        envelope: envelope(
            identity(source, &order_ref, &fact),
            CreditMemoCreated::RECORD,
            created_at,
            produced_at,
            &order_ref,
        ),
        order_ref: order_ref.clone(),
        order_id,
        store_id,
        credit_memo_id: memo.str("entity_id")?,
        credit_memo_ref: memo_ref,
        created_at,
        currency: memo
            .opt_str("order_currency_code")?
            .map_or_else(|| order.str("order_currency_code"), Ok)?,
        subtotal: memo.decimal_or_zero("subtotal")?,
        shipping_amount: memo.decimal_or_zero("shipping_amount")?,
        tax_amount: memo.decimal_or_zero("tax_amount")?,
        adjustment_positive: memo.decimal_or_zero("adjustment_positive")?,
        adjustment_negative: memo.decimal_or_zero("adjustment_negative")?,
        grand_total: memo.decimal("grand_total")?,
        lines,
    };
    Ok(Mapped {
        orders: vec![Event::CreditMemoCreated(event)],
        movements,
    })
}

/// The order items that hold stock (not bundle / configurable / grouped parents).
fn stock_item_ids(order: &Obj<'_>) -> Result<Vec<String>, FieldError> {
    let mut ids = Vec::new();
    for item in order.list("items")? {
        let kind = item.opt_str("product_type")?.unwrap_or_default();
        if !matches!(kind.as_str(), "configurable" | "bundle" | "grouped") {
            ids.push(item.str("item_id")?);
        }
    }
    Ok(ids)
}

/// A fact that happens once (a credit memo is created once).
fn identity<'a>(source: &'a str, entity: &'a str, fact: &'a str) -> FactIdentity<'a> {
    FactIdentity {
        source,
        entity,
        fact,
        version: None,
    }
}
