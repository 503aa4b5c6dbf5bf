//! A Magento order — REST (`GET /V1/orders/{id}`) or observer shape (Adobe I/O Events
//! `data.value`, webhooks) — to order events and inventory movements. Both shapes of the
//! same order at the same `updated_at` give the same events with the same ids.

use bridge_events::ids::{FactIdentity, parse_magento_time};
use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::order::{
    LineQuantity, OrderCancelled, OrderLine, OrderPlaced, OrderTotals, OrderTransition,
    OrderUpdated,
};
use bridge_events::{AvroEvent, Envelope, Event, Millis};
use rust_decimal::Decimal;

use crate::json::{FieldError, Obj};

/// The stock source movements are booked against when the order names none: reservations
/// are made per stock, the source is chosen at shipment.
pub const DEFAULT_SOURCE: &str = "default";

/// What one order snapshot says.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// Order facts, in the order they happened: placed, then its current state.
    pub orders: Vec<Event>,
    /// Stock movements per SKU and source.
    pub movements: Vec<InventoryMovement>,
}

impl Mapped {
    /// The event ids of everything it says, orders then movements.
    pub fn event_ids(&self) -> impl Iterator<Item = &str> {
        self.orders
            .iter()
            .map(|e| e.envelope().event_id.as_str())
            .chain(self.movements.iter().map(|m| m.envelope.event_id.as_str()))
    }
}

/// Maps one order snapshot from `source` (e.g. `magento:default`).
pub fn map_order(order: &Obj<'_>, source: &str, produced_at: Millis) -> Result<Mapped, FieldError> {
    let order_ref = order.str("increment_id")?;
    let order_id = order.str("entity_id")?;
    let store_id = order
        .opt_i64("store_id")?
        .ok_or_else(|| order.missing("store_id"))?;
    let store_id =
        i32::try_from(store_id).map_err(|_| order.invalid("store_id", "out of range".into()))?;
    let state = order.str("state")?;
    let status = order.opt_str("status")?.unwrap_or_else(|| state.clone());
    let created_at = time(order, "created_at")?;
    let updated_at = match order.opt_str("updated_at")? {
        Some(_) => time(order, "updated_at")?,
        None => created_at,
    };
    let (lines, stock_lines) = lines(order)?;
    let is_guest = order.flag("customer_is_guest")?;
    let customer_id = order.opt_str("customer_id")?;
    let customer_ref = match &customer_id {
        Some(id) if !is_guest => format!("customer:{id}"),
        _ => format!("guest:{order_ref}"),
    };
    let order_currency = order.str("order_currency_code")?;
    let fact_envelope = |entity: &str, record: &str, fact: &str, version, at| {
        let identity = FactIdentity {
            source,
            entity,
            fact,
            version,
        };
        envelope(identity, record, at, produced_at, &order_ref)
    };
    let order_envelope = |record: &str, fact: &str, version, at| {
        fact_envelope(&order_ref, record, fact, version, at)
    };
    let placed = OrderPlaced {
        envelope: order_envelope(OrderPlaced::RECORD, "OrderPlaced", None, created_at),
        order_ref: order_ref.clone(),
        order_id: order_id.clone(),
        store_id,
        state: state.clone(),
        status: status.clone(),
        created_at,
        updated_at,
        base_currency: order
            .opt_str("base_currency_code")?
            .unwrap_or_else(|| order_currency.clone()),
        order_currency,
        totals: totals(order, "")?,
        base_totals: totals(order, "base_")?,
        shipping_method: shipping_method(order)?,
        payment_method: order.obj("payment")?.str("method")?,
        customer_ref,
        customer_is_guest: is_guest || customer_id.is_none(),
        customer_group_id: order
            .opt_i64("customer_group_id")?
            .and_then(|g| i32::try_from(g).ok()),
        ship_to_country: ship_to_country(order)?,
        lines,
    };
    let mut orders = vec![Event::OrderPlaced(placed)];
    // One movement per SKU (two lines of one SKU are one fact, one event id).
    let movement = |(sku, quantity): (String, Decimal), kind: MovementKind, at: Millis| {
        let entity = format!("{sku}|{DEFAULT_SOURCE}");
        let fact = format!("InventoryMovement:{}:{order_ref}", movement_name(kind));
        InventoryMovement {
            envelope: fact_envelope(&entity, InventoryMovement::RECORD, &fact, None, at),
            sku,
            source_code: DEFAULT_SOURCE.to_owned(),
            kind,
            quantity,
            order_ref: Some(order_ref.clone()),
        }
    };
    let ordered = quantities(&stock_lines, |l| l.ordered);
    let mut movements: Vec<InventoryMovement> =
        per_sku(ordered.iter().map(|l| (l.sku.clone(), -l.qty)))?
            .into_iter()
            .map(|q| movement(q, MovementKind::Reservation, created_at))
            .collect();

    if state == "canceled" {
        let released = quantities(&stock_lines, |l| l.canceled);
        movements.extend(
            per_sku(released.iter().map(|l| (l.sku.clone(), l.qty)))?
                .into_iter()
                .map(|q| movement(q, MovementKind::CancellationRelease, updated_at)),
        );
        orders.push(Event::OrderCancelled(OrderCancelled {
            envelope: order_envelope(OrderCancelled::RECORD, "OrderCancelled", None, updated_at),
            order_ref: order_ref.clone(),
            order_id,
            store_id,
            cancelled_at: updated_at,
            reason: None,
            released,
        }));
    } else if let Some(transition) = transition(&state, order)? {
        let fact = format!("OrderUpdated:{}", transition_name(transition));
        orders.push(Event::OrderUpdated(OrderUpdated {
            envelope: order_envelope(OrderUpdated::RECORD, &fact, Some(updated_at), updated_at),
            order_ref: order_ref.clone(),
            order_id,
            store_id,
            transition,
            previous_state: None,
            previous_status: None,
            state,
            status,
            updated_at,
            total_invoiced: order.opt_decimal("total_invoiced")?,
            total_refunded: order.opt_decimal("total_refunded")?,
            shipped: quantities(&stock_lines, |l| l.shipped),
        }));
    }
    Ok(Mapped { orders, movements })
}

