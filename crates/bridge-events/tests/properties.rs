//! Property tests: arbitrary bytes never panic the decoder, and generated events of many
//! shapes round-trip through their schemas exactly (money to the last decimal place).

use apache_avro::writer::datum::GenericDatumWriter;
use bridge_events::codec::{read_body, split_header};
use bridge_events::inventory::{InventoryMovement, MovementKind};
use bridge_events::order::{OrderLine, OrderPlaced};
use bridge_events::{AvroEvent, Event, samples, schema};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn amount() -> impl Strategy<Value = Decimal> {
    (-999_999_999_999_999_999i64..=999_999_999_999_999_999i64).prop_map(|u| Decimal::new(u, 4))
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn line() -> impl Strategy<Value = OrderLine> {
    (
        text(),
        proptest::option::of(text()),
        text(),
        amount(),
        amount(),
        amount(),
        proptest::option::of(text()),
    )
        .prop_map(|(sku, parent, name, qty, price, tax, class)| OrderLine {
            line_id: sku.len().to_string(),
            parent_line_id: parent,
            sku,
            name,
            product_type: "configurable".into(),
            qty_ordered: qty,
            unit_price: price,
            discount_amount: tax,
            tax_amount: tax,
            tax_percent: Decimal::new(21, 0),
            tax_class: class,
            row_total: price,
            base_row_total: price,
        })
}

fn order() -> impl Strategy<Value = OrderPlaced> {
    (
        text(),
        proptest::collection::vec(line(), 0..12),
        amount(),
        proptest::option::of(text()),
        any::<bool>(),
    )
        .prop_map(|(order_ref, lines, grand_total, shipping, guest)| {
            let mut order = samples::order_placed("1", 0);
            order.order_ref = order_ref;
            order.lines = lines;
            order.totals.grand_total = grand_total;
            order.shipping_method = shipping;
            order.customer_is_guest = guest;
            order
        })
}

fn movement() -> impl Strategy<Value = InventoryMovement> {
    (
        text(),
        text(),
        amount(),
        0usize..5,
        proptest::option::of(text()),
    )
        .prop_map(|(sku, source, qty, kind, order_ref)| {
            let mut m = samples::inventory_movement("x", "y", 0);
            m.sku = sku;
            m.source_code = source;
            m.quantity = qty;
            m.kind = [
                MovementKind::Reservation,
                MovementKind::Shipment,
                MovementKind::CancellationRelease,
                MovementKind::Return,
                MovementKind::SourceItemSet,
            ][kind];
            m.order_ref = order_ref;
            m
        })
}

fn round_trip<E: AvroEvent + Into<Event>>(event: E) -> Result<(), TestCaseError> {
    let event: Event = event.into();
    let record =
        schema::record(event.record_name()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let fail = |e: apache_avro::Error| TestCaseError::fail(e.to_string());
    let value = event
        .to_value()
        .map_err(fail)?
        .resolve(&record.schema)
        .map_err(fail)?;
    let body = GenericDatumWriter::builder(&record.schema)
        .build()
        .map_err(fail)?
        .write_value_to_vec(value)
        .map_err(fail)?;
    let read = read_body(&record.schema, &record.schema, &body).map_err(TestCaseError::fail)?;
    let back = Event::from_value(event.record_name(), &read).map_err(TestCaseError::fail)?;
    prop_assert_eq!(back, event);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_orders_round_trip(order in order()) {
        round_trip(order)?;
    }

    #[test]
    fn generated_movements_round_trip(movement in movement()) {
        round_trip(movement)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = split_header(&bytes);
        let Ok(all) = schema::all() else { return Err(TestCaseError::fail("schemas do not bundle")) };
        for record in all.values() {
            let _ = read_body(&record.schema, &record.schema, &bytes);
        }
    }

    #[test]
    fn flipped_bytes_of_a_real_event_never_panic(position in 0usize..4096, flip in 1u8..=255) {
        let event = Event::from(samples::order_placed("000000042", 3));
        let Ok(record) = schema::record(event.record_name()) else { return Err(TestCaseError::fail("no schema")) };
        let fail = |e: apache_avro::Error| TestCaseError::fail(e.to_string());
        let value = event.to_value().map_err(fail)?.resolve(&record.schema).map_err(fail)?;
        let mut body = GenericDatumWriter::builder(&record.schema).build().map_err(fail)?.write_value_to_vec(value).map_err(fail)?;
        let at = position % body.len();
        body[at] ^= flip;
        let _ = read_body(&record.schema, &record.schema, &body);
    }
}
