//! A Magento shipment (`GET /V1/shipment/{id}`) with its order to the stock movements MSI
//! books for it: the goods leave the shipment's source (`SHIPMENT`, −qty at
//! `extension_attributes.source_code`), and the order's reservation is compensated
//! (`RESERVATION`, +qty at the source reservations are booked against), as MSI writes a
//! `shipment_created` compensation row to `inventory_reservation`.
//!
//! Summed with the order's own `RESERVATION` (−qty), an order shipped from `wh_east` nets
//! −qty at `wh_east` and 0 at `default`; shipped from `default`, −qty at `default`.
//!
//! Shipment items name their order item: a configurable ships as its parent line (whose SKU
//! is the child's), a bundle as its children. Lines are resolved through the order to the
//! line that holds stock.

use bridge_events::ids::{FactIdentity, parse_magento_time};
use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::{AvroEvent, Millis};
use rust_decimal::Decimal;

use crate::json::{FieldError, Obj};
use crate::order::{DEFAULT_SOURCE, Mapped, envelope, per_sku};

/// Maps `shipment` of `order` (both REST shapes) from `source`.
pub fn map_shipment(
    shipment: &Obj<'_>,
    order: &Obj<'_>,
    source: &str,
    produced_at: Millis,
) -> Result<Mapped, FieldError> {
    let order_ref = order.str("increment_id")?;
    if order.str("entity_id")? != shipment.str("order_id")? {
        return Err(shipment.invalid(
            "order_id",
            format!("is not the order fetched ({order_ref})"),
        ));
    }
    let shipment_ref = shipment.str("increment_id")?;
    let created_text = shipment.str("created_at")?;
    let created_at = parse_magento_time(&created_text)
        .map_err(|e| shipment.invalid("created_at", e.to_string()))?;
    let ship_from = match shipment.opt_obj("extension_attributes")? {
        Some(extension) => extension.opt_str("source_code")?,
        None => None,
    }
    // Single-source stores (MSI off) ship from the default source.
    .unwrap_or_else(|| DEFAULT_SOURCE.to_owned());
    let order_items = order.list("items")?;
    let mut shipped = Vec::new();
    for item in shipment.list("items")? {
        let line_id = item.str("order_item_id")?;
        let qty = item.decimal("qty")?;
        if qty <= Decimal::ZERO {
            continue;
        }
        let Some(ordered) = find_line(&order_items, &line_id)? else {
            return Err(item.invalid(
                "order_item_id",
                format!("is not a line of order {order_ref}"),
            ));
        };
        let kind = ordered.opt_str("product_type")?.unwrap_or_default();
        let stock_line = match kind.as_str() {
            // Its children are shipment items of their own.
            "bundle" | "grouped" => continue,
            "configurable" => child_of(&order_items, &line_id)?.unwrap_or(ordered),
            _ => ordered,
        };
        shipped.push((stock_line.str("sku")?, qty));
    }
    if shipped.is_empty() {
        return Err(shipment.missing("items"));
    }
    let mut movements = Vec::new();
    for (sku, qty) in per_sku(shipped)? {
        let mut movement = |source_code: &str, kind: MovementKind, quantity: Decimal| {
            let entity = format!("{sku}|{source_code}");
            let name = match kind {
                MovementKind::Shipment => "SHIPMENT",
                _ => "RESERVATION",
            };
            let fact = format!("InventoryMovement:{name}:{order_ref}:shipment:{shipment_ref}");
            let identity = FactIdentity {
                source,
                entity: &entity,
                fact: &fact,
                version: None,
            };
            movements.push(InventoryMovement {
                envelope: envelope(
                    identity,
                    InventoryMovement::RECORD,
                    created_at,
                    produced_at,
                    &order_ref,
                ),
                sku: sku.clone(),
                source_code: source_code.to_owned(),
                kind,
                quantity,
                order_ref: Some(order_ref.clone()),
            });
        };
        movement(&ship_from, MovementKind::Shipment, -qty);
        movement(DEFAULT_SOURCE, MovementKind::Reservation, qty);
    }
    Ok(Mapped {
        orders: Vec::new(),
        movements,
    })
}

fn find_line<'a>(items: &[Obj<'a>], line_id: &str) -> Result<Option<Obj<'a>>, FieldError> {
    for item in items {
        if item.str("item_id")? == line_id {
            return Ok(Some(item.clone()));
        }
    }
    Ok(None)
}

fn child_of<'a>(items: &[Obj<'a>], parent: &str) -> Result<Option<Obj<'a>>, FieldError> {
    for item in items {
        if item.opt_str("parent_item_id")?.as_deref() == Some(parent) {
            return Ok(Some(item.clone()));
        }
    }
    Ok(None)
}
