//! The Rust types and the `.avsc` files cannot drift apart: every event type round-trips
//! through apache-avro against its bundled schema, and its fields are exactly the
//! schema's fields (names, recursively).

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{RecordSchema, UnionSchema};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use bridge_events::event::RECORDS;
use bridge_events::{Event, samples, schema};

fn field_names(value: &Value) -> Vec<String> {
    match value {
        Value::Record(fields) => fields.iter().map(|(n, _)| n.clone()).collect(),
        _ => Vec::new(),
    }
}

/// Walks a resolved value beside its schema and fails on any record whose field names differ.
fn assert_same_shape(
    value: &Value,
    schema: &Schema,
    names: &apache_avro::schema::Names,
    path: &str,
) {
    match (value, schema) {
        (_, Schema::Ref { name }) => match names.get(name) {
            Some(target) => assert_same_shape(value, target, names, path),
            None => panic!("{path}: unknown reference {name:?}"),
        },
        (
            Value::Record(fields),
            Schema::Record(RecordSchema {
                fields: schema_fields,
                ..
            }),
        ) => {
            let expected: Vec<&str> = schema_fields.iter().map(|f| f.name.as_str()).collect();
            let actual = field_names(value);
            assert_eq!(actual, expected, "{path}: fields differ from the schema");
            for ((name, v), f) in fields.iter().zip(schema_fields) {
                assert_same_shape(v, &f.schema, names, &format!("{path}.{name}"));
            }
        }
        (Value::Array(items), Schema::Array(array)) => {
            for (i, item) in items.iter().enumerate() {
                assert_same_shape(item, &array.items, names, &format!("{path}[{i}]"));
            }
        }
        (Value::Union(index, inner), Schema::Union(UnionSchema { .. })) => {
            if let Schema::Union(union) = schema {
                assert_same_shape(inner, &union.variants()[*index as usize], names, path);
            }
        }
        _ => {}
    }
}

/// Writes a resolved value to Avro bytes and reads it back as an event.
fn through_bytes(
    schema: &Schema,
    resolved: Value,
    record: &str,
) -> Result<Event, Box<dyn std::error::Error>> {
    let bytes = GenericDatumWriter::builder(schema)
        .build()?
        .write_value_to_vec(resolved)?;
    let read = GenericDatumReader::builder(schema)
        .build()?
        .read_value(&mut bytes.as_slice())?;
    Ok(Event::from_value(record, &read)?)
}

#[test]
fn every_record_has_a_sample_and_a_schema() {
    let samples = samples::one_of_each();
    let sampled: Vec<&str> = samples.iter().map(Event::record_name).collect();
    let declared: Vec<&str> = RECORDS.iter().map(|(name, _)| *name).collect();
    assert_eq!(sampled, declared);
    let bundled: Vec<&String> = schema::all()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(bundled.len(), declared.len());
}

#[test]
fn every_event_round_trips_through_its_schema_field_for_field()
-> Result<(), Box<dyn std::error::Error>> {
    for event in samples::one_of_each() {
        let record = schema::record(event.record_name())?;
        let resolved = event.to_value()?.resolve(&record.schema)?;
        let names = apache_avro::schema::ResolvedSchema::try_from(&record.schema)?
            .get_names()
            .clone();
        let owned: apache_avro::schema::Names = names
            .iter()
            .map(|(k, v)| (k.clone(), (*v).clone()))
            .collect();
        assert_same_shape(&resolved, &record.schema, &owned, event.record_name());

        let back = through_bytes(&record.schema, resolved, event.record_name())?;
        assert_eq!(back, event, "{} did not round-trip", event.record_name());
    }
    Ok(())
}

#[test]
fn money_stays_decimal_to_the_cent() -> Result<(), Box<dyn std::error::Error>> {
    let order = samples::order_placed("000000001", 10);
    let record = schema::record("bridge.events.OrderPlaced")?;
    let resolved = apache_avro::to_value(&order)?.resolve(&record.schema)?;
    let Value::Record(fields) = &resolved else {
        panic!("not a record")
    };
    let Some((_, Value::Record(totals))) = fields.iter().find(|(n, _)| n == "totals") else {
        panic!("no totals")
    };
    let Some((_, grand_total)) = totals.iter().find(|(n, _)| n == "grand_total") else {
        panic!("no grand_total")
    };
    assert!(matches!(grand_total, Value::Decimal(_)), "{grand_total:?}");

    // 10 lines of 2 × 19.99, 2.00 discount and 7.9758 tax each, plus 5.00 shipping.
    let Event::OrderPlaced(back) = through_bytes(&record.schema, resolved, &record.name)? else {
        panic!("wrong type")
    };
    assert_eq!(back.totals.grand_total.to_string(), "464.5580");
    assert_eq!(back.lines[3].unit_price.to_string(), "19.9900");
    Ok(())
}
