//! The Magento fixtures (copied from `../shared/fixtures/magento`, see `fixtures/magento/SOURCES.md`)
//! through the mapping, field by field, one test per quirk the sources list.

mod common;

use bridge_events::Event;
use bridge_events::inventory::MovementKind;
use bridge_events::order::OrderPlaced;
use magento::{FieldError, Mapped, Obj, map_order};
use rust_decimal::Decimal;
use serde_json::Value;

use common::{SOURCE, TestResult, d, fixture};

fn map(value: &Value) -> Result<Mapped, FieldError> {
    map_order(&Obj::root(value), SOURCE, 0)
}

/// The first fact of a snapshot, which is always its `OrderPlaced`.
fn placed(mapped: &Mapped) -> Result<&OrderPlaced, String> {
    match mapped.orders.first() {
        Some(Event::OrderPlaced(placed)) => Ok(placed),
        other => Err(format!("OrderPlaced first, found {other:?}")),
    }
}

#[test]
fn a_pending_order_with_a_bundle_and_a_configurable_maps_line_by_line() -> TestResult {
    let mapped = map(&fixture(
        "orders/order_simple_bundle_configurable_pending.json",
    )?)?;
    let [Event::OrderPlaced(placed)] = mapped.orders.as_slice() else {
        panic!(
            "a new order is placed and nothing else: {:?}",
            mapped.orders
        );
    };
    assert_eq!(
        placed.order_ref, "000000005",
        "zero-padded increment id kept as text"
    );
    assert_eq!(placed.order_id, "5");
    assert_eq!(
        (placed.state.as_str(), placed.status.as_str()),
        ("new", "pending")
    );
    assert_eq!(
        placed.created_at, 1_710_165_771_000,
        "2024-03-11 14:02:51 UTC"
    );
    assert_eq!(placed.totals.subtotal, d("145"));
    assert_eq!(placed.totals.shipping_amount, d("15"));
    assert_eq!(placed.totals.grand_total, d("160"));
    assert_eq!(placed.base_totals.grand_total, d("160"));
    assert_eq!(placed.payment_method, "checkmo");
    assert_eq!(placed.shipping_method.as_deref(), Some("tablerate_bestway"));
    assert_eq!(placed.ship_to_country.as_deref(), Some("US"));
    assert_eq!(placed.customer_ref, "customer:3");
    assert!(
        !placed.customer_is_guest,
        "customer_is_guest: 0 is an int flag"
    );
    assert_eq!(placed.lines.len(), 6, "parents and children, flat");
    let bundle_children: Vec<_> = placed
        .lines
        .iter()
        .filter(|l| l.parent_line_id.as_deref() == Some("22"))
        .map(|l| (l.sku.as_str(), l.unit_price))
        .collect();
    assert_eq!(
        bundle_children,
        [("24-YB01", d("25")), ("24-ST08", d("20"))]
    );
    let configurable_child = placed
        .lines
        .iter()
        .find(|l| l.parent_line_id.as_deref() == Some("25"))
        .ok_or("configurable child")?;
    assert_eq!(configurable_child.sku, "MH07-M-Black");
    assert_eq!(
        configurable_child.unit_price,
        Decimal::ZERO,
        "the child carries no price"
    );
    let bundle = placed
        .lines
        .iter()
        .find(|l| l.line_id == "22")
        .ok_or("bundle")?;
    assert_eq!(
        bundle.tax_percent,
        Decimal::ZERO,
        "bundle parent lacks tax_percent"
    );

    // Stock is reserved on the lines that hold stock: never on bundle or configurable parents.
    let reserved: Vec<(&str, Decimal)> = mapped
        .movements
        .iter()
        .map(|m| {
            assert_eq!(m.kind, MovementKind::Reservation);
            (m.sku.as_str(), m.quantity)
        })
        .collect();
    assert_eq!(
        reserved,
        [
            ("MS-TEE-L-Blue", d("-2")),
            ("24-YB01", d("-1")),
            ("24-ST08", d("-1")),
            ("MH07-M-Black", d("-1")),
        ]
    );
    Ok(())
}

#[test]
fn order_discounts_are_negative_in_magento_and_positive_in_events() -> TestResult {
    let mapped = map(&fixture(
        "orders/order_discount_tax_invoiced_processing.json",
    )?)?;
    let placed = placed(&mapped)?;
    assert_eq!(placed.totals.discount_amount, d("10.4"));
    assert_eq!(placed.totals.tax_amount, d("7.73"));
    assert_eq!(placed.totals.grand_total, d("111.33"), "money to the cent");
    assert_eq!(
        placed.lines[0].discount_amount,
        d("7.2"),
        "item discount stays positive"
    );
    assert_eq!(placed.lines[0].tax_percent, d("8.25"));
    assert_eq!(placed.lines[0].tax_amount, d("5.35"));
    // The total adds up: subtotal − discount + shipping + tax.
    let t = &placed.totals;
    assert_eq!(
        t.subtotal - t.discount_amount + t.shipping_amount + t.tax_amount,
        t.grand_total
    );
    let Some(Event::OrderUpdated(updated)) = mapped.orders.get(1) else {
        panic!(
            "an invoiced processing order is also an update: {:?}",
            mapped.orders
        );
    };
    assert_eq!(format!("{:?}", updated.transition), "Invoiced");
    assert_eq!(updated.total_invoiced, Some(d("111.33")));
    Ok(())
}

