//! What the fuzz targets share: an event written through its schema exactly as the codec
//! writes it after the header (any panic or overflow there is a finding).

use apache_avro::writer::datum::GenericDatumWriter;
use bridge_events::Event;

/// Writes `event` with its own schema; errors are fine (a value the schema refuses is
/// parked by the services), panics are not.
pub fn write_through_schema(event: &Event) {
    let Ok(schema) = bridge_events::schema::record(event.record_name()) else {
        return;
    };
    let Ok(value) = event.to_value() else {
        return;
    };
    let Ok(resolved) = value.resolve(&schema.schema) else {
        return;
    };
    if let Ok(writer) = GenericDatumWriter::builder(&schema.schema).build() {
        let mut bytes = Vec::new();
        let _ = writer.write_value(&mut bytes, resolved);
    }
}

/// Maps one Magento JSON order snapshot and writes what it says through the schemas.
pub fn map_and_write_order(order: &serde_json::Value) {
    use magento::{Obj, map_order};
    if let Ok(mapped) = map_order(&Obj::root(order), "magento:default", 0) {
        for event in &mapped.orders {
            write_through_schema(event);
        }
        for movement in mapped.movements {
            write_through_schema(&Event::InventoryMovement(movement));
        }
    }
}