/// The envelope of the fact `identity`, correlated by the order it belongs to.
pub(super) fn envelope(
    identity: FactIdentity<'_>,
    record: &str,
    occurred_at: Millis,
    produced_at: Millis,
    order_ref: &str,
) -> Envelope {
    Envelope {
        event_id: identity.event_id(),
        event_type: record.to_owned(),
        schema_version: 1,
        occurred_at,
        produced_at,
        source: identity.source.to_owned(),
        correlation_id: order_ref.to_owned(),
        causation_id: None,
    }
}

/// The name of a transition in event ids, fixed forever (as in the schema's symbols).
fn transition_name(transition: OrderTransition) -> &'static str {
    match transition {
        OrderTransition::Invoiced => "INVOICED",
        OrderTransition::Shipped => "SHIPPED",
        OrderTransition::OnHold => "ON_HOLD",
        OrderTransition::Released => "RELEASED",
        OrderTransition::Closed => "CLOSED",
        OrderTransition::Completed => "COMPLETED",
        OrderTransition::StatusChanged => "STATUS_CHANGED",
    }
}

/// The name of a movement kind in event ids, fixed forever (as in the schema's symbols).
fn movement_name(kind: MovementKind) -> &'static str {
    match kind {
        MovementKind::Reservation => "RESERVATION",
        MovementKind::Shipment => "SHIPMENT",
        MovementKind::CancellationRelease => "CANCELLATION_RELEASE",
        MovementKind::Return => "RETURN",
        MovementKind::SourceItemSet => "SOURCE_ITEM_SET",
    }
}

fn time(obj: &Obj<'_>, key: &str) -> Result<Millis, FieldError> {
    let text = obj.str(key)?;
    parse_magento_time(&text).map_err(|e| obj.invalid(key, e.to_string()))
}

/// The state a snapshot is in, as a transition worth telling the ERP; `None` for orders
/// still new or awaiting payment (placed says it all).
fn transition(state: &str, order: &Obj<'_>) -> Result<Option<OrderTransition>, FieldError> {
    Ok(match state {
        "new" | "pending_payment" | "payment_review" => None,
        "processing" if order.decimal_or_zero("total_invoiced")? > Decimal::ZERO => {
            Some(OrderTransition::Invoiced)
        }
        "processing" => Some(OrderTransition::StatusChanged),
        "complete" => Some(OrderTransition::Completed),
        "closed" => Some(OrderTransition::Closed),
        "holded" => Some(OrderTransition::OnHold),
        _ => Some(OrderTransition::StatusChanged),
    })
}

/// Order totals in the order currency (`prefix = ""`) or the base currency (`"base_"`).
/// Discounts are negative at order level in Magento and positive in events.
fn totals(order: &Obj<'_>, prefix: &str) -> Result<OrderTotals, FieldError> {
    let field = |name: &str| format!("{prefix}{name}");
    Ok(OrderTotals {
        subtotal: order.decimal(&field("subtotal"))?,
        discount_amount: order.decimal_or_zero(&field("discount_amount"))?.abs(),
        shipping_amount: order.decimal_or_zero(&field("shipping_amount"))?,
        tax_amount: order.decimal_or_zero(&field("tax_amount"))?,
        grand_total: order.decimal(&field("grand_total"))?,
    })
}

