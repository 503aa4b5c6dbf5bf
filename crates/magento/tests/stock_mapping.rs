//! Stock movements per MSI source: shipments (from the source MSI chose, with the
//! reservation compensated), source items (absolute levels), and one movement per SKU.

mod common;

use std::collections::BTreeMap;

use bridge_events::inventory::{InventoryMovement, MovementKind};
use magento::{Obj, map_order, map_shipment, map_source_item};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::{SOURCE, TestResult, d, fixture};

/// A REST shipment of the whole bundle + configurable fixture order (entity 5): top-level
/// lines and the bundle's children, as Magento lists them.
fn shipment_of_order_5(source: Option<&str>) -> Value {
    let item =
        |line: u64, sku: &str, qty: u64| json!({"order_item_id": line, "sku": sku, "qty": qty});
    let mut shipment = json!({
        "entity_id": 31,
        "increment_id": "000000031",
        "order_id": 5,
        "store_id": 1,
        "created_at": "2024-03-12 09:30:00",
        "updated_at": "2024-03-12 09:30:00",
        "items": [
            item(21, "MS-TEE-L-Blue", 2),
            item(22, "YOGA-KIT-24-YB01-24-ST08", 1),
            item(23, "24-YB01", 1),
            item(24, "24-ST08", 1),
            item(25, "MH07-M-Black", 1),
        ],
        "tracks": [],
    });
    if let Some(source) = source {
        shipment["extension_attributes"] = json!({ "source_code": source });
    }
    shipment
}

/// Net quantity per `sku|source` of some movements.
fn net(movements: &[InventoryMovement]) -> BTreeMap<String, Decimal> {
    let mut net = BTreeMap::new();
    for m in movements {
        *net.entry(format!("{}|{}", m.sku, m.source_code))
            .or_insert(Decimal::ZERO) += m.quantity;
    }
    net.retain(|_, q| !q.is_zero());
    net
}

#[test]
fn a_shipment_takes_stock_from_its_source_and_compensates_the_reservation() -> TestResult {
    let order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    let placed = map_order(&Obj::root(&order), SOURCE, 0)?;
    let shipment = shipment_of_order_5(Some("wh_east"));
    let shipped = map_shipment(&Obj::root(&shipment), &Obj::root(&order), SOURCE, 0)?;
    assert!(
        shipped.orders.is_empty(),
        "the order's own save says Shipped"
    );
    let kinds: Vec<(&str, &str, MovementKind, Decimal)> = shipped
        .movements
        .iter()
        .map(|m| (m.sku.as_str(), m.source_code.as_str(), m.kind, m.quantity))
        .collect();
    assert_eq!(
        kinds,
        [
            ("MS-TEE-L-Blue", "wh_east", MovementKind::Shipment, d("-2")),
            (
                "MS-TEE-L-Blue",
                "default",
                MovementKind::Reservation,
                d("2")
            ),
            ("24-YB01", "wh_east", MovementKind::Shipment, d("-1")),
            ("24-YB01", "default", MovementKind::Reservation, d("1")),
            ("24-ST08", "wh_east", MovementKind::Shipment, d("-1")),
            ("24-ST08", "default", MovementKind::Reservation, d("1")),
            // The configurable ships as its parent line; the stock is its child's SKU.
            ("MH07-M-Black", "wh_east", MovementKind::Shipment, d("-1")),
            ("MH07-M-Black", "default", MovementKind::Reservation, d("1")),
        ]
    );
    // Placed then shipped from wh_east: the stock left wh_east, default is back to even.
    let all: Vec<InventoryMovement> = placed
        .movements
        .into_iter()
        .chain(shipped.movements.iter().cloned())
        .collect();
    let expected: BTreeMap<String, Decimal> = [
        ("24-ST08|wh_east", "-1"),
        ("24-YB01|wh_east", "-1"),
        ("MH07-M-Black|wh_east", "-1"),
        ("MS-TEE-L-Blue|wh_east", "-2"),
    ]
    .into_iter()
    .map(|(k, q)| (k.to_owned(), d(q)))
    .collect();
    assert_eq!(net(&all), expected);
    // Every movement is its own fact, and the same shipment maps to the same ids.
    let again = map_shipment(&Obj::root(&shipment), &Obj::root(&order), SOURCE, 99)?;
    let ids = |m: &[InventoryMovement]| {
        m.iter()
            .map(|m| m.envelope.event_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&again.movements), ids(&shipped.movements));
    let mut unique = ids(&all);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len());
    Ok(())
}

