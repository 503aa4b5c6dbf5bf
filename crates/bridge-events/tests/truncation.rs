//! Every cut-short or padded body is a `BodyMismatch`, never a quietly shorter event
//! (apache-avro alone decodes a body cut before an optional field as if the field were null).

use apache_avro::writer::datum::GenericDatumWriter;
use bridge_events::codec::read_body;
use bridge_events::{samples, schema};

#[test]
fn every_truncation_and_padding_of_every_event_is_refused() -> Result<(), Box<dyn std::error::Error>>
{
    for event in samples::one_of_each() {
        let record = schema::record(event.record_name())?;
        let value = event.to_value()?.resolve(&record.schema)?;
        let body = GenericDatumWriter::builder(&record.schema)
            .build()?
            .write_value_to_vec(value)?;
        assert!(
            read_body(&record.schema, &record.schema, &body).is_ok(),
            "{} intact",
            event.record_name()
        );
        for cut in 1..=body.len() {
            let short = &body[..body.len() - cut];
            assert!(
                read_body(&record.schema, &record.schema, short).is_err(),
                "{} cut by {cut} of {} bytes decoded",
                event.record_name(),
                body.len()
            );
        }
        for pad in [0u8, 1, 0x7F, 0xFF] {
            let mut padded = body.clone();
            padded.push(pad);
            assert!(
                read_body(&record.schema, &record.schema, &padded).is_err(),
                "{} padded",
                event.record_name()
            );
        }
    }
    Ok(())
}