fn line(item: &Obj<'_>) -> Result<OrderLine, FieldError> {
    Ok(OrderLine {
        line_id: item.str("item_id")?,
        parent_line_id: item.opt_str("parent_item_id")?,
        sku: sku(item)?,
        name: item.opt_str("name")?.unwrap_or_default(),
        product_type: item
            .opt_str("product_type")?
            .unwrap_or_else(|| "simple".into()),
        qty_ordered: item.decimal("qty_ordered")?,
        unit_price: item.decimal_or_zero("price")?,
        discount_amount: item.decimal_or_zero("discount_amount")?.abs(),
        tax_amount: item.decimal_or_zero("tax_amount")?,
        tax_percent: item.decimal_or_zero("tax_percent")?,
        tax_class: None,
        row_total: item.decimal_or_zero("row_total")?,
        base_row_total: match item.opt_decimal("base_row_total")? {
            Some(total) => total,
            None => item.decimal_or_zero("row_total")?,
        },
    })
}

/// A SKU as Magento allows it: 1–64 characters, no control characters.
pub(super) fn sku(item: &Obj<'_>) -> Result<String, FieldError> {
    let sku = item.str("sku")?;
    if sku.chars().count() > 64 || sku.chars().any(char::is_control) || sku.trim() != sku {
        return Err(item.invalid(
            "sku",
            "not a Magento SKU (1-64 characters, no control characters or edge spaces)".into(),
        ));
    }
    Ok(sku)
}

/// A line that holds stock: simple, virtual or downloadable products — top level or the
/// children of bundles and configurables. Parents of configurables and bundles hold none.
struct StockLine {
    line_id: String,
    sku: String,
    ordered: Decimal,
    canceled: Decimal,
    shipped: Decimal,
}

/// Every order line, and the lines among them that hold stock, from one pass over `items`.
fn lines(order: &Obj<'_>) -> Result<(Vec<OrderLine>, Vec<StockLine>), FieldError> {
    let mut lines = Vec::new();
    let mut stock = Vec::new();
    for item in order.list("items")? {
        let line = line(&item)?;
        if !matches!(
            line.product_type.as_str(),
            "configurable" | "bundle" | "grouped"
        ) {
            stock.push(StockLine {
                line_id: line.line_id.clone(),
                sku: line.sku.clone(),
                ordered: line.qty_ordered,
                canceled: item.decimal_or_zero("qty_canceled")?,
                shipped: item.decimal_or_zero("qty_shipped")?,
            });
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(order.missing("items"));
    }
    Ok((lines, stock))
}

/// Quantities summed per SKU, in the order SKUs first appear; a sum outside what the
/// events hold (±10^14) is refused, naming the SKU's lines.
pub(super) fn per_sku(
    quantities: impl IntoIterator<Item = (String, Decimal)>,
) -> Result<Vec<(String, Decimal)>, FieldError> {
    let mut summed: Vec<(String, Decimal)> = Vec::new();
    for (sku, qty) in quantities {
        match summed.iter_mut().find(|(s, _)| *s == sku) {
            Some((_, total)) => {
                *total = bridge_events::decimal::checked_add(*total, qty).map_err(|_| {
                    FieldError::Invalid {
                        path: "items".into(),
                        reason: format!(
                            "the quantities of SKU `{sku}` sum outside ±10^14, the range of decimal(18,4)"
                        ),
                    }
                })?;
            }
            None => summed.push((sku, qty)),
        }
    }
    Ok(summed)
}

/// The non-zero `qty` of each stock line.
fn quantities(lines: &[StockLine], qty: impl Fn(&StockLine) -> Decimal) -> Vec<LineQuantity> {
    lines
        .iter()
        .filter(|l| !qty(l).is_zero())
        .map(|l| LineQuantity {
            line_id: l.line_id.clone(),
            sku: l.sku.clone(),
            qty: qty(l),
        })
        .collect()
}

/// REST: `extension_attributes.shipping_assignments[0].shipping.method`; observer:
/// `shipping_method`.
fn shipping_method(order: &Obj<'_>) -> Result<Option<String>, FieldError> {
    if let Some(method) = order.opt_str("shipping_method")? {
        return Ok(Some(method));
    }
    Ok(match rest_shipping(order)? {
        Some(shipping) => shipping.opt_str("method")?,
        None => None,
    })
}

/// REST: the shipping assignment's address; observer: `addresses[]` with
/// `address_type = shipping`; billing address as the fallback.
fn ship_to_country(order: &Obj<'_>) -> Result<Option<String>, FieldError> {
    if let Some(shipping) = rest_shipping(order)?
        && let Some(address) = shipping.opt_obj("address")?
    {
        return address.opt_str("country_id");
    }
    for address in order.list("addresses")? {
        if address.opt_str("address_type")?.as_deref() == Some("shipping") {
            return address.opt_str("country_id");
        }
    }
    match order.opt_obj("billing_address")? {
        Some(billing) => billing.opt_str("country_id"),
        None => Ok(None),
    }
}

fn rest_shipping<'a>(order: &Obj<'a>) -> Result<Option<Obj<'a>>, FieldError> {
    let Some(extension) = order.opt_obj("extension_attributes")? else {
        return Ok(None);
    };
    match extension.list("shipping_assignments")?.first() {
        Some(assignment) => assignment.opt_obj("shipping"),
        None => Ok(None),
    }
}