#[test]
fn a_closed_refunded_configurable_is_a_closed_update() -> TestResult {
    let mapped = map(&fixture("orders/order_closed_refunded_configurable.json")?)?;
    let Some(Event::OrderUpdated(updated)) = mapped.orders.get(1) else {
        panic!("closed is an update: {:?}", mapped.orders);
    };
    assert_eq!(format!("{:?}", updated.transition), "Closed");
    assert_eq!(updated.total_refunded, Some(d("44")));
    assert_eq!(updated.shipped.len(), 1, "only the child holds stock");
    assert_eq!(updated.shipped[0].sku, "MJ01-XS-Yellow");
    Ok(())
}

#[test]
fn the_same_snapshot_gives_the_same_ids_and_updates_are_versioned() -> TestResult {
    let mut order = fixture("orders/order_discount_tax_invoiced_processing.json")?;
    let first = map(&order)?;
    assert_eq!(first, map(&order)?, "deterministic");
    order["updated_at"] = Value::from("2024-04-02 09:30:00");
    let later = map(&order)?;
    let id = |m: &Mapped, i: usize| m.orders[i].envelope().event_id.clone();
    assert_eq!(id(&first, 0), id(&later, 0), "an order is placed once");
    assert_ne!(id(&first, 1), id(&later, 1), "a later update is a new fact");
    assert_eq!(
        first.movements[0].envelope.event_id, later.movements[0].envelope.event_id,
        "a reservation is made once"
    );
    Ok(())
}

#[test]
fn observer_payloads_with_string_numbers_and_addresses_map_like_rest() -> TestResult {
    // The I/O event's data.value carries strings for numbers and ids, `[]` for empty objects,
    // addresses[] instead of shipping assignments, and here no entity_id at all.
    let event = fixture("events/io_event_sales_order_save_commit_after.json")?;
    let mut value = event["data"]["value"].clone();
    let error = map(&value).err().ok_or("mapped without entity_id")?;
    assert_eq!(
        error,
        FieldError::Missing {
            path: "entity_id".into()
        }
    );
    value["entity_id"] = Value::from("8");
    value["base_grand_total"] = Value::from("111.330000");
    value["payment"]["additional_information"] = Value::Array(vec![]);
    let mapped = map(&value)?;
    let placed = placed(&mapped)?;
    assert_eq!(placed.order_id, "8");
    assert_eq!(
        placed.base_totals.grand_total,
        d("111.33"),
        "\"111.330000\" read as a decimal"
    );
    assert_eq!(placed.totals.discount_amount, d("10.4"));
    assert_eq!(placed.shipping_method.as_deref(), Some("tablerate_bestway"));
    assert_eq!(placed.lines[0].line_id, "41", "string ids");
    // Placed has the same id as from the REST order 000000008, whatever the snapshot.
    let rest = map(&fixture(
        "orders/order_discount_tax_invoiced_processing.json",
    )?)?;
    assert_eq!(
        placed.envelope.event_id,
        rest.orders[0].envelope().event_id,
        "one fact, one id, from either path"
    );
    Ok(())
}

#[test]
fn a_missing_or_bad_field_is_named_with_its_path() -> TestResult {
    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    if let Some(items) = order["items"].as_array_mut()
        && let Some(item) = items.get_mut(2)
        && let Some(fields) = item.as_object_mut()
    {
        fields.remove("sku");
    }
    let error = map(&order).err().ok_or("mapped without a sku")?;
    assert_eq!(error.path(), "items[2].sku");

    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    order["items"][0]["sku"] = Value::from("BAD\u{0}SKU");
    let error = map(&order).err().ok_or("mapped a control character sku")?;
    assert_eq!(error.path(), "items[0].sku");
    assert!(error.to_string().contains("not a Magento SKU"), "{error}");

    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    order["grand_total"] = Value::from("12,50");
    let error = map(&order).err().ok_or("mapped a comma decimal")?;
    assert_eq!(error.path(), "grand_total");

    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    order["created_at"] = Value::from("11/03/2024");
    assert_eq!(map(&order).err().ok_or("bad date")?.path(), "created_at");
    Ok(())
}

#[test]
fn guests_get_a_pseudonymous_reference_and_no_personal_data_leaves() -> TestResult {
    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    if let Some(fields) = order.as_object_mut() {
        fields.remove("customer_id");
    }
    order["customer_is_guest"] = Value::from(1);
    let mapped = map(&order)?;
    let placed = placed(&mapped)?;
    assert_eq!(placed.customer_ref, "guest:000000005");
    assert!(placed.customer_is_guest);
    let everything = format!("{mapped:?}");
    for personal in [
        "jdoe@example.com",
        "Jane",
        "Doe",
        "123 Oak Ave",
        "512-555-1111",
    ] {
        assert!(
            !everything.contains(personal),
            "{personal} leaked into the events"
        );
    }
    Ok(())
}

/// Ids are fixed forever: recomputed here with Python's `uuid.uuid5` over the documented
/// name (`source \x1f entity \x1f fact \x1f version`), so a change to any part shows.
#[test]
fn event_ids_match_an_independent_uuid5() -> TestResult {
    let mapped = map(&fixture(
        "orders/order_simple_bundle_configurable_pending.json",
    )?)?;
    assert_eq!(
        mapped.orders[0].envelope().event_id,
        "1b96f93f-7007-5362-b2f9-50b726d547b3"
    );
    assert_eq!(
        mapped.movements[0].envelope.event_id,
        "56e1e2d3-8050-5ca9-a501-fde819c55094"
    );
    Ok(())
}
