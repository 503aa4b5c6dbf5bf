//! The store's unit tests: generated and imported orders, actions, shipments, write-backs.

use super::shape::{decimal, number, stock_lines};

use super::*;
use rand::SeedableRng;
use serde_json::json;

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
fn the_rest_ship_call_ships_a_new_or_invoiced_order_once_with_its_tracks() -> Result<(), StoreError>
{
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