#[test]
fn a_shipment_without_a_source_ships_from_default_and_nets_to_the_order() -> TestResult {
    let order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    let placed = map_order(&Obj::root(&order), SOURCE, 0)?;
    let shipment = shipment_of_order_5(None);
    let shipped = map_shipment(&Obj::root(&shipment), &Obj::root(&order), SOURCE, 0)?;
    let all: Vec<InventoryMovement> = placed
        .movements
        .iter()
        .chain(&shipped.movements)
        .cloned()
        .collect();
    assert_eq!(
        net(&all),
        net(&placed.movements),
        "shipping from default moves nothing more"
    );
    assert!(shipped.movements.iter().all(|m| m.source_code == "default"));
    Ok(())
}

#[test]
fn a_shipment_naming_a_line_its_order_lacks_names_the_field() -> TestResult {
    let order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    let mut shipment = shipment_of_order_5(Some("wh_east"));
    shipment["items"][1]["order_item_id"] = json!(999);
    let error = map_shipment(&Obj::root(&shipment), &Obj::root(&order), SOURCE, 0)
        .err()
        .ok_or("a foreign line must not map")?;
    assert_eq!(error.path(), "items[1].order_item_id");
    shipment["order_id"] = json!(6);
    let error = map_shipment(&Obj::root(&shipment), &Obj::root(&order), SOURCE, 0)
        .err()
        .ok_or("another order's shipment must not map")?;
    assert_eq!(error.path(), "order_id");
    Ok(())
}

#[test]
fn source_items_are_absolute_levels_versioned_by_when_they_were_seen() -> TestResult {
    let page = fixture("inventory/msi_source_items_search_response.json")?;
    let items = page["items"].as_array().ok_or("items")?;
    let mapped: Vec<InventoryMovement> = items
        .iter()
        .map(|i| map_source_item(&Obj::root(i), SOURCE, 1_000, 2_000))
        .collect::<Result<_, _>>()?;
    let levels: Vec<(&str, &str, MovementKind, Decimal)> = mapped
        .iter()
        .map(|m| (m.sku.as_str(), m.source_code.as_str(), m.kind, m.quantity))
        .collect();
    assert_eq!(
        levels,
        [
            (
                "WS12-M-Orange",
                "default",
                MovementKind::SourceItemSet,
                d("100")
            ),
            (
                "WS12-M-Orange",
                "wh_east",
                MovementKind::SourceItemSet,
                d("25")
            ),
        ]
    );
    assert_eq!(mapped[0].envelope.occurred_at, 1_000);
    let same_sync = map_source_item(&Obj::root(&items[0]), SOURCE, 1_000, 9_999)?;
    let next_sync = map_source_item(&Obj::root(&items[0]), SOURCE, 61_000, 9_999)?;
    assert_eq!(same_sync.envelope.event_id, mapped[0].envelope.event_id);
    assert_ne!(next_sync.envelope.event_id, mapped[0].envelope.event_id);
    let mut bad = items[0].clone();
    bad["quantity"] = json!("lots");
    let error = map_source_item(&Obj::root(&bad), SOURCE, 1_000, 2_000)
        .err()
        .ok_or("a quantity that is not a number must not map")?;
    assert_eq!(error.path(), "quantity");
    Ok(())
}

#[test]
fn two_lines_of_one_sku_are_one_reservation_of_their_sum() -> TestResult {
    let mut order = fixture("orders/order_simple_bundle_configurable_pending.json")?;
    // The bundle's child 24-YB01 and a second simple line of the same SKU.
    let mut extra = order["items"][0].clone();
    extra["item_id"] = json!(99);
    extra["sku"] = json!("24-YB01");
    extra["qty_ordered"] = json!(3);
    order["items"].as_array_mut().ok_or("items")?.push(extra);
    let mapped = map_order(&Obj::root(&order), SOURCE, 0)?;
    let yb01: Vec<&InventoryMovement> = mapped
        .movements
        .iter()
        .filter(|m| m.sku == "24-YB01")
        .collect();
    assert_eq!(yb01.len(), 1);
    assert_eq!(yb01[0].quantity, d("-4"));
    Ok(())
}
