//! A Magento REST search page (`{"items": [...], "total_count": N}`) of orders, credit
//! memos, shipments or source items: every item mapped as each kind, credit memos and
//! shipments against the page's first item as their order.
#![no_main]

use bridge_events::Event;
use libfuzzer_sys::fuzz_target;
use magento::{Obj, map_creditmemo, map_shipment, map_source_item};

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(items) = page.get("items").and_then(|i| i.as_array()) else {
        return;
    };
    let order = items.first().cloned().unwrap_or_default();
    for item in items.iter().take(64) {
        bridge_fuzz::map_and_write_order(item);
        let entity = Obj::root(item);
        let parent = Obj::root(&order);
        for mapped in [
            map_creditmemo(&entity, &parent, "magento:default", 0),
            map_shipment(&entity, &parent, "magento:default", 0),
        ]
        .into_iter()
        .flatten()
        {
            for event in &mapped.orders {
                bridge_fuzz::write_through_schema(event);
            }
            for movement in mapped.movements {
                bridge_fuzz::write_through_schema(&Event::InventoryMovement(movement));
            }
        }
        if let Ok(movement) = map_source_item(&entity, "magento:default", 0, 0) {
            bridge_fuzz::write_through_schema(&Event::InventoryMovement(movement));
        }
    }
});
